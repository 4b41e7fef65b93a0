import { prefillOnly, type CachePolicy } from "./policy.js";
import { scorerPolicy, type TokenScorer } from "./scorer.js";
import { requireCount, countOr } from "./options.js";
import { Rng } from "../util/rng.js";
import { z } from "zod";
import { evictionMethod } from "./method.js";

export interface RandomOptions {
  /** Tokens per layer after prefill. */
  budgetTokens: number;
  /** Seed of the choice (default 0), so a run is reproducible. */
  seed?: number;
}

/**
 * Random scores, the control (kvpress random_press.py): per KV head a uniform random order of the cached tokens
 * (one shuffle each), scored by rank, so the top-k is the first k of the shuffle: budgetTokens tokens drawn
 * uniformly without replacement, independently per head and layer.
 */
export function randomScorer(seed: number): TokenScorer {
  const rng = new Rng(seed);
  return {
    score(layer, cache) {
      const length = cache.length(layer);
      const scores = new Float64Array(cache.numKvHeads * length);
      for (let h = 0; h < cache.numKvHeads; h++) {
        const order = rng.shuffle(Array.from({ length }, (_, i) => i));
        order.forEach((token, rank) => (scores[h * length + token] = length - rank));
      }
      return { scores };
    },
  };
}

/** Random eviction after prefill (like the other kvpress presses, decode adds one token per step). Original positions. */
export function randomPolicy(options: RandomOptions): CachePolicy {
  const budget = requireCount("random", "budgetTokens", options.budgetTokens, 1);
  const seed = countOr("random", "seed", options.seed, 0, 0);
  return prefillOnly(scorerPolicy(randomScorer(seed), { name: "random", budgetFor: () => budget }));
}

export const randomMethod = evictionMethod({
  name: "random",
  summary: "Random eviction after prefill (the control)",
  paper: "kvpress random_press.py (a baseline, no paper)",
  budget: "required",
  options: { seed: z.number().int().nonnegative().optional() },
  makePolicy: (o) => randomPolicy(o as RandomOptions),
});
