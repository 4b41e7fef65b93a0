/**
 * The scoring methods added through the registry (KNorm, KeyDiff, LagKV, ChunkKV) keep the tokens an independent
 * float64 reference (test/reference/scorers64.ts) keeps on fixed keys and values, per KV head; KIVI-style
 * quantisation writes the reference's dequantised numbers and counts its bytes as a quantised store holds them.
 */
import { describe, it, expect, beforeAll } from "vitest";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { KVCache } from "../src/backbone/kv-cache.js";
import type { CachePolicy, CompressContext } from "../src/cache/policy.js";
import { fullPolicy } from "../src/cache/full.js";
import { knormPolicy } from "../src/cache/knorm.js";
import { keydiffPolicy } from "../src/cache/keydiff.js";
import { lagkvPolicy } from "../src/cache/lagkv.js";
import { chunkkvPolicy } from "../src/cache/chunkkv.js";
import { withKvQuantization } from "../src/cache/kv-quantization.js";
import { METHODS, createPolicy } from "../src/cache/registry.js";
import { parseSuite } from "../src/eval/suite.js";
import { Rng } from "../src/util/rng.js";
import { chunkkv64, expectedAttention64, keydiff64, knorm64, lagkv64, quantize64, type Mat } from "./reference/scorers64.js";
import { expectedAttentionScorer } from "../src/cache/expected-attention.js";
import { scorerPolicy } from "../src/cache/scorer.js";
import { RopeTable } from "../src/backbone/rope.js";

const Hkv = 2;
const d = 8;
const S = 48;
let keys: Mat[]; // [h][i][c]
let values: Mat[];

beforeAll(async () => {
  await initBackend("cpu");
  const rng = new Rng(5);
  // float32-representable numbers, so the cache and the reference see the same values.
  const mat = (scale: (i: number) => number) =>
    Array.from({ length: Hkv }, () => Array.from({ length: S }, (_, i) => Array.from({ length: d }, () => Math.fround(rng.normal() * scale(i)))));
  keys = mat((i) => 0.5 + (i % 7) / 5);
  values = mat(() => 1);
});

function filledCache(): KVCache {
  const cache = new KVCache(1, Hkv, d);
  tf.tidy(() => cache.append(0, tf.tensor3d(keys.flat(2), [Hkv, S, d]), tf.tensor3d(values.flat(2), [Hkv, S, d]), Int32Array.from({ length: S }, (_, i) => i)));
  return cache;
}

/** Runs one prefill compress of `policy` on the fixed cache; kept positions per head. */
async function keptBy(policy: CachePolicy): Promise<number[][]> {
  const cache = filledCache();
  const q = tf.zeros([Hkv, 1, d]) as tf.Tensor3D;
  const ctx = { phase: "prefill", q, kRot: cache.layers[0]!.k!, numLayers: 1 } as unknown as CompressContext;
  await policy.compress(0, cache, ctx);
  q.dispose();
  const L = cache.layers[0]!;
  const out = Array.from({ length: Hkv }, (_, h) => Array.from(L.positions.subarray(h * L.length, (h + 1) * L.length)));
  cache.dispose();
  policy.dispose?.();
  return out;
}

describe("scoring methods keep what the float64 references keep", () => {
  it("knorm: the lowest-norm keys per head", async () => {
    expect(await keptBy(knormPolicy({ budgetTokens: 20 }))).toEqual(keys.map((k) => knorm64(k, 20)));
  });

  it("keydiff: the keys least similar to the mean unit key per head", async () => {
    expect(await keptBy(keydiffPolicy({ budgetTokens: 20 }))).toEqual(keys.map((k) => keydiff64(k, 20)));
  });

  it("lagkv: sinks and tail, then the best lag-relative ranks; recency when the cache is short", async () => {
    expect(await keptBy(lagkvPolicy({ budgetTokens: 30, sinkTokens: 4, lagSize: 8 }))).toEqual(keys.map((k, h) => lagkv64(k, values[h]!, 30, 4, 8)));
    // 48 < 4 + 2·24: scored by recency.
    expect(await keptBy(lagkvPolicy({ budgetTokens: 20, sinkTokens: 4, lagSize: 24 }))).toEqual(keys.map((k, h) => lagkv64(k, values[h]!, 20, 4, 24)));
  });

  it("chunkkv over knorm: whole chunks by mean score, the same in every head", async () => {
    const norms = keys.map((k) => k.map((x) => -Math.sqrt(x.reduce((s, v) => s + v * v, 0))));
    const want = chunkkv64(norms, 20, 6);
    expect(await keptBy(chunkkvPolicy({ budgetTokens: 20, chunkLength: 6, scorer: "knorm" }))).toEqual([want, want]);
  });
});

