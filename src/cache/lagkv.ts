import { z } from "zod";
import type { CachePolicy } from "./policy.js";
import { layerData, type TokenScorer } from "./scorer.js";
import { countOr } from "./options.js";
import { prefillScoringMethod } from "./method.js";

export interface LagKVOptions {
  budgetTokens: number;
  /** Initial tokens always kept (attention sinks); default 4. */
  sinkTokens?: number;
  /** Partition length: each partition is scored against the next one; default 128. */
  lagSize?: number;
}

/**
 * One partition's scores against the next (the "lag" reference), for keys or values x [S, d] of one head:
 * each channel min-max normalised by the reference partition's range, the standard deviation over channels
 * (unbiased, as torch.std), then a softmax over the partition's tokens.
 */
function lagScores(x: Float32Array, d: number, start: number, lag: number): Float64Array {
  const lo = new Float64Array(d).fill(Infinity);
  const hi = new Float64Array(d).fill(-Infinity);
  for (let t = start + lag; t < start + 2 * lag; t++) {
    for (let c = 0; c < d; c++) {
      lo[c] = Math.min(lo[c]!, x[t * d + c]!);
      hi[c] = Math.max(hi[c]!, x[t * d + c]!);
    }
  }
  const std = new Float64Array(lag);
  for (let i = 0; i < lag; i++) {
    const z = Array.from({ length: d }, (_, c) => (x[(start + i) * d + c]! - lo[c]!) / (hi[c]! - lo[c]!));
    const mean = z.reduce((a, b) => a + b, 0) / d;
    std[i] = Math.sqrt(z.reduce((a, b) => a + (b - mean) ** 2, 0) / (d - 1));
  }
  const max = Math.max(...std);
  const e = std.map((s) => Math.exp(s - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** Rank of each entry among `xs` (0 = smallest, ties by index, as a stable argsort of an argsort). */
function ranks(xs: ArrayLike<number>): number[] {
  const order = Array.from({ length: xs.length }, (_, i) => i).sort((a, b) => xs[a]! - xs[b]! || a - b);
  const r = new Array<number>(xs.length);
  order.forEach((i, rank) => (r[i] = rank));
  return r;
}

/**
 * LagKV (Liang et al., "LagKV: Lag-Relative Information of the KV Cache Tells Which Tokens Are Important",
 * arXiv 2504.04704; kvpress lagkv_press.py): after the sinks, the cache is cut into partitions of lagSize; a token of
 * partition p is scored by how much its key and value stand out (std over channels) relative to partition p + 1's
 * min-max range, averaged over keys and values and ranked within the partition (rank / lagSize, below 1). Sinks and
 * the last partition with the remainder score 1. A cache shorter than sinks + 2 partitions scores by recency.
 */
export function lagkvScorer(sinkTokens: number, lagSize: number): TokenScorer {
  return {
    async score(layer, cache) {
      const S = cache.length(layer);
      const Hkv = cache.numKvHeads;
      const d = cache.headDim;
      const scores = new Float64Array(Hkv * S).fill(1);
      if (S < sinkTokens + 2 * lagSize) {
        for (let h = 0; h < Hkv; h++) for (let i = sinkTokens; i < S; i++) scores[h * S + i] = (i - sinkTokens) / (S - sinkTokens);
        return { scores };
      }
      const [k, v] = [await layerData(cache, layer, "k"), await layerData(cache, layer, "v")];
      const partitions = Math.floor((S - sinkTokens) / lagSize) - 1; // the last full one is only a reference
      for (let h = 0; h < Hkv; h++) {
        const kh = k.subarray(h * S * d, (h + 1) * S * d);
        const vh = v.subarray(h * S * d, (h + 1) * S * d);
        for (let p = 0; p < partitions; p++) {
          const start = sinkTokens + p * lagSize;
          const ks = lagScores(kh, d, start, lagSize);
          const vs = lagScores(vh, d, start, lagSize);
          const r = ranks(ks.map((x, i) => (x + vs[i]!) / 2));
          for (let i = 0; i < lagSize; i++) scores[h * S + start + i] = r[i]! / lagSize;
        }
      }
      return { scores };
    },
  };
}

/** LagKV after prefill, decode adds one token per step. Original positions. */
export const lagkvMethod = prefillScoringMethod({
  name: "lagkv",
  summary: "LagKV: scores each partition's keys/values against the next partition's range (no attention needed), after prefill",
  paper: "Liang et al., LagKV: Lag-Relative Information of the KV Cache Tells Which Tokens Are Important, arXiv 2504.04704",
  options: { sinkTokens: z.number().int().nonnegative().optional(), lagSize: z.number().int().min(2).optional() },
  scorer: (o) => lagkvScorer(countOr("lagkv", "sinkTokens", o.sinkTokens, 4, 0), countOr("lagkv", "lagSize", o.lagSize, 128, 2)),
});

export const lagkvPolicy = (options: LagKVOptions): CachePolicy => lagkvMethod.makePolicy!({ ...options });
