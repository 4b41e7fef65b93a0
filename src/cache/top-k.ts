/**
 * Indices i in [0, count) of the n largest scores[offset + i], ascending. Ties go to the earlier token, so the
 * selection is deterministic (and matches a stable sort in any reference).
 */
export function topIndices(scores: ArrayLike<number>, offset: number, count: number, n: number): number[] {
  if (n <= 0) return [];
  if (n >= count) return Array.from({ length: count }, (_, i) => i);
  const order = Array.from({ length: count }, (_, i) => i);
  order.sort((a, b) => scores[offset + b]! - scores[offset + a]! || a - b);
  return order.slice(0, n).sort((a, b) => a - b);
}

/** Indices start..start+n-1. */
export function indexRange(start: number, n: number): number[] {
  return Array.from({ length: Math.max(0, n) }, (_, i) => start + i);
}
