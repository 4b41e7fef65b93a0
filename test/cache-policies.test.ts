import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { resolve } from "node:path";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { loadBackbone } from "../src/loaders/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import type { LlamaConfig } from "../src/backbone/config.js";
import { KVCache } from "../src/backbone/kv-cache.js";
import { groupedAttention } from "../src/backbone/attention.js";
import { CachedSession } from "../src/cache/cached-session.js";
import type { CachePolicy } from "../src/cache/policy.js";
import { fullPolicy } from "../src/cache/full.js";
import { streamingPolicy } from "../src/cache/streaming.js";
import { h2oPolicy } from "../src/cache/h2o.js";
import { snapkvPolicy } from "../src/cache/snapkv.js";
import { pyramidkvPolicy } from "../src/cache/pyramidkv.js";
import { tovaPolicy } from "../src/cache/tova.js";
import { randomPolicy } from "../src/cache/random.js";
import { createPolicy, METHOD_NAMES } from "../src/cache/registry.js";
import { resolveBudget } from "../src/cache/budget.js";
import { EdgeInfError } from "../src/util/errors.js";
import { Rng } from "../src/util/rng.js";
import { snapkv64, topN } from "./reference/scorers64.js";

const stories = resolve(__dirname, "../../shared/models/stories260K/stories260K.bin");
const STORY =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog Max. " +
  "One day, she saw a big red ball under a tree. She ran to get it, but a bird was sitting on the ball. " +
  "Lily said, hello bird, can I have my ball? The bird sang a happy song and flew away. Lily and Max played all day. ";
const N = 120; // prompt length in every backbone test

let model: LlamaModel;
let config: LlamaConfig;
let prompt: number[];
let continuation: number[];

beforeAll(async () => {
  await initBackend("cpu");
  const b = await loadBackbone(stories);
  config = b.config;
  model = LlamaModel.fromHost(b.config, b.weights);
  const ids = b.tokenizer.encode(STORY + STORY + STORY, { bos: true });
  expect(ids.length).toBeGreaterThanOrEqual(N + 25);
  prompt = ids.slice(0, N);
  continuation = ids.slice(N, N + 25);
});

afterAll(() => model?.dispose());

// ---------- helpers (float64 references written independently of src/cache) ----------

/** Everything a policy was given and what the cache held around one compress call. */
interface Capture {
  layer: number;
  phase: "prefill" | "decode";
  q: number[][][]; // [H][T][d]
  kRot: number[][][]; // [Hkv][S][d]
  before: Int32Array; // positions, head-major
  lengthBefore: number;
  after: Int32Array;
  lengthAfter: number;
}

function spy(inner: CachePolicy, log: Capture[]): CachePolicy {
  return {
    name: inner.name,
    observe: inner.observe ? (l, p, ph) => inner.observe!(l, p, ph) : undefined,
    keyPositions: inner.keyPositions ? (l, n, p) => inner.keyPositions!(l, n, p) : undefined,
    rotatedPositions: inner.rotatedPositions ? (l, c) => inner.rotatedPositions!(l, c) : undefined,
    async compress(layer, cache, ctx) {
      const before = cache.layers[layer]!.positions.slice();
      const lengthBefore = cache.length(layer);
      const q = await ctx.q.array();
      const kRot = await ctx.kRot.array();
      await inner.compress(layer, cache, ctx);
      log.push({ layer, phase: ctx.phase, q, kRot, before, lengthBefore, after: cache.layers[layer]!.positions.slice(), lengthAfter: cache.length(layer) });
    },
    budgetFor: (l, n) => inner.budgetFor(l, n),
    dispose: () => inner.dispose?.(),
  };
}

