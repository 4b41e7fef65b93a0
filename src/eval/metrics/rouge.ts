import { rougeLSummaryLevel } from "./rouge-l.js";

// LongBench metrics.py `rouge_score`, ported from THUDM/LongBench (MIT).

/**
 * `Rouge().get_scores([prediction], [ground_truth], avg=True)["rouge-l"]["f"]`; LongBench's bare
 * `except` turns the package's exceptions (no sentence in either text, e.g. an empty prediction)
 * into 0.0.
 */
export function rougeScore(prediction: string, groundTruth: string): number {
  return rougeLSummaryLevel(prediction, groundTruth)?.f ?? 0.0;
}
