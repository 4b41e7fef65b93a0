import type { CachePolicy } from "./policy.js";
import { keepTokens } from "./keep-tokens.js";
import { requireCount, countOr } from "./options.js";
import { Rng } from "../util/rng.js";

export interface RandomOptions {
  /** Tokens per layer after prefill. */
  budgetTokens: number;
  /** Seed of the choice (default 0), so a run is reproducible. */
  seed?: number;
}

/**
 * Random eviction, the control (kvpress random_press.py): after prefill each KV head keeps budgetTokens tokens
 * drawn uniformly without replacement, independently per head and layer. Original positions; like the other
 * kvpress presses it evicts only after prefill, so decode adds one token per step.
 */
export function randomPolicy(options: RandomOptions): CachePolicy {
  const budget = requireCount("random", "budgetTokens", options.budgetTokens, 1);
  const rng = new Rng(countOr("random", "seed", options.seed, 0, 0));
  return {
    name: "random",
    ropeMode: "original",
    wantsAttention: false,
    compress(layer, cache, ctx) {
      const length = cache.length(layer);
      if (ctx.phase !== "prefill" || length <= budget) return;
      const Hkv = cache.numKvHeads;
      const keep = new Int32Array(Hkv * budget);
      for (let h = 0; h < Hkv; h++) {
        const order = rng.shuffle(Array.from({ length }, (_, i) => i));
        keep.set(order.slice(0, budget), h * budget);
      }
      keepTokens(cache, layer, keep, budget);
    },
    budgetFor: () => budget,
  };
}
