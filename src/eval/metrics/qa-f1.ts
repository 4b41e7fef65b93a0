import { normalizeAnswer } from "./normalize-answer.js";
import { pySplitWhitespace } from "./python-str.js";
import { tokenF1 } from "./token-f1.js";

// LongBench metrics.py `qa_f1_score`, ported from THUDM/LongBench (MIT).

/** Token F1 between the normalized, whitespace-split prediction and ground truth. */
export function qaF1Score(prediction: string, groundTruth: string): number {
  const predictionTokens = pySplitWhitespace(normalizeAnswer(prediction));
  const groundTruthTokens = pySplitWhitespace(normalizeAnswer(groundTruth));
  return tokenF1(predictionTokens, groundTruthTokens);
}
