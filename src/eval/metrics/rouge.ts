import { rougeLSummaryLevel } from "./rouge-l.js";

// LongBench metrics.py `rouge_score`, ported from THUDM/LongBench (MIT).

/**
 * How deep pltrdy's recursive LCS reconstruction may go. "longbench" (the default) reproduces
 * eval.py under CPython's default recursion limit (1000): `_recon` starts 9 frames deep for
 * rouge_score (eval.py module → scorer → rouge_score → get_scores → _get_avg_scores → lambda →
 * rouge_l_summary_level → _union_lcs → _recon_lcs), 10 for rouge_zh_score; a sentence pair whose
 * path needs more calls raises RecursionError, which LongBench's bare `except` scores 0.0.
 * Published LongBench numbers include that. "exact" computes the true ROUGE-L instead.
 */
export type RougeRecursion = "longbench" | "exact";

const PYTHON_RECURSION_LIMIT = 1000;
/** Frames on CPython's stack when eval.py's `scorer` → `rouge_score` first calls pltrdy's `_recon`. */
export const ROUGE_SCORE_FRAMES_BEFORE_RECON = 9;

export function maxReconCalls(recursion: RougeRecursion, framesBeforeRecon: number): number {
  return recursion === "exact" ? Infinity : PYTHON_RECURSION_LIMIT - framesBeforeRecon;
}

/**
 * `Rouge().get_scores([prediction], [ground_truth], avg=True)["rouge-l"]["f"]`; LongBench's bare
 * `except` turns the package's exceptions (no sentence in either text, e.g. an empty prediction;
 * RecursionError, see RougeRecursion) into 0.0.
 */
export function rougeScore(
  prediction: string,
  groundTruth: string,
  recursion: RougeRecursion = "longbench",
  framesBeforeRecon = ROUGE_SCORE_FRAMES_BEFORE_RECON,
): number {
  return rougeLSummaryLevel(prediction, groundTruth, maxReconCalls(recursion, framesBeforeRecon))?.f ?? 0.0;
}
