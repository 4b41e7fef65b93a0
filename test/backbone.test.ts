import { createRequire } from "node:module";
import { describe, it, expect, beforeAll } from "vitest";
import { readFileSync, existsSync } from "node:fs";
import { resolve } from "node:path";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { loadBackbone } from "../src/loaders/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import { CachedSession } from "../src/cache/cached-session.js";
import { fullPolicy } from "../src/cache/full.js";
import { generate } from "../src/backbone/generate.js";
import { RopeTable } from "../src/backbone/rope.js";
import { tinyConfig, randomWeights, forward64 } from "./reference/llama64.js";

const shared = resolve(__dirname, "../../shared/models");
const stories = resolve(shared, "stories260K/stories260K.bin");
const edgeLm = resolve(shared, "edge-lm");
const REFERENCE_TEXT =
  ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.";

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Every backend this machine can run without an accelerator: the native one too where @tensorflow/tfjs-node is installed. */
const CI_BACKENDS: Array<"cpu" | "wasm" | "tensorflow"> = ["cpu", "wasm"];
try {
  createRequire(import.meta.url).resolve("@tensorflow/tfjs-node");
  CI_BACKENDS.push("tensorflow");
} catch {
  // not installed (its install script downloads libtensorflow, which fails offline): cpu and wasm only
}

describe("backbone", () => {
  beforeAll(async () => {
    await initBackend("wasm");
  });

  for (const backend of CI_BACKENDS) {
    it(`stories260K greedy continuation equals llama2.c's reference on ${backend}`, async () => {
      await initBackend(backend);
      const b = await loadBackbone(stories);
      const model = LlamaModel.fromHost(b.config, b.weights);
      const ids = b.tokenizer.encode("Once upon a time", { bos: true });
      const s = new CachedSession(model, fullPolicy());
      const r = await generate(s, ids, { maxNewTokens: 60, temperature: 0, stopIds: [b.config.eosTokenId] });
      s.dispose();
      model.dispose();
      expect(b.tokenizer.decode(r.ids).startsWith(REFERENCE_TEXT)).toBe(true);
      await initBackend("wasm");
    });
  }

  it("matches an independent float64 forward on a random tiny GQA model (with and without query blocks)", () => {
    const c = tinyConfig();
    const w = randomWeights(c, 7);
    const model = LlamaModel.fromHost(c, w);
    const ids = [1, 5, 9, 3, 33, 12, 7, 7, 20, 39, 0, 4];
    const ref = forward64(c, w, ids);
    for (const budget of [undefined, 64]) {
      const logits = tf.tidy(() => model.logits(model.forward(ids, budget)));
      const got = logits.arraySync() as number[][];
      logits.dispose();
      const err = Math.max(...got.map((row, t) => maxAbsDiff(row, ref[t]!)));
      const scale = Math.max(...ref.flat().map(Math.abs));
      expect(err / scale).toBeLessThan(1e-5);
    }
    model.dispose();
  });

  it("KV-cached prefill + decode gives the full forward's logits", async () => {
    const c = tinyConfig();
    const model = LlamaModel.fromHost(c, randomWeights(c, 3));
    const ids = [1, 4, 8, 15, 16, 23, 42 % 40, 9, 11];
    const full = tf.tidy(() => model.logits(model.forward(ids)));
    const fullRows = full.arraySync() as number[][];
    const s = new CachedSession(model, fullPolicy(), 64);
    const first = await s.prefill(ids.slice(0, 5));
    expect(maxAbsDiff(first.dataSync(), fullRows[4]!)).toBeLessThan(1e-5);
    first.dispose();
    for (let t = 5; t < ids.length; t++) {
      const l = await s.step(ids[t]!);
      expect(maxAbsDiff(l.dataSync(), fullRows[t]!)).toBeLessThan(1e-5);
      l.dispose();
    }
    s.dispose();
    full.dispose();
    model.dispose();
  });

  it("backbone weights are plain tensors: no tf.Variable, no gradient", () => {
    const c = tinyConfig();
    const model = LlamaModel.fromHost(c, randomWeights(c, 1));
    const registered = tf.engine().registeredVariables;
    const frozen = new Set(model.frozenTensors().map((t) => t.id));
    for (const v of Object.values(registered)) expect(frozen.has(v.id)).toBe(false);
    for (const t of model.frozenTensors()) expect(t instanceof tf.Variable).toBe(false);
    // With no trainable variable, gradient computation must find nothing to differentiate.
    const before = Object.keys(tf.engine().registeredVariables).length;
    expect(() => tf.variableGrads(() => tf.sum(model.forward([1, 2, 3])) as tf.Scalar)).toThrow();
    expect(Object.keys(tf.engine().registeredVariables).length).toBe(before);
    model.dispose();
  });

  it("tf.memory().numTensors stays flat over 50 generate steps", async () => {
    const b = await loadBackbone(stories);
    const model = LlamaModel.fromHost(b.config, b.weights);
    const s = new CachedSession(model, fullPolicy());
    (await s.prefill(b.tokenizer.encode("Once upon a time", { bos: true }))).dispose();
    (await s.step(5)).dispose();
    const counts: number[] = [];
    for (let i = 0; i < 50; i++) {
      (await s.step(10 + i)).dispose();
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts).size).toBe(1);
    s.dispose();
    model.dispose();
  });

  it.runIf(existsSync(resolve(edgeLm, "reference.json")))(
    "edge-lm logits match transformers' reference (max abs error ≤ 1e-3) and greedy continuations are equal",
    async () => {
      const b = await loadBackbone(edgeLm);
      const model = LlamaModel.fromHost(b.config, b.weights);
      const ref = JSON.parse(readFileSync(resolve(edgeLm, "reference.json"), "utf8")) as {
        prompts: { name: string; input_ids: number[]; positions: number[]; logits_at_positions: number[][]; last_logits: number[]; greedy32_ids: number[] }[];
      };
      for (const p of ref.prompts) {
        const logits = tf.tidy(() => model.logits(model.forward(p.input_ids)));
        const rows = logits.arraySync() as number[][];
        logits.dispose();
        let err = maxAbsDiff(rows[rows.length - 1]!, p.last_logits);
        p.positions.forEach((pos, i) => (err = Math.max(err, maxAbsDiff(rows[pos]!, p.logits_at_positions[i]!))));
        expect(err, p.name).toBeLessThanOrEqual(1e-3);
        const s = new CachedSession(model, fullPolicy());
        const r = await generate(s, p.input_ids, { maxNewTokens: 32, temperature: 0 });
        s.dispose();
        expect(r.ids, p.name).toEqual(p.greedy32_ids);
      }
      model.dispose();
    },
    240_000,
  );
});

