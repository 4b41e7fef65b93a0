import type { Needle } from "./types.js";

/**
 * Depths for `count` needles, the first one (the one asked about) at `depth`.
 * "circular": evenly spaced over the whole haystack, wrapping past the end (d, d + 1/k, ... mod 1), so
 * distractors surround the asked needle. "forward": evenly spaced from `depth` to the end, in order
 * (for chains whose order matters).
 */
export function spreadDepths(depth: number, count: number, mode: "circular" | "forward"): number[] {
  return Array.from({ length: count }, (_, j) =>
    mode === "circular" ? (depth + j / count) % 1 : depth + ((1 - depth) * j) / count,
  );
}

/** Running totals: `cumulative[b]` = tokens in sentences [0, b). */
export function cumulativeSums(values: readonly number[]): number[] {
  const out = [0];
  for (const v of values) out.push(out[out.length - 1]! + v);
  return out;
}

/**
 * The sentence boundary (0 = before the first sentence, n = after the last) whose token offset is
 * nearest to `depth` × haystack tokens.
 */
export function boundaryForDepth(cumulative: readonly number[], depth: number): number {
  const target = depth * cumulative[cumulative.length - 1]!;
  let best = 0;
  for (let b = 1; b < cumulative.length; b++) {
    if (Math.abs(cumulative[b]! - target) < Math.abs(cumulative[best]! - target)) best = b;
  }
  return best;
}

/**
 * Prose with needles inserted at sentence boundaries. `sentences` carry their leading space;
 * `sentenceTokens` are their (estimated) token counts, used to turn depths into positions. Needles that
 * fall on the same boundary keep their given order.
 */
export function insertNeedles(sentences: readonly string[], sentenceTokens: readonly number[], needles: readonly Needle[]): string {
  const cumulative = cumulativeSums(sentenceTokens.slice(0, sentences.length));
  const atBoundary: string[][] = Array.from({ length: sentences.length + 1 }, () => []);
  for (const needle of needles) atBoundary[boundaryForDepth(cumulative, needle.depth)]!.push(needle.text);
  let out = "";
  for (let b = 0; b <= sentences.length; b++) {
    out += atBoundary[b]!.join("");
    if (b < sentences.length) out += sentences[b]!;
  }
  return out;
}
