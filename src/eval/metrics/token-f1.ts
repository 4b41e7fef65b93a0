// LongBench metrics.py `f1_score`, ported from THUDM/LongBench (MIT).

function countTokens(tokens: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const token of tokens) counts.set(token, (counts.get(token) ?? 0) + 1);
  return counts;
}

/**
 * Token-level F1 with multiset (Python `Counter &`) overlap:
 * overlap = Σ min(count_pred, count_gt); 0 when there is no overlap.
 */
export function tokenF1(predictionTokens: readonly string[], groundTruthTokens: readonly string[]): number {
  const groundTruthCounts = countTokens(groundTruthTokens);
  let numSame = 0;
  for (const [token, predCount] of countTokens(predictionTokens)) {
    numSame += Math.min(predCount, groundTruthCounts.get(token) ?? 0);
  }
  if (numSame === 0) return 0;
  const precision = numSame / predictionTokens.length;
  const recall = numSame / groundTruthTokens.length;
  return (2 * precision * recall) / (precision + recall);
}
