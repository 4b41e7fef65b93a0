import { paragraphIdScore } from "./paragraph-id.js";

// LongBench metrics.py `retrieval_zh_score`, ported from THUDM/LongBench (MIT).

/** Python `re.findall(r'段落(\d+)', ground_truth)[0]`; Python's `\d` is Unicode `Nd`. */
const PARAGRAPH_ID_ZH = /段落(\p{Nd}+)/u;

/** Fraction of the prediction's digit runs equal to the id in "段落N". */
export function retrievalZhScore(prediction: string, groundTruth: string): number {
  return paragraphIdScore(prediction, groundTruth, PARAGRAPH_ID_ZH, "retrieval_zh");
}