describe("expected attention", () => {
  it("keeps what a float64 Gaussian model of future queries (mean rotation over the next positions) keeps", async () => {
    const g = 2;
    const H = Hkv * g;
    const rng = new Rng(9);
    const qPre = Array.from({ length: H }, () => Array.from({ length: S }, () => Array.from({ length: d }, () => Math.fround(rng.normal() + 0.5))));
    const rope = new RopeTable(d, 10000, null);
    const q = tf.tidy(() => rope.apply(tf.tensor3d(qPre.flat(2), [H, S, d]), Int32Array.from({ length: S }, (_, i) => i)));
    const cache = filledCache();
    const ctx = { phase: "prefill", q, kRot: cache.layers[0]!.k!, numLayers: 1, rope } as unknown as CompressContext;
    const policy = scorerPolicy(expectedAttentionScorer(4, 64), { name: "expected-attention", budgetFor: () => 20 });
    await policy.compress(0, cache, ctx);
    const L = cache.layers[0]!;
    const kept = Array.from({ length: Hkv }, (_, h) => Array.from(L.positions.subarray(h * 20, (h + 1) * 20)));
    expect(kept).toEqual(expectedAttention64(qPre, keys, values, 20, 4, 64, 10000));
    q.dispose();
    cache.dispose();
    rope.dispose();
  });
});

describe("KIVI-style quantisation wrapper", () => {
  it("keys per channel over groups of tokens, values per token, the residual untouched; bytes counted quantised", async () => {
    const bits = 4;
    const group = 8;
    const policy = withKvQuantization(fullPolicy(), { bits, groupSize: group, residualTokens: 8 });
    const cache = filledCache();
    const ctx = { phase: "prefill", numLayers: 1 } as unknown as CompressContext;
    const tensors = tf.memory().numTensors;
    await policy.compress(0, cache, ctx);
    expect(tf.memory().numTensors).toBe(tensors); // the quantised k/v replace the old ones
    const k = (await cache.layers[0]!.k!.array()) as Mat[];
    const v = (await cache.layers[0]!.v!.array()) as Mat[];
    const quantizedTokens = Math.floor((S - 8) / group) * group; // 40 → 5 groups
    for (let h = 0; h < Hkv; h++) {
      for (let start = 0; start < quantizedTokens; start += group) {
        for (let c = 0; c < d; c++) {
          const want = quantize64(keys[h]!.slice(start, start + group).map((x) => x[c]!), bits);
          want.forEach((x, j) => expect(Math.abs(k[h]![start + j]![c]! - x)).toBeLessThan(1e-5));
        }
      }
      for (let i = 0; i < S; i++) {
        const want = i < quantizedTokens ? quantize64(values[h]![i]!, bits) : values[h]![i]!;
        want.forEach((x, c) => expect(Math.abs(v[h]![i]![c]! - x)).toBeLessThan(1e-5));
        if (i >= quantizedTokens) expect(k[h]![i]).toEqual(keys[h]![i]);
      }
    }
    // Per head: quantised keys and values at 4 bits, fp16 scale + zero per key group·channel and per value token,
    // float32 residual.
    const perHead = (quantizedTokens * d * bits) / 8 + (quantizedTokens / group) * d * 2 * 2 + (quantizedTokens * d * bits) / 8 + quantizedTokens * 2 * 2 + (S - quantizedTokens) * d * 2 * 4;
    expect(policy.kvBytes!(cache)).toBe(Hkv * perHead);
    expect(policy.kvBytes!(cache)).toBeLessThan(cache.kvBytes() / 2);
    // A second call quantises nothing again (the numbers stay those of the first quantisation).
    await policy.compress(0, cache, ctx);
    expect(await cache.layers[0]!.k!.array()).toEqual(k);
    cache.dispose();
  });
});

describe("registry", () => {
  it("every method is a suite entry, its own keys only, listed in --help order", () => {
    const base = { name: "s", backbone: "/x", lengths: [64], tasks: [{ name: "passkey", source: "synthetic" }], corpus: "/c" };
    const entries = METHODS.map((m) => ({ name: m.name, ...(m.optionsSchema.shape["budget"] ? { budget: 16 } : {}) }));
    const suite = parseSuite({ ...base, methods: entries });
    expect(suite.methods.map((m) => m.name)).toEqual(METHODS.map((m) => m.name));
    for (const m of METHODS) {
      expect(m.paper.length).toBeGreaterThan(10);
      expect(m.summary.length).toBeGreaterThan(10);
    }
    expect(() => parseSuite({ ...base, methods: [{ name: "snapkv", budget: 16, recentTokens: 4 }] })).toThrow(
      /unknown key "methods\[0\]\.recentTokens" — allowed keys in methods\[0\]: name, label, budget, observationWindow, kernelSize, observation, kvQuantization/,
    );
    expect(() => parseSuite({ ...base, methods: [{ name: "h2o", budget: 16, kvQuantization: { bits: 3 } }] })).toThrow(/kvQuantization\.bits/);
    expect(createPolicy("knorm", { budgetTokens: 8 }).name).toBe("knorm");
  });
});
