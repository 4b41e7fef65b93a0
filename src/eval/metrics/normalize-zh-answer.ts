import { PYTHON_PUNCTUATION, pySplitWhitespace } from "./python-str.js";

// LongBench metrics.py `normalize_zh_answer`, ported from THUDM/LongBench (MIT).

/** LongBench's `cn_punctuation` string, verbatim (it ends with an ASCII '.'). */
export const CN_PUNCTUATION =
  "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏.";

const ALL_PUNCTUATION = new Set(Array.from(PYTHON_PUNCTUATION + CN_PUNCTUATION));

/** Lower text, remove ASCII + Chinese punctuation, remove all whitespace (no articles step). */
export function normalizeZhAnswer(text: string): string {
  const withoutPunctuation = Array.from(text.toLowerCase())
    .filter((ch) => !ALL_PUNCTUATION.has(ch))
    .join("");
  return pySplitWhitespace(withoutPunctuation).join("");
}