function dot(a: number[], b: number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Float64 softmax of q·k/√d over the given keys. */
function softmax64(q: number[], keys: number[][]): number[] {
  const scale = 1 / Math.sqrt(q.length);
  const logits = keys.map((k) => dot(q, k) * scale);
  const m = Math.max(...logits);
  const e = logits.map((x) => Math.exp(x - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

/** Indices of the n largest (ties → smaller index), as a sorted list. */
const largest = topN;

/**
 * The kept set equals the reference top-n, except possibly for tokens whose reference score is within `tol` of
 * the cut-off (float32 vs float64 near-ties).
 */
function expectSameSelection(kept: number[], scores: number[], n: number, tol = 1e-6): void {
  const ref = largest(scores, n);
  const cutoff = scores[ref.reduce((m, i) => (scores[i]! < scores[m]! ? i : m), ref[0]!)]!;
  const keptSet = new Set(kept);
  const refSet = new Set(ref);
  const differ = [...kept.filter((i) => !refSet.has(i)), ...ref.filter((i) => !keptSet.has(i))];
  for (const i of differ) expect(Math.abs(scores[i]! - cutoff)).toBeLessThanOrEqual(tol);
  expect(differ.length).toBeLessThanOrEqual(2);
  expect(kept.length).toBe(n);
}

function headPositions(positions: Int32Array, head: number, length: number): number[] {
  return Array.from(positions.subarray(head * length, (head + 1) * length));
}

function layerLengths(s: CachedSession): number[] {
  return s.cache.layers.map((L) => L.length);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function prefillAndDrop(s: CachedSession, ids: number[]): Promise<void> {
  (await s.prefill(ids)).dispose();
}

function tokenBytes(): number {
  return 2 * config.numKvHeads * config.headDim * 4;
}

// ---------- budgets and bytes ----------

describe("every method holds its budget after prefill", () => {
  const B = 40;
  const cases: [string, () => CachePolicy][] = [
    ["streaming", () => streamingPolicy({ sinkTokens: 4, windowTokens: B - 4 })],
    ["h2o", () => h2oPolicy({ budgetTokens: B, recentTokens: 10 })],
    ["snapkv", () => snapkvPolicy({ budgetTokens: B, observationWindow: 8 })],
    ["tova", () => tovaPolicy({ budgetTokens: B })],
    ["random", () => randomPolicy({ budgetTokens: B, seed: 7 })],
  ];
  for (const [name, make] of cases) {
    it(`${name}: every layer holds exactly ${B} of ${N} tokens and KV bytes = tokens × 2·Hkv·d·4`, async () => {
      const s = new CachedSession(model, make());
      await prefillAndDrop(s, prompt);
      expect(layerLengths(s)).toEqual(Array(config.numLayers).fill(B));
      expect(s.kvBytes()).toBe(config.numLayers * B * tokenBytes());
      // Layers evict one after another in prefill, so the peak is the last layer's full prompt over the others' budgets.
      expect(s.peakKvBytes()).toBe(((config.numLayers - 1) * B + N) * tokenBytes());
      for (let l = 0; l < config.numLayers; l++) expect(s.policy.budgetFor(l, config.numLayers)).toBe(B);
      s.dispose();
    });
  }

  it("pyramidkv: per-layer budgets fall linearly (kvpress formula) and sum to numLayers·B", async () => {
    // N = 120, B = 60, window 8, beta 20, 5 layers, worked by hand from kvpress get_layer_budget:
    // min = 60/20 = 3, max = 120 − 3 = 117 ≥ N − window = 112 → max = 112, min = 120 − 112 = 8 (≥ window: pyramid holds);
    // step = (112 − 8)/4 = 26 → 112, 86, 60, 34, 8.
    const expected = [112, 86, 60, 34, 8];
    const s = new CachedSession(model, pyramidkvPolicy({ budgetTokens: 60, observationWindow: 8 }));
    await prefillAndDrop(s, prompt);
    expect(layerLengths(s)).toEqual(expected);
    expect(expected.reduce((a, b) => a + b, 0)).toBe(5 * 60);
    expect(s.kvBytes()).toBe(300 * tokenBytes());
    expect(expected.map((_, l) => s.policy.budgetFor(l, 5))).toEqual(expected);
    s.dispose();
  });

  it("pyramidkv: falls back to a uniform budget when the top layer would be smaller than the window", async () => {
    // B = 40: min = 2, max = 78 < 112, but min 2 < window 8 → every layer keeps 40 (kvpress falls back to SnapKV).
    const s = new CachedSession(model, pyramidkvPolicy({ budgetTokens: 40, observationWindow: 8 }));
    await prefillAndDrop(s, prompt);
    expect(layerLengths(s)).toEqual([40, 40, 40, 40, 40]);
    s.dispose();
  });
});

// ---------- exactness without eviction ----------

describe("no eviction equals the backbone", () => {
  for (const [name, make] of [
    ["full", () => fullPolicy()],
    ["streaming (window ≥ length)", () => streamingPolicy({ sinkTokens: 4, windowTokens: 1000 })],
  ] as const) {
    it(`${name}: prefill and decode logits equal model.forward`, async () => {
      const ids = [...prompt, ...continuation.slice(0, 2)];
      const reference = tf.tidy(() => model.logits(model.forward(ids))).arraySync() as number[][];
      const s = new CachedSession(model, make());
      const got: number[][] = [];
      const l0 = await s.prefill(prompt);
      got.push(Array.from(l0.dataSync()));
      l0.dispose();
      for (const id of continuation.slice(0, 2)) {
        const l = await s.step(id);
        got.push(Array.from(l.dataSync()));
        l.dispose();
      }
      for (let i = 0; i < got.length; i++) expect(maxAbsDiff(got[i]!, reference[N - 1 + i]!)).toBeLessThanOrEqual(1e-6);
      s.dispose();
    });
  }
});

// ---------- selection logic against independent references ----------

describe("streaming", () => {
  it("keeps positions [0, s) ∪ [N − w, N) in every layer and head, also after 20 decode steps", async () => {
    const sink = 4;
    const window = 20;
    const s = new CachedSession(model, streamingPolicy({ sinkTokens: sink, windowTokens: window }));
    // In-cache positions: new tokens are rotated at their index in the cache.
    expect(Array.from(s.policy.keyPositions!(0, 24, Int32Array.from([500, 501])))).toEqual([24, 25]);
    await prefillAndDrop(s, prompt);
    const expectKept = (n: number) => {
      const want = [...Array.from({ length: sink }, (_, i) => i), ...Array.from({ length: window }, (_, i) => n - window + i)];
      for (const L of s.cache.layers) {
        expect(L.length).toBe(sink + window);
        for (let h = 0; h < config.numKvHeads; h++) expect(headPositions(L.positions, h, L.length)).toEqual(want);
      }
    };
    expectKept(N);
    for (let t = 0; t < 20; t++) {
      (await s.step(continuation[t]!)).dispose();
      expectKept(N + t + 1);
    }
    s.dispose();
  });
});

describe("snapkv", () => {
  const snapkvReference = snapkv64;

  it("keeps the float64 reference's top tokens per KV head plus the observation window; no eviction in decode", async () => {
    const B = 40;
    const window = 8;
    const log: Capture[] = [];
    const s = new CachedSession(model, spy(snapkvPolicy({ budgetTokens: B, observationWindow: window, kernelSize: 5 }), log));
    await prefillAndDrop(s, prompt);
    expect(log.length).toBe(config.numLayers);
    for (const c of log) {
      const ref = snapkvReference(c.q, c.kRot, window, 5);
      for (let h = 0; h < config.numKvHeads; h++) {
        const kept = headPositions(c.after, h, c.lengthAfter);
        const windowPart = kept.slice(B - window);
        expect(windowPart).toEqual(Array.from({ length: window }, (_, i) => N - window + i));
        expectSameSelection(kept.slice(0, B - window), ref[h]!, B - window);
      }
    }
    // Heads of one layer choose differently (scores are per KV head, not shared).
    const last = log[log.length - 1]!;
    const perHead = new Set(Array.from({ length: config.numKvHeads }, (_, h) => headPositions(last.after, h, B).join(",")));
    expect(perHead.size).toBeGreaterThan(1);
    for (let t = 0; t < 5; t++) (await s.step(continuation[t]!)).dispose();
    expect(layerLengths(s)).toEqual(Array(config.numLayers).fill(B + 5));
    s.dispose();
  });

  it("pyramidkv uses the same selection with its layer budget", async () => {
    const log: Capture[] = [];
    const s = new CachedSession(model, spy(pyramidkvPolicy({ budgetTokens: 60, observationWindow: 8, kernelSize: 3 }), log));
    await prefillAndDrop(s, prompt);
    const budgets = [112, 86, 60, 34, 8];
    for (const c of log) {
      const B = budgets[c.layer]!;
      const ref = snapkvReference(c.q, c.kRot, 8, 3);
      for (let h = 0; h < config.numKvHeads; h++) {
        const kept = headPositions(c.after, h, c.lengthAfter);
        expect(kept.slice(B - 8)).toEqual(Array.from({ length: 8 }, (_, i) => N - 8 + i));
        if (B > 8) expectSameSelection(kept.slice(0, B - 8), ref[h]!, B - 8);
      }
    }
    s.dispose();
  });
});

describe("tova", () => {
  /** Float64 TOVA score: last query's softmax over all keys, averaged over all query heads. */
  function tovaReference(q: number[][][], k: number[][][]): number[] {
    const H = q.length;
    const g = H / k.length;
    const S = k[0]!.length;
    const score = new Array<number>(S).fill(0);
    for (let h = 0; h < H; h++) {
      const qh = q[h]!;
      const p = softmax64(qh[qh.length - 1]!, k[Math.floor(h / g)]!);
      for (let i = 0; i < S; i++) score[i]! += p[i]! / H;
    }
    return score;
  }

  it("keeps the last query's top tokens (same for all heads) at prefill and drops its argmin each decode step", async () => {
    const B = 30;
    const log: Capture[] = [];
    const s = new CachedSession(model, spy(tovaPolicy({ budgetTokens: B }), log));
    await prefillAndDrop(s, prompt);
    for (let t = 0; t < 20; t++) {
      (await s.step(continuation[t]!)).dispose();
      expect(layerLengths(s)).toEqual(Array(config.numLayers).fill(B));
    }
    expect(log.length).toBe(21 * config.numLayers);
    for (const c of log) {
      const score = tovaReference(c.q, c.kRot);
      expect(c.lengthBefore).toBe(c.phase === "prefill" ? N : B + 1);
      const kept0 = headPositions(c.after, 0, B);
      for (let h = 1; h < config.numKvHeads; h++) expect(headPositions(c.after, h, B)).toEqual(kept0);
      // Map kept positions back to indices of the cache before eviction.
      const before0 = headPositions(c.before, 0, c.lengthBefore);
      const keptIdx = kept0.map((p) => before0.indexOf(p));
      expectSameSelection(keptIdx, score, B);
    }
    s.dispose();
  });
});

describe("h2o", () => {
  it("accumulated scores and kept tokens match a float64 simulation (GQA, query blocks, 6 decode steps)", async () => {
    const Hkv = 2;
    const g = 2;
    const H = Hkv * g;
    const d = 4;
    const budget = 5;
    const recent = 2;
    const rng = new Rng(11);
    const randArr = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
    const policy = h2oPolicy({ budgetTokens: budget, recentTokens: recent });
    const cache = new KVCache(1, Hkv, d);
    // Reference state per KV head: position, key and accumulated score of every cached token.
    const ref = Array.from({ length: Hkv }, () => [] as { pos: number; key: number[]; score: number }[]);
    let pos = 0;
    const stepsT = [7, 1, 1, 1, 1, 1, 1];
    for (const [step, T] of stepsT.entries()) {
      const phase = step === 0 ? "prefill" : "decode";
      const qData = randArr(H * T * d);
      const kData = randArr(Hkv * T * d);
      const vData = randArr(Hkv * T * d);
      const positions = Int32Array.from({ length: T }, (_, i) => pos + i);
      const q = tf.tensor3d(qData, [H, T, d]);
      tf.tidy(() => {
        cache.append(0, tf.tensor3d(kData, [Hkv, T, d]), tf.tensor3d(vData, [Hkv, T, d]), positions);
        const L = cache.layers[0]!;
        // A tiny score budget forces 2-query blocks in prefill, so observe sees partial key ranges.
        groupedAttention(q, L.k!, L.v!, { maxScoreBytes: 4 * H * L.length * 2, observe: (p) => policy.observe(0, p, phase) });
      });
      // compress reads the observed attention asynchronously, outside any tidy (as CachedSession calls it).
      await policy.compress(0, cache, { phase, q, kRot: cache.layers[0]!.k!, numLayers: 1 });
      q.dispose();
      // Float64 simulation.
      for (let kv = 0; kv < Hkv; kv++) {
        const toks = ref[kv]!;
        for (let t = 0; t < T; t++) toks.push({ pos: pos + t, key: Array.from(kData.subarray((kv * T + t) * d, (kv * T + t + 1) * d)), score: 0 });
        const past = toks.length - T;
        for (let j = 0; j < g; j++) {
          const h = kv * g + j;
          for (let t = 0; t < T; t++) {
            const qv = Array.from(qData.subarray((h * T + t) * d, (h * T + t + 1) * d));
            const p = softmax64(qv, toks.slice(0, past + t + 1).map((x) => x.key));
            p.forEach((pi, i) => (toks[i]!.score += pi));
          }
        }
        if (toks.length > budget) {
          const older = toks.length - recent;
          const heavy = largest(toks.slice(0, older).map((x) => x.score), budget - recent);
          ref[kv] = [...heavy.map((i) => toks[i]!), ...toks.slice(older)];
        }
      }
      pos += T;
      const L = cache.layers[0]!;
      const scores = policy.accumulatedScores(0);
      for (let kv = 0; kv < Hkv; kv++) {
        expect(headPositions(L.positions, kv, L.length)).toEqual(ref[kv]!.map((x) => x.pos));
        ref[kv]!.forEach((x, i) => expect(Math.abs(scores[kv * L.length + i]! - x.score)).toBeLessThan(1e-5));
      }
      expect(L.length).toBe(Math.min(budget, pos));
    }
    cache.dispose();
    policy.dispose();
  });

  it("stays at its budget over 20 decode steps on the backbone, scores aligned with the cache", async () => {
    const B = 32;
    const policy = h2oPolicy({ budgetTokens: B, recentTokens: 8 });
    const s = new CachedSession(model, policy);
    await prefillAndDrop(s, prompt);
    for (let t = 0; t < 20; t++) {
      (await s.step(continuation[t]!)).dispose();
      expect(layerLengths(s)).toEqual(Array(config.numLayers).fill(B));
      for (let l = 0; l < config.numLayers; l++) expect(policy.accumulatedScores(l).length).toBe(config.numKvHeads * B);
    }
    // The recent tokens are always the newest positions.
    const L = s.cache.layers[0]!;
    const newest = N + 20;
    for (let h = 0; h < config.numKvHeads; h++) {
      expect(headPositions(L.positions, h, B).slice(B - 8)).toEqual(Array.from({ length: 8 }, (_, i) => newest - 8 + i));
    }
    s.dispose();
  });
});

describe("random", () => {
  it("is reproducible from its seed and draws per KV head", async () => {
    const kept = async (seed: number) => {
      const s = new CachedSession(model, randomPolicy({ budgetTokens: 20, seed }));
      await prefillAndDrop(s, prompt);
      const out = s.cache.layers.map((L) => Array.from(L.positions));
      s.dispose();
      return out;
    };
    const a = await kept(3);
    expect(await kept(3)).toEqual(a);
    expect(await kept(4)).not.toEqual(a);
    for (const layer of a) {
      const heads = Array.from({ length: config.numKvHeads }, (_, h) => layer.slice(h * 20, (h + 1) * 20));
      for (const hp of heads) {
        expect(new Set(hp).size).toBe(20);
        expect(hp.every((p) => p >= 0 && p < N)).toBe(true);
      }
      expect(new Set(heads.map((x) => x.join(","))).size).toBeGreaterThan(1);
    }
  });
});

// ---------- tensor discipline ----------

describe("no tensor leaks over decode steps", () => {
  for (const name of ["full", ...METHOD_NAMES]) {
    it(`${name}`, async () => {
      const s = new CachedSession(model, createPolicy(name, name === "full" ? {} : { budgetTokens: 24 }));
      await prefillAndDrop(s, prompt.slice(0, 60));
      for (let t = 0; t < 2; t++) (await s.step(continuation[t]!)).dispose();
      const before = tf.memory().numTensors;
      for (let t = 2; t < 10; t++) (await s.step(continuation[t]!)).dispose();
      expect(tf.memory().numTensors).toBe(before);
      // Cached tensors are alive (not disposed by the session's tidy).
      for (const L of s.cache.layers) expect(L.k!.isDisposed).toBe(false);
      s.dispose();
    });
  }
});

// ---------- registry and budgets ----------

describe("registry", () => {
  it("creates every method by name with its budget", async () => {
    for (const name of METHOD_NAMES) {
      const p = createPolicy(name, { budgetTokens: 64 });
      expect(p.name).toBe(name);
      expect(p.budgetFor(0, 1)).toBe(64);
    }
    expect(createPolicy("full", {}).budgetFor(0, 1)).toBe(Infinity);
    expect(createPolicy("streaming", { sinkTokens: 2, windowTokens: 30 }).budgetFor(0, 4)).toBe(32);
  });

  it("refuses unknown methods, options and bad values with one-line EdgeInfErrors", async () => {
    const err = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(EdgeInfError);
        expect((e as Error).message).not.toContain("\n");
        return (e as Error).message;
      }
      throw new Error("expected an error");
    };
    const unknown = err(() => createPolicy("lru", { budgetTokens: 4 }));
    for (const n of ["full", ...METHOD_NAMES]) expect(unknown).toContain(n);
    expect(err(() => createPolicy("tova", { budgetTokens: 4, kernelSize: 5 }))).toMatch(/tova does not take option kernelSize/);
    expect(err(() => createPolicy("h2o", {}))).toMatch(/h2o needs a budget/);
    expect(err(() => createPolicy("h2o", { budgetTokens: 4, recentTokens: 5 }))).toMatch(/recentTokens 5 > budget 4/);
    expect(err(() => createPolicy("snapkv", { budgetTokens: 4, kernelSize: 4 }))).toMatch(/kernelSize 4 must be odd/);
    expect(err(() => createPolicy("snapkv", { budgetTokens: 2.5 }))).toMatch(/budgetTokens must be an integer/);
    expect(err(() => createPolicy("streaming", { budgetTokens: 10, sinkTokens: 4, windowTokens: 8 }))).toMatch(/≠ budget 10/);
    expect(err(() => createPolicy("pyramidkv", { budgetTokens: 10, beta: 0.5 }))).toMatch(/beta must be a number ≥ 1/);
    expect(err(() => resolveBudget(300, 200, "h2o"))).toBe(
      "budget 300 tokens ≥ prompt length 200 for method h2o: nothing would be evicted — use a smaller budget or `full` (streaming, h2o and tova, which evict while decoding, take any budget)",
    );
    expect(resolveBudget(300, 200, "h2o", true)).toBe(300); // evicts while decoding: a long generation reaches it
    expect(err(() => resolveBudget("100%", 200))).toMatch(/budget 200 tokens ≥ prompt length 200/);
    expect(err(() => resolveBudget("abc", 200))).toMatch(/neither a token count nor a share/);
    expect(err(() => resolveBudget(0, 200))).toMatch(/neither a token count nor a share/);
    expect(err(() => resolveBudget("0.1%", 200))).toMatch(/is 0 tokens/);
  });

  it("resolves token counts and shares of the prompt", async () => {
    expect(resolveBudget("25%", 200)).toBe(50);
    expect(resolveBudget(0.25, 200)).toBe(50);
    expect(resolveBudget("12.5%", 100)).toBe(13); // round(12.5)
    expect(resolveBudget(64, 200)).toBe(64);
    expect(resolveBudget("64", 200)).toBe(64);
  });
});
