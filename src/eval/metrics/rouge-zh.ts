import { rougeScore } from "./rouge.js";
import { segmentZh } from "./zh-segment.js";

// LongBench metrics.py `rouge_zh_score`, ported from THUDM/LongBench (MIT); jieba → Intl.Segmenter.

/** Join the segmented words with spaces (as LongBench does with jieba tokens), then ROUGE-L F. */
export function rougeZhScore(prediction: string, groundTruth: string): number {
  return rougeScore(segmentZh(prediction).join(" "), segmentZh(groundTruth).join(" "));
}
