import { z } from "zod";
import * as tf from "../tf.js";
import type { Rotation as RopeTable } from "../backbone/model.js";
import { positionRange } from "../backbone/rope.js";
import { layerData, type TokenScorer } from "./scorer.js";
import { rotateBack } from "./key-rerotation.js";
import { countOr } from "./options.js";
import { prefillScoringMethod } from "./method.js";

/** The average RoPE rotation over positions [from, from + n): R̄ [d][d] with R̄·x = mean_p R(p)·x. */
async function averageRotation(rope: RopeTable, d: number, from: number, n: number): Promise<Float64Array> {
  // Row j of the result tensor is R(p)·e_j for each p: rotate the basis at every position, average over positions.
  const rotated = tf.tidy(() => tf.mean(rope.apply(tf.tile(tf.eye(d).reshape([d, 1, d]), [1, n, 1]) as tf.Tensor3D, positionRange(from, n)), 1));
  const cols = (await rotated.data()) as Float32Array;
  rotated.dispose();
  const R = new Float64Array(d * d);
  for (let j = 0; j < d; j++) for (let i = 0; i < d; i++) R[i * d + j] = cols[j * d + i]!;
  return R;
}

/**
 * Expected Attention (Devoto et al., "Expected Attention: KV Cache Compression by Estimating Attention from Future
 * Queries Distribution", arXiv 2510.00636; kvpress expected_attention_press.py): future queries are modelled as a
 * Gaussian — the mean μ and covariance Σ of this prompt's pre-RoPE queries (sink tokens' queries left out), moved
 * by the RoPE rotation averaged over the next futurePositions positions (μ̄ = R̄μ, Σ̄ = R̄ΣR̄ᵀ). A key's expected
 * logit is μ̄·k/√d + kᵀΣ̄k/(2d); the softmax over the non-sink keys, averaged over the KV head's query heads and
 * multiplied by ‖v‖, is its score. The sinks score above every other token.
 */
export function expectedAttentionScorer(sinkTokens: number, futurePositions: number): TokenScorer {
  return {
    async score(layer, cache, ctx) {
      const [H, T, d] = ctx.q.shape;
      const S = cache.length(layer);
      const Hkv = cache.numKvHeads;
      const g = H / Hkv;
      const L = cache.layers[layer]!;
      const qPositions = L.positions.slice(S - T, S); // the new tokens' original positions (head 0 = every head)
      const preRope = tf.tidy(() => rotateBack(ctx.rope, ctx.q, qPositions));
      const q = (await preRope.data()) as Float32Array;
      preRope.dispose();
      const R = await averageRotation(ctx.rope, d, qPositions[T - 1]! + 1, futurePositions);
      const [k, v] = [await layerData(cache, layer, "k"), await layerData(cache, layer, "v")];
      const scores = new Float64Array(Hkv * S);
      const from = Math.min(sinkTokens, T - 1);
      const n = T - from;
      for (let h = 0; h < H; h++) {
        const kv = Math.floor(h / g);
        // Mean and covariance of this head's queries, then rotated by R̄.
        const mu = new Float64Array(d);
        for (let t = from; t < T; t++) for (let i = 0; i < d; i++) mu[i]! += q[(h * T + t) * d + i]! / n;
        const cov = new Float64Array(d * d);
        for (let t = from; t < T; t++) {
          const row = (h * T + t) * d;
          for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) cov[i * d + j]! += ((q[row + i]! - mu[i]!) * (q[row + j]! - mu[j]!)) / n;
        }
        const muR = matVec(R, mu, d);
        const covR = matMul(matMul(R, cov, d), transpose(R, d), d);
        const logits = new Float64Array(S - sinkTokens);
        for (let i = sinkTokens; i < S; i++) {
          const key = k.subarray((kv * S + i) * d, (kv * S + i + 1) * d);
          let quad = 0;
          for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) quad += key[a]! * covR[a * d + b]! * key[b]!;
          let lin = 0;
          for (let a = 0; a < d; a++) lin += muR[a]! * key[a]!;
          logits[i - sinkTokens] = lin / Math.sqrt(d) + quad / d / 2;
        }
        const max = Math.max(...logits);
        const e = logits.map((x) => Math.exp(x - max));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let i = sinkTokens; i < S; i++) scores[kv * S + i]! += e[i - sinkTokens]! / sum / g;
      }
      for (let kv = 0; kv < Hkv; kv++) {
        let top = 0;
        for (let i = sinkTokens; i < S; i++) {
          const value = v.subarray((kv * S + i) * d, (kv * S + i + 1) * d);
          scores[kv * S + i]! *= Math.sqrt(value.reduce((a, x) => a + x * x, 0));
          top = Math.max(top, scores[kv * S + i]!);
        }
        for (let i = 0; i < Math.min(sinkTokens, S); i++) scores[kv * S + i] = top + 1;
      }
      return { scores };
    },
  };
}

function matVec(M: Float64Array, x: Float64Array, d: number): Float64Array {
  return Float64Array.from({ length: d }, (_, i) => x.reduce((s, xj, j) => s + M[i * d + j]! * xj, 0));
}

function matMul(A: Float64Array, B: Float64Array, d: number): Float64Array {
  const C = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let l = 0; l < d; l++) for (let j = 0; j < d; j++) C[i * d + j]! += A[i * d + l]! * B[l * d + j]!;
  return C;
}

function transpose(A: Float64Array, d: number): Float64Array {
  return Float64Array.from({ length: d * d }, (_, x) => A[(x % d) * d + Math.floor(x / d)]!);
}

export const expectedAttentionMethod = prefillScoringMethod({
  name: "expected-attention",
  summary: "Expected Attention: scores keys by the attention a Gaussian model of future queries would give them, times ‖v‖",
  paper: "Devoto et al., Expected Attention: KV Cache Compression by Estimating Attention from Future Queries Distribution, arXiv 2510.00636",
  options: { sinkTokens: z.number().int().nonnegative().optional(), futurePositions: z.number().int().positive().optional() },
  scorer: (o) =>
    expectedAttentionScorer(countOr("expected-attention", "sinkTokens", o.sinkTokens, 4, 0), countOr("expected-attention", "futurePositions", o.futurePositions, 512, 1)),
});
