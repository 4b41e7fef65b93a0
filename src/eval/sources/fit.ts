/**
 * Sizing generated prompts to a token length, as RULER's prepare does: the record builders stay pure (a size in,
 * a prompt out) and this searches the largest size whose tokenised prompt still fits.
 */
import { createHash } from "node:crypto";

export interface Fitted<T> {
  size: number;
  built: T;
  tokens: number;
}

/**
 * The largest size ≥ `min` whose `tokens(build(size))` is at most `maxTokens`: doubling until a size overflows, then
 * binary search between the last fitting size and it (RULER bisects between an estimate's bounds). Assumes the count
 * grows with the size, as a haystack's does; null when even `min` does not fit.
 */
export function fitToTokens<T>(build: (size: number) => T, tokens: (built: T) => number, maxTokens: number, min = 1): Fitted<T> | null {
  const at = (size: number): Fitted<T> => {
    const built = build(size);
    return { size, built, tokens: tokens(built) };
  };
  let best = at(min);
  if (best.tokens > maxTokens) return null;
  let over = min * 2;
  for (;;) {
    const tried = at(over);
    if (tried.tokens > maxTokens) break;
    best = tried;
    over *= 2;
  }
  let lo = best.size + 1;
  let hi = over - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const tried = at(mid);
    if (tried.tokens <= maxTokens) {
      best = tried;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best;
}

/** A 32-bit seed for one generated sample from the suite seed and what identifies the sample, so each is reproducible alone. */
export function sampleSeed(...parts: readonly (string | number)[]): number {
  return createHash("sha256").update(JSON.stringify(parts)).digest().readUInt32LE(0);
}
