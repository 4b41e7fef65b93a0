/**
 * AdaKV (src/cache/adakv.ts): on a hand-made attention pattern (one-hot keys, so each query's logits are written
 * directly) it keeps, per KV head, what an independent float64 reference of kvpress's AdaKVPress over SnapKV keeps
 * (test/reference/scorers64.ts); a head that keeps fewer tokens holds masked slots that attention skips and the KV
 * bytes leave out; on stories260K the layer budget is exact, masked slots change nothing and no tensor leaks.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { resolve } from "node:path";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { KVCache } from "../src/backbone/kv-cache.js";
import { groupedAttention, keyBiasOf } from "../src/backbone/attention.js";
import { loadBackbone } from "../src/loaders/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import { CachedSession } from "../src/cache/cached-session.js";
import type { CompressContext } from "../src/cache/policy.js";
import { adakvPolicy } from "../src/cache/adakv.js";
import { snapkvPolicy } from "../src/cache/snapkv.js";
import { createPolicy, methodByName } from "../src/cache/registry.js";
import { parseMethodOptions } from "../src/cache/method.js";
import { parseSuite } from "../src/eval/suite.js";
import { methodOptionFlags } from "../src/cli/commands/generate.js";
import { Rng } from "../src/util/rng.js";
import { adakv64, snapkv64, type Mat } from "./reference/scorers64.js";

const Hkv = 2;
const g = 2;
const S = 16;
const d = S; // one-hot keys: q · k_i = q[i]
const W = 2; // observation window

/** Window logits per KV head (both query heads of the group alike): head 0 concentrated, head 1 spread. */
function pattern(peaks: number[]): number[][] {
  const concentrated = Array.from({ length: S }, (_, i) => (peaks.includes(i) ? 6 : 0.1 * (i % 3)));
  const spread = Array.from({ length: S }, (_, i) => 1 + 0.05 * ((i * 7) % 11));
  return [concentrated, spread];
}

/** Queries [H][S][d]: the window rows carry logits·√d (so softmax(q·k/√d) has exactly those logits), float32. */
function queries(logits: number[][]): Mat[] {
  return Array.from({ length: Hkv * g }, (_, h) =>
    Array.from({ length: S }, (_, t) => (t < S - W ? new Array<number>(d).fill(0) : logits[Math.floor(h / g)]!.map((x) => Math.fround(x * Math.sqrt(d))))),
  );
}

const keys: Mat[] = Array.from({ length: Hkv }, () => Array.from({ length: S }, (_, i) => Array.from({ length: d }, (_, c) => (c === i ? 1 : 0))));
let values: Mat[];

beforeAll(async () => {
  await initBackend("cpu");
  const rng = new Rng(3);
  values = Array.from({ length: Hkv }, () => Array.from({ length: S }, () => Array.from({ length: d }, () => Math.fround(rng.normal()))));
});

/** One prefill compress of `policy` on the hand-made layer; the cache after it (caller disposes). */
async function compressed(q: Mat[], policy: ReturnType<typeof adakvPolicy>): Promise<KVCache> {
  const cache = new KVCache(1, Hkv, d);
  tf.tidy(() => cache.append(0, tf.tensor3d(keys.flat(2), [Hkv, S, d]), tf.tensor3d(values.flat(2), [Hkv, S, d]), Int32Array.from({ length: S }, (_, i) => i)));
  const qt = tf.tensor3d(q.flat(2), [Hkv * g, S, d]);
  const ctx = { phase: "prefill", q: qt, kRot: cache.layers[0]!.k!, numLayers: 1 } as unknown as CompressContext;
  await policy.compress(0, cache, ctx);
  qt.dispose();
  policy.dispose?.();
  return cache;
}

/** Positions per head of the slots that hold kept tokens (not masked). */
function keptPositions(cache: KVCache): number[][] {
  const L = cache.layers[0]!;
  return Array.from({ length: Hkv }, (_, h) => Array.from(L.positions.subarray(h * L.length, (h + 1) * L.length)).filter((_, j) => !L.masked?.[h * L.length + j]));
}

const bytesPerToken = 2 * d * 4; // one KV head's key and value, fp32

