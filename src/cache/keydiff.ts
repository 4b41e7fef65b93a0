import type { CachePolicy } from "./policy.js";
import { layerData, type TokenScorer } from "./scorer.js";
import { prefillScoringMethod } from "./method.js";

/**
 * KeyDiff (Park et al., "KeyDiff: Key Similarity-Based KV Cache Eviction for Long-Context LLM Inference in
 * Resource-Constrained Environments", arXiv 2504.15364; kvpress keydiff_press.py): per KV head the anchor is the mean
 * of the unit-normalised keys; a token's score is −cos(k, anchor), so the most distinctive keys stay.
 */
export function keydiffScorer(): TokenScorer {
  return {
    async score(layer, cache) {
      const k = await layerData(cache, layer, "k");
      const d = cache.headDim;
      const S = cache.length(layer);
      const scores = new Float64Array(cache.numKvHeads * S);
      const norm = (t: number) => Math.sqrt(Array.from({ length: d }, (_, c) => k[t * d + c]! ** 2).reduce((a, b) => a + b, 0));
      for (let h = 0; h < cache.numKvHeads; h++) {
        const anchor = new Float64Array(d);
        for (let i = 0; i < S; i++) {
          const t = h * S + i;
          const n = Math.max(norm(t), 1e-12); // F.normalize's eps
          for (let c = 0; c < d; c++) anchor[c]! += k[t * d + c]! / n / S;
        }
        const anchorNorm = Math.sqrt(anchor.reduce((a, x) => a + x * x, 0));
        for (let i = 0; i < S; i++) {
          const t = h * S + i;
          let dot = 0;
          for (let c = 0; c < d; c++) dot += k[t * d + c]! * anchor[c]!;
          // cosine_similarity's eps guards each norm.
          scores[t] = -dot / (Math.max(norm(t), 1e-8) * Math.max(anchorNorm, 1e-8));
        }
      }
      return { scores };
    },
  };
}

/** KeyDiff after prefill (kvpress's default), decode adds one token per step. Original positions. */
export const keydiffMethod = prefillScoringMethod({
  name: "keydiff",
  summary: "KeyDiff: keeps the keys least similar (cosine) to the mean key direction, once after prefill",
  paper: "Park et al., KeyDiff: Key Similarity-Based KV Cache Eviction, arXiv 2504.15364",
  options: {},
  scorer: () => keydiffScorer(),
});

export const keydiffPolicy = (options: { budgetTokens: number }): CachePolicy => keydiffMethod.makePolicy!(options);
