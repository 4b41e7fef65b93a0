import type { CachePolicy } from "./policy.js";
import { layerData, type TokenScorer } from "./scorer.js";
import { prefillScoringMethod } from "./method.js";

/**
 * KNorm (Devoto et al., "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression", arXiv 2406.11430;
 * kvpress knorm_press.py): keys with a low L2 norm draw high attention, so a token's score is −‖k‖ per KV head.
 * RoPE is a rotation, so the norm is the same before or after it.
 */
export function knormScorer(): TokenScorer {
  return {
    async score(layer, cache) {
      const k = await layerData(cache, layer, "k");
      const d = cache.headDim;
      const scores = new Float64Array(k.length / d);
      for (let t = 0; t < scores.length; t++) {
        let sq = 0;
        for (let c = 0; c < d; c++) sq += k[t * d + c]! * k[t * d + c]!;
        scores[t] = -Math.sqrt(sq);
      }
      return { scores };
    },
  };
}

/** KNorm after prefill (kvpress's default), decode adds one token per step. Original positions. */
export const knormMethod = prefillScoringMethod({
  name: "knorm",
  summary: "KNorm: keeps the tokens whose keys have the lowest L2 norm, once after prefill",
  paper: "Devoto et al., A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression, arXiv 2406.11430",
  options: {},
  scorer: () => knormScorer(),
});

export const knormPolicy = (options: { budgetTokens: number }): CachePolicy => knormMethod.makePolicy!(options);
