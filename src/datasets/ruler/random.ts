/**
 * A seeded RulerRandom for our own RULER runs. It makes the calls RULER's generators make, with the same ranges and
 * meaning, from our mulberry32 Rng (src/util/rng.ts): the records are reproducible from the suite's seed, but they
 * are not the records Python's `random` (Mersenne Twister) would draw from the same seed. The official draws are
 * replayed only in the tests (test/ruler-niah.test.ts).
 */
import { Rng } from "../../util/rng.js";
import type { RulerRandom } from "./niah.js";

/** `k` distinct integers of range(n) in draw order (Floyd's algorithm would reorder them; a partial shuffle keeps it simple). */
function sampleRange(rng: Rng, n: number, k: number): number[] {
  if (!Number.isInteger(k) || k < 0 || k > n) throw new RangeError(`sample: cannot draw ${k} of ${n}`);
  const chosen = new Map<number, number>(); // sparse Fisher–Yates over 0..n-1: no array of n items
  const out: number[] = [];
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(n - i);
    const atJ = chosen.get(j) ?? j;
    chosen.set(j, chosen.get(i) ?? i);
    out.push(atJ);
  }
  return out;
}

/** A RulerRandom drawing from Rng(seed). */
export function seededRulerRandom(seed: number): RulerRandom {
  const rng = new Rng(seed);
  return {
    randint: (low, high) => rng.range(low, high),
    choice: (words) => rng.pick(words),
    getrandbits128: () => {
      let bits = 0n;
      for (let i = 0; i < 4; i++) bits = (bits << 32n) | BigInt(rng.int(2 ** 32));
      return bits;
    },
    sample: (n, k) => sampleRange(rng, n, k),
    shufflePermutation: (n, shuffleSeed) => new Rng(shuffleSeed).shuffle(Array.from({ length: n }, (_, i) => i)),
  };
}
