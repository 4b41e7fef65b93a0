import { normalizeAnswer } from "./normalize-answer.js";
import { pyStrip } from "./python-str.js";

/** 1 when prediction and ground truth are identical after stripping surrounding whitespace, else 0. */
export function exactMatchScore(prediction: string, groundTruth: string): number {
  return pyStrip(prediction) === pyStrip(groundTruth) ? 1 : 0;
}

/** 1 when they are identical after LongBench's `normalize_answer` (case, punctuation, articles, spaces), else 0. */
export function normalizedExactMatchScore(prediction: string, groundTruth: string): number {
  return normalizeAnswer(prediction) === normalizeAnswer(groundTruth) ? 1 : 0;
}