describe("RopeTable.apply on whole heads", () => {
  // The half-split formula the table applied before (and still applies to partial rotary dims), written out here:
  // [x1, x2] → [x1·cos − x2·sin, x2·cos + x1·sin], from a float64 cos/sin rounded to float32 as the table stores it.
  function halfSplit(x: tf.Tensor3D, positions: Int32Array, theta: number): Float32Array {
    const [heads, T, d] = x.shape;
    const half = d / 2;
    const perHead = positions.length === heads * T;
    const xs = x.dataSync();
    const out = new Float32Array(xs.length);
    const f = Math.fround;
    for (let h = 0; h < heads; h++)
      for (let t = 0; t < T; t++) {
        const p = positions[perHead ? h * T + t : t]!;
        for (let i = 0; i < half; i++) {
          const a = p * (1 / Math.pow(theta, (2 * i) / d));
          const c = f(Math.cos(a));
          const s = f(Math.sin(a));
          const x1 = xs[(h * T + t) * d + i]!;
          const x2 = xs[(h * T + t) * d + half + i]!;
          out[(h * T + t) * d + i] = f(f(x1 * c) - f(x2 * s));
          out[(h * T + t) * d + half + i] = f(f(x2 * c) + f(x1 * s));
        }
      }
    return out;
  }

  for (const backend of ["cpu", "wasm"] as const) {
    it(`${backend}: equals the half-split rotation bit for bit (shared and per-head positions), numTensors flat`, async () => {
      await initBackend(backend);
      const rope = new RopeTable(16, 10000, null);
      const x = tf.randomNormal([3, 5, 16], 0, 2, "float32", 11) as tf.Tensor3D;
      const shared = Int32Array.from([0, 1, 7, 1500, 3000]);
      const perHead = Int32Array.from({ length: 15 }, (_, i) => (i * 389) % 4100);
      rope.apply(x, shared).dispose(); // grows the tables
      const before = tf.memory().numTensors;
      for (const positions of [shared, perHead]) {
        const got = rope.apply(x, positions);
        expect(Array.from(got.dataSync())).toEqual(Array.from(halfSplit(x, positions, 10000)));
        got.dispose();
      }
      expect(tf.memory().numTensors).toBe(before);
      rope.dispose();
      x.dispose();
    });
  }
});
