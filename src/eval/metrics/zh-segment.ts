/**
 * Chinese word segmentation. LongBench uses `jieba.cut(text, cut_all=False)`; jieba is a Python
 * package with its own dictionary, so we use ICU's dictionary-based segmenter
 * (`Intl.Segmenter("zh", { granularity: "word" })`) as the stand-in. Like jieba it returns every
 * piece of the input (words, punctuation, whitespace) in order, so joining them gives the input
 * back; word boundaries can differ from jieba's (documented in docs/metrics.md).
 */
const segmenter = new Intl.Segmenter("zh", { granularity: "word" });

export function segmentZh(text: string): string[] {
  return Array.from(segmenter.segment(text), (piece) => piece.segment);
}
