import { ROUGE_SCORE_FRAMES_BEFORE_RECON, rougeScore, type RougeRecursion } from "./rouge.js";
import { segmentZh } from "./zh-segment.js";

// LongBench metrics.py `rouge_zh_score`, ported from THUDM/LongBench (MIT).

/**
 * Join the jieba words with spaces (as LongBench does), then ROUGE-L F. rouge_zh_score calls
 * rouge_score, one frame deeper, so pltrdy's RecursionError comes one word pair earlier.
 */
export function rougeZhScore(prediction: string, groundTruth: string, recursion: RougeRecursion = "longbench"): number {
  return rougeScore(segmentZh(prediction).join(" "), segmentZh(groundTruth).join(" "), recursion, ROUGE_SCORE_FRAMES_BEFORE_RECON + 1);
}