describe("adakv on a hand-made attention pattern", () => {
  it("gives the spread head the budget the concentrated head does not need (float64 kvpress reference)", async () => {
    const q = queries(pattern([3, 9]));
    const cache = await compressed(q, adakvPolicy({ budgetTokens: 6, observationWindow: W, kernelSize: 1 }));
    const want = adakv64(snapkv64(q, keys, W, 1), 6, W, 0.2);
    expect(keptPositions(cache)).toEqual(want);
    // By hand: head 0 needs only its two peaks; head 1 takes the other four older slots (its six best).
    expect(want[0]).toEqual([3, 9, 14, 15]);
    expect(want[1]!.length).toBe(8);
    // Dense storage at the widest head's count, head 0's 4 extra slots masked; bytes count the 12 kept tokens.
    expect(cache.layers[0]!.length).toBe(8);
    expect(Array.from(cache.layers[0]!.masked!).reduce((a, b) => a + b, 0)).toBe(4);
    expect(cache.kvBytes()).toBe(Hkv * 6 * bytesPerToken);
    expect(cache.layerKvBytes(0)).toBe(Hkv * 6 * bytesPerToken);
    cache.dispose();
    // SnapKV on the same pattern keeps 6 per head.
    const uniform = await compressed(q, snapkvPolicy({ budgetTokens: 6, observationWindow: W, kernelSize: 1 }));
    expect(keptPositions(uniform).map((k) => k.length)).toEqual([6, 6]);
    expect(uniform.layers[0]!.masked).toBeUndefined();
    uniform.dispose();
  });

  it("the safeguard keeps ⌊alpha · budget⌋ tokens in a head that would give almost all away", async () => {
    const q = queries(pattern([5]));
    for (const alpha of [0, 0.5]) {
      for (const kernel of [1, 3]) {
        const cache = await compressed(q, adakvPolicy({ budgetTokens: 8, observationWindow: W, kernelSize: kernel, alphaSafeguard: alpha }));
        expect(keptPositions(cache)).toEqual(adakv64(snapkv64(q, keys, W, kernel), 8, W, alpha));
        expect(cache.kvBytes()).toBe(Hkv * 8 * bytesPerToken);
        cache.dispose();
      }
    }
    // By hand (kernel 1): without a safeguard head 0 keeps its one peak and the window; with alpha 0.5 it keeps
    // ⌊0.5 · 8⌋ = 4 tokens, the window counting first, so its peak and its next best (logit 0.2 at 2, 8, 11: the
    // earliest). Kernel 3 pools the peak onto 4 and 6, which then win anyway.
    expect(adakv64(snapkv64(q, keys, W, 1), 8, W, 0)[0]).toEqual([5, 14, 15]);
    expect(adakv64(snapkv64(q, keys, W, 1), 8, W, 0.5)[0]).toEqual([2, 5, 14, 15]);
    expect(adakv64(snapkv64(q, keys, W, 3), 8, W, 0.5)[0]).toEqual([4, 5, 6, 14, 15]);
  });

  it("attention over the compressed layer skips the masked slots (float64 softmax over the kept tokens)", async () => {
    const cache = await compressed(queries(pattern([3, 9])), adakvPolicy({ budgetTokens: 6, observationWindow: W, kernelSize: 1 }));
    const L = cache.layers[0]!;
    const rng = new Rng(8);
    const qNew = Array.from({ length: Hkv * g }, () => [Array.from({ length: d }, () => Math.fround(rng.normal()))]);
    const out = tf.tidy(() => {
      const qt = tf.tensor3d(qNew.flat(2), [Hkv * g, 1, d]);
      return groupedAttention(qt, L.k!, L.v!, { keyBias: keyBiasOf(L.masked!, Hkv, L.length) }).arraySync()[0]!;
    });
    const kept = keptPositions(cache);
    for (let h = 0; h < Hkv * g; h++) {
      const kv = Math.floor(h / g);
      const logits = kept[kv]!.map((i) => keys[kv]![i]!.reduce((s, x, c) => s + x * qNew[h]![0]![c]!, 0) / Math.sqrt(d));
      const m = Math.max(...logits);
      const e = logits.map((x) => Math.exp(x - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let c = 0; c < d; c++) {
        const want = kept[kv]!.reduce((s, i, j) => s + (e[j]! / z) * values[kv]![i]![c]!, 0);
        expect(Math.abs(out[h * d + c]! - want)).toBeLessThan(1e-5);
      }
    }
    cache.dispose();
  });
});

describe("adakv on stories260K", () => {
  const stories = resolve(__dirname, "../../shared/models/stories260K/stories260K.bin");
  let model: LlamaModel;
  let prompt: number[];

  beforeAll(async () => {
    const b = await loadBackbone(stories);
    model = LlamaModel.fromHost(b.config, b.weights);
    const text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog Max. ";
    prompt = b.tokenizer.encode(text + text + text, { bos: true }).slice(0, 64);
  });
  afterAll(() => model?.dispose());

  it("keeps numKvHeads · budget tokens a layer; masked slots change nothing; no tensor leaks in decode", async () => {
    const { numLayers, numKvHeads, headDim } = model.config;
    const B = 24;
    const a = new CachedSession(model, adakvPolicy({ budgetTokens: B, observationWindow: 8 }));
    const b = new CachedSession(model, adakvPolicy({ budgetTokens: B, observationWindow: 8 }));
    (await a.prefill(prompt)).dispose();
    (await b.prefill(prompt)).dispose();
    for (let layer = 0; layer < numLayers; layer++) expect(a.cache.keptTokens(layer)).toBe(numKvHeads * B);
    expect(a.kvBytes()).toBe(numLayers * numKvHeads * B * 2 * headDim * 4);
    const maskedLayers = a.cache.layers.filter((L) => L.masked);
    expect(maskedLayers.length).toBeGreaterThan(0); // the heads of some layer did split the budget unevenly
    // Garbage in b's masked slots: the next token's logits stay exactly the same.
    for (const L of b.cache.layers) {
      if (!L.masked) continue;
      const flags = tf.tensor3d(Float32Array.from(L.masked, (m) => m * 1000), [numKvHeads, L.length, 1]);
      const [k, v] = [tf.keep(tf.add(L.k!, flags) as tf.Tensor3D), tf.keep(tf.sub(L.v!, flags) as tf.Tensor3D)];
      flags.dispose();
      L.k!.dispose();
      L.v!.dispose();
      [L.k, L.v] = [k, v];
    }
    const next = prompt[prompt.length - 1]!;
    const [la, lb] = [await a.step(next), await b.step(next)];
    expect(Array.from(await la.data())).toEqual(Array.from(await lb.data()));
    tf.dispose([la, lb]);
    b.dispose();
    const before = tf.memory().numTensors;
    for (let t = 0; t < 6; t++) (await a.step(prompt[t]!)).dispose();
    expect(tf.memory().numTensors).toBe(before);
    for (let layer = 0; layer < numLayers; layer++) expect(a.cache.keptTokens(layer)).toBe(numKvHeads * (B + 7));
    a.dispose();
  });
});

describe("adakv in the registry and on the command line", () => {
  const base = { name: "s", backbone: "/x", lengths: [64], tasks: [{ name: "passkey", source: "synthetic" }], corpus: "/c" };

  it("is a suite entry with a scorer (default snapkv) and alphaSafeguard; bad values are one-line errors", () => {
    const suite = parseSuite({
      ...base,
      methods: [
        { name: "adakv", budget: 16 },
        { name: "adakv", label: "ada-knorm", budget: "25%", scorer: "knorm", alphaSafeguard: 0.5 },
      ],
    });
    expect(suite.methods.map((m) => m.label ?? m.name)).toEqual(["adakv", "ada-knorm"]);
    expect(() => parseSuite({ ...base, methods: [{ name: "adakv", budget: 16, scorer: "tova" }] })).toThrow(/scorer/);
    expect(() => parseSuite({ ...base, methods: [{ name: "adakv", budget: 16, alphaSafeguard: 1.5 }] })).toThrow(/alphaSafeguard/);
    expect(() => parseSuite({ ...base, methods: [{ name: "adakv", budget: 16, beta: 2 }] })).toThrow(/beta/);
    const p = createPolicy("adakv", { budgetTokens: 12 });
    expect([p.name, p.budgetFor(0, 4)]).toEqual(["adakv", 12]);
  });

  it("--method adakv --method-option scorer=keydiff --method-option alphaSafeguard=0.3 parses to its policy", () => {
    const descriptor = methodByName("adakv");
    const options = parseMethodOptions(descriptor, { budget: 20, ...methodOptionFlags(["scorer=keydiff", "alphaSafeguard=0.3", "observationWindow=8"]) });
    expect(options).toEqual({ budget: 20, scorer: "keydiff", alphaSafeguard: 0.3, observationWindow: 8 });
    const policy = descriptor.policy!(options, 100, "method adakv");
    expect([policy.name, policy.budgetFor(0, 4)]).toEqual(["adakv", 20]);
    expect(() => parseMethodOptions(descriptor, { budget: 20, ...methodOptionFlags(["scorer=h2o"]) })).toThrow(/method adakv: scorer/);
  });
});
