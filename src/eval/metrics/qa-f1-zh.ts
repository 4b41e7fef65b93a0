import { normalizeZhAnswer } from "./normalize-zh-answer.js";
import { tokenF1 } from "./token-f1.js";
import { segmentZh } from "./zh-segment.js";

// LongBench metrics.py `qa_f1_zh_score`, ported from THUDM/LongBench (MIT); jieba via zh-segment.ts.

function zhTokens(text: string): string[] {
  return segmentZh(text)
    .map(normalizeZhAnswer)
    .filter((token) => token.length > 0);
}

/** Segment, normalize each token (normalize_zh_answer), drop empty tokens, then token F1. */
export function qaF1ZhScore(prediction: string, groundTruth: string): number {
  return tokenF1(zhTokens(prediction), zhTokens(groundTruth));
}
