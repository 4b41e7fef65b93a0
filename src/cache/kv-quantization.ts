import * as tf from "../tf.js";
import type { KVCache } from "../backbone/kv-cache.js";
import { wrapPolicy, type CachePolicy } from "./policy.js";
import { layerData } from "./scorer.js";

export interface KvQuantizationOptions {
  /** Bits per quantised key/value element: 2, 4 or 8. */
  bits: 2 | 4 | 8;
  /** Tokens per key quantisation group (per channel, KIVI's G); default 32. */
  groupSize?: number;
  /** The newest tokens kept in full precision (KIVI's residual R); default groupSize. */
  residualTokens?: number;
}

/** Bytes of one quantisation scale or zero point (KIVI keeps them in fp16). */
const PARAM_BYTES = 2;

/**
 * Round-to-nearest asymmetric quantisation of x[idx(0..n-1)] to `bits` with the group's own min and scale, written
 * back dequantised (what attention then reads).
 */
export function fakeQuantize(x: Float32Array, idx: (j: number) => number, n: number, bits: number): void {
  let lo = Infinity;
  let hi = -Infinity;
  for (let j = 0; j < n; j++) {
    lo = Math.min(lo, x[idx(j)]!);
    hi = Math.max(hi, x[idx(j)]!);
  }
  const levels = 2 ** bits - 1;
  const scale = (hi - lo) / levels;
  if (scale === 0) return;
  for (let j = 0; j < n; j++) {
    const q = Math.min(levels, Math.max(0, Math.round((x[idx(j)]! - lo) / scale)));
    x[idx(j)] = q * scale + lo;
  }
}

/**
 * KIVI-style KV quantisation (Liu et al., "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache",
 * arXiv 2402.02750) as a wrapper over any policy: once a KV head has groupSize tokens older than the residual
 * window, they are quantised — keys per channel over the group's tokens, values per token over its channels — to
 * `bits`, with an fp16 scale and zero point per group. The cache keeps the dequantised numbers in float32 (so
 * attention is unchanged), but kvBytes counts what a quantised store holds: bits per element plus the group
 * parameters for quantised tokens, float32 for the residual ones (kept tokens only: a head's masked slots, see
 * KVCache, are not counted). Eviction runs first; tokens are quantised once.
 */
export function withKvQuantization(inner: CachePolicy, options: KvQuantizationOptions): CachePolicy {
  const { bits } = options;
  const group = options.groupSize ?? 32;
  const residual = options.residualTokens ?? group;
  /** Per layer and KV head: original positions of the tokens already quantised. */
  const quantized: Set<number>[][] = [];
  /** Kept (not masked) tokens of KV head h, and how many of them are quantised. */
  const countIn = (cache: KVCache, layer: number, h: number): { kept: number; q: number } => {
    const L = cache.layers[layer]!;
    const done = quantized[layer]?.[h];
    let kept = 0;
    let q = 0;
    for (let i = 0; i < L.length; i++) {
      if (L.masked?.[h * L.length + i]) continue;
      kept++;
      if (done?.has(L.positions[h * L.length + i]!)) q++;
    }
    return { kept, q };
  };
  const bytesOf = (cache: KVCache): number => {
    const d = cache.headDim;
    let bytes = 0;
    for (let layer = 0; layer < cache.numLayers; layer++) {
      for (let h = 0; h < cache.numKvHeads; h++) {
        const { kept, q } = countIn(cache, layer, h);
        const rest = kept - q;
        const keyBytes = (q * d * bits) / 8 + Math.ceil(q / group) * d * 2 * PARAM_BYTES;
        const valueBytes = (q * d * bits) / 8 + q * 2 * PARAM_BYTES;
        bytes += keyBytes + valueBytes + rest * d * 2 * 4;
      }
    }
    return bytes;
  };
  return wrapPolicy(inner, {
    name: `${inner.name}+kv${bits}`,
    kvBytes: bytesOf,
    async compress(layer, cache, ctx) {
      await inner.compress(layer, cache, ctx);
      await quantizeReady(cache, layer, (quantized[layer] ??= []), bits, group, residual);
    },
  });
}

/** Quantises, per KV head, every complete group of not-yet-quantised tokens older than the residual window. */
async function quantizeReady(cache: KVCache, layer: number, done: Set<number>[], bits: number, group: number, residual: number): Promise<void> {
  const L = cache.layers[layer]!;
  const S = L.length;
  const Hkv = cache.numKvHeads;
  const d = cache.headDim;
  // Quantised tokens are the oldest ones (cache order is position order), so per head they are a prefix.
  const plan: { h: number; start: number; groups: number }[] = [];
  for (let h = 0; h < Hkv; h++) {
    // Forget evicted tokens, so the set stays the size of the cache.
    const set = (done[h] = new Set(Array.from(L.positions.subarray(h * S, (h + 1) * S)).filter((p) => done[h]?.has(p))));
    let start = 0;
    while (start < S && set.has(L.positions[h * S + start]!)) start++;
    const groups = Math.floor(Math.max(0, S - residual - start) / group);
    if (groups > 0) plan.push({ h, start, groups });
  }
  if (plan.length === 0) return;
  const [k, v] = [(await layerData(cache, layer, "k")).slice(), (await layerData(cache, layer, "v")).slice()];
  for (const { h, start, groups } of plan) {
    for (let g = 0; g < groups; g++) {
      const first = start + g * group;
      for (let c = 0; c < d; c++) fakeQuantize(k, (j) => ((h * S + first + j) * d) + c, group, bits);
      for (let j = 0; j < group; j++) {
        fakeQuantize(v, (c) => (h * S + first + j) * d + c, d, bits);
        done[h]!.add(L.positions[h * S + first + j]!);
      }
    }
  }
  const shape: [number, number, number] = [Hkv, S, d];
  L.k!.dispose();
  L.v!.dispose();
  L.k = tf.keep(tf.tensor3d(k, shape));
  L.v = tf.keep(tf.tensor3d(v, shape));
}
