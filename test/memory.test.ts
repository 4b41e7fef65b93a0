import { describe, it, expect, beforeAll } from "vitest";
import { resolve } from "node:path";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { LlamaModel } from "../src/backbone/model.js";
import { loadBackbone } from "../src/loaders/index.js";
import { CachedSession } from "../src/cache/cached-session.js";
import { fullPolicy } from "../src/cache/full.js";
import { compress, emptyMemory } from "../src/memory/compress.js";
import { decompress } from "../src/memory/decompress.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig, validateEdgeInfiniteConfig, type EdgeInfiniteConfig } from "../src/memory/config.js";
import { EdgeInfiniteSession, forwardSegment } from "../src/memory/edgeinfinite.js";
import { initialState, disposeState } from "../src/memory/state.js";
import { Rng } from "../src/util/rng.js";
import { tinyConfig, randomWeights, edgeInfinite64, sigma as sigma64, type Mem64Layer } from "./reference/llama64.js";

const stories = resolve(__dirname, "../../shared/models/stories260K/stories260K.bin");

function randArray(rng: Rng, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => scale * rng.normal());
}

/** Random, non-identity module parameters so every path matters. */
function randomizeModule(module: MemoryGatingModule, seed: number, gateBias = 0): void {
  const rng = new Rng(seed);
  for (const [name, v] of module.trainableVariables()) {
    const data = randArray(rng, v.size, name.includes("gate") ? 0.5 : 0.3);
    if (name.endsWith("map")) {
      // identity + noise
      const [heads, d] = [v.shape[0]!, v.shape[1]!];
      for (let h = 0; h < heads; h++) for (let i = 0; i < d; i++) data[h * d * d + i * d + i]! += 1;
    }
    if (name.endsWith("gate.bias")) for (let i = 0; i < data.length; i++) data[i]! += gateBias;
    tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
  }
}

function moduleTo64(module: MemoryGatingModule): Mem64Layer[] {
  const arr3 = (t: tf.Tensor) => t.arraySync() as number[][][];
  return module.layers.map((L) => ({
    queryMap: arr3(L.queryMap),
    keyMap: arr3(L.keyMap),
    valueMap: arr3(L.valueMap),
    gateBias: Array.from(L.gate.bias.dataSync()),
    gateWeight: L.gate.weight ? (L.gate.weight.arraySync() as number[][]) : null,
  }));
}

function relErr(got: number[][], want: number[][]): number {
  let num = 0;
  let den = 0;
  got.forEach((row, t) => row.forEach((v, i) => {
    num = Math.max(num, Math.abs(v - want[t]![i]!));
    den = Math.max(den, Math.abs(want[t]![i]!));
  }));
  return num / den;
}

/** Logits of every position through EdgeInfinite segments. */
function edgeLogits(model: LlamaModel, module: MemoryGatingModule, ids: number[], forceGate?: number): number[][] {
  let state = initialState(model.config);
  const rows: number[][] = [];
  for (let s0 = 0; s0 < ids.length; s0 += module.config.segmentLength) {
    const seg = ids.slice(s0, s0 + module.config.segmentLength);
    const prev = state;
    const r = tf.scoped(() => {
      const out = forwardSegment(model, module, prev, seg, { forceGate });
      for (const t of [out.hidden]) tf.keep(t);
      const logits = model.logits(out.hidden);
      rows.push(...(logits.arraySync() as number[][]));
      for (const L of out.state.layers) for (const t of [L.sinkK, L.sinkV, L.windowK, L.windowV, L.memory.M, L.memory.z]) if (t) tf.keep(t);
      return out;
    });
    r.hidden.dispose();
    state = r.state;
  }
  disposeState(state);
  return rows;
}

describe("compressed memory (float64 reference)", () => {
  beforeAll(async () => {
    await initBackend("cpu");
  });

  for (const rule of ["linear", "delta"] as const) {
    it(`${rule} update and read match float64, rel. error < 1e-5, GQA shared memory`, () => {
      const rng = new Rng(rule === "linear" ? 11 : 12);
      const Hkv = 2, g = 3, d = 5, dv = 4, n = 6, T = 3;
      const k1 = randArray(rng, Hkv * n * d), v1 = randArray(rng, Hkv * n * dv);
      const k2 = randArray(rng, Hkv * n * d), v2 = randArray(rng, Hkv * n * dv);
      const q = randArray(rng, Hkv * g * T * d);
      // float64 reference
      const M = Array.from({ length: Hkv }, () => Array.from({ length: d }, () => new Array<number>(dv).fill(0)));
      const z = Array.from({ length: Hkv }, () => new Array<number>(d).fill(0));
      const write = (k: Float32Array, v: Float32Array) => {
        for (let h = 0; h < Hkv; h++) {
          const sk = Array.from({ length: n }, (_, t) => Array.from({ length: d }, (_, c) => sigma64(k[(h * n + t) * d + c]!)));
          const upd = Array.from({ length: n }, (_, t) => Array.from({ length: dv }, (_, e) => {
            const val = v[(h * n + t) * dv + e]!;
            if (rule === "linear") return val;
            const den = sk[t]!.reduce((a, s, c) => a + s * z[h]![c]!, 0) + 1e-6;
            return val - sk[t]!.reduce((a, s, c) => a + s * M[h]![c]![e]!, 0) / den;
          }));
          for (let t = 0; t < n; t++) for (let c = 0; c < d; c++) {
            for (let e = 0; e < dv; e++) M[h]![c]![e]! += sk[t]![c]! * upd[t]![e]!;
            z[h]![c]! += sk[t]![c]!;
          }
        }
      };
      write(k1, v1);
      write(k2, v2);
      const want: number[] = [];
      for (let h = 0; h < Hkv; h++) for (let r = 0; r < g * T; r++) {
        const sq = Array.from({ length: d }, (_, c) => sigma64(q[(h * g * T + r) * d + c]!));
        const den = sq.reduce((a, s, c) => a + s * z[h]![c]!, 0) + 1e-6;
        for (let e = 0; e < dv; e++) want.push(sq.reduce((a, s, c) => a + s * M[h]![c]![e]!, 0) / den);
      }
      const got = tf.tidy(() => {
        let st = emptyMemory(Hkv, d, dv);
        st = compress(st, tf.tensor3d(k1, [Hkv, n, d]), tf.tensor3d(v1, [Hkv, n, dv]), rule, 1e-6);
        st = compress(st, tf.tensor3d(k2, [Hkv, n, d]), tf.tensor3d(v2, [Hkv, n, dv]), rule, 1e-6);
        return decompress(st, tf.tensor3d(q, [Hkv, g * T, d]), 1e-6);
      });
      const out = Array.from(got.dataSync());
      got.dispose();
      const err = Math.max(...out.map((v, i) => Math.abs(v - want[i]!))) / Math.max(...want.map(Math.abs));
      expect(err).toBeLessThan(1e-5);
    });
  }

  it("ε guards an empty memory (z = 0): the read is 0, finite", () => {
    const r = tf.tidy(() => decompress(emptyMemory(2, 4, 4), tf.randomNormal([2, 6, 4]) as tf.Tensor3D, 1e-6));
    const v = r.dataSync();
    r.dispose();
    expect(Array.from(v).every((x) => x === 0)).toBe(true);
  });
});

describe("EdgeInfinite attention", () => {
  beforeAll(async () => {
    await initBackend("cpu");
  });
  const c = tinyConfig();
  const w = randomWeights(c, 5);
  const ids = Array.from({ length: 45 }, (_, i) => (i * 7 + 3) % c.vocabSize);
  const base: Partial<EdgeInfiniteConfig> = { sinkTokens: 2, windowTokens: 8, segmentLength: 4 };

  for (const memoryRule of ["linear", "delta"] as const) {
    for (const gateKind of ["scalar", "learned"] as const) {
      it(`matches the float64 reference end to end (${memoryRule}, ${gateKind} gate, trained-looking parameters)`, () => {
        const model = LlamaModel.fromHost(c, w);
        const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, memoryRule, gateKind }));
        randomizeModule(module, 21);
        const got = edgeLogits(model, module, ids);
        const want = edgeInfinite64(c, w, moduleTo64(module), { sinkTokens: 2, windowTokens: 8, segmentLength: 4, rule: memoryRule, eps: 1e-6 }, ids);
        expect(relErr(got, want)).toBeLessThan(1e-4);
        module.dispose();
        model.dispose();
      });
    }
  }

  it("with g forced to 0 a long input gets exactly sink + window attention (float64 reference)", () => {
    const model = LlamaModel.fromHost(c, w);
    const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig(base));
    randomizeModule(module, 4);
    const got = edgeLogits(model, module, ids, 0);
    const want = edgeInfinite64(c, w, moduleTo64(module), { sinkTokens: 2, windowTokens: 8, segmentLength: 4, rule: "linear", eps: 1e-6, forceGate: 0 }, ids);
    expect(relErr(got, want)).toBeLessThan(1e-5);
    module.dispose();
    model.dispose();
  });

  it("routes inputs of at most sink + window tokens to the plain backbone, bit-identical", async () => {
    const model = LlamaModel.fromHost(c, w);
    const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig(base));
    randomizeModule(module, 9, 3);
    const short = ids.slice(0, 10);
    const session = new EdgeInfiniteSession(model, module);
    const a = await session.prefill(short);
    const plain = new CachedSession(model, fullPolicy());
    const b = await plain.prefill(short);
    const full = tf.tidy(() => model.logits(model.forward(short)));
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    expect(Array.from(a.dataSync())).toEqual(Array.from(full.dataSync()).slice(-c.vocabSize));
    expect(session.mode()).toBe("short");
    tf.dispose([a, b, full]);
    session.dispose();
    plain.dispose();
    module.dispose();
    model.dispose();
  });

  it("decoding continues seamlessly from the short to the long mode with bounded KV", async () => {
    const model = LlamaModel.fromHost(c, w);
    const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, segmentLength: 1 }));
    randomizeModule(module, 8);
    const s = new EdgeInfiniteSession(model, module);
    (await s.prefill(ids.slice(0, 6))).dispose();
    const rows: number[][] = [];
    for (let t = 6; t < 30; t++) {
      const l = await s.step(ids[t]!);
      rows.push(Array.from(l.dataSync()));
      l.dispose();
    }
    expect(s.mode()).toBe("long");
    const want = edgeInfinite64(c, w, moduleTo64(module), { sinkTokens: 2, windowTokens: 8, segmentLength: 1, rule: "linear", eps: 1e-6, plainUntil: 10 }, ids.slice(0, 30));
    // routing: the first 10 tokens (≤ sink + window) went through the plain backbone = span attention with gate 0
    expect(relErr(rows, want.slice(6, 30))).toBeLessThan(1e-4);
    const perToken = 2 * c.numKvHeads * c.headDim * 4;
    const memBytes = c.numLayers * c.numKvHeads * (c.headDim * c.headDim + c.headDim) * 4;
    expect(s.kvBytes()).toBe(c.numLayers * 10 * perToken + memBytes);
    s.dispose();
    module.dispose();
    model.dispose();
  });

  it("gradients reach every trainable variable and match finite differences", () => {
    const model = LlamaModel.fromHost(c, w);
    const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, gateKind: "learned" }));
    randomizeModule(module, 13);
    const vars = module.trainableVariables();
    const seq = ids.slice(0, 25);
    const lossFn = () => {
      let st = initialState(c);
      let loss: tf.Scalar = tf.scalar(0);
      for (let s0 = 0; s0 < seq.length - 1; s0 += 4) {
        const seg = seq.slice(s0, Math.min(s0 + 4, seq.length - 1));
        const r = forwardSegment(model, module, st, seg);
        const logp = tf.logSoftmax(model.logits(r.hidden));
        const tgt = tf.oneHot(tf.tensor1d(seq.slice(s0 + 1, s0 + 1 + seg.length), "int32"), c.vocabSize);
        loss = tf.add(loss, tf.neg(tf.sum(tf.mul(logp, tgt))));
        st = r.state;
      }
      return loss;
    };
    const { value, grads } = tf.variableGrads(lossFn, [...vars.values()]);
    value.dispose();
    const registered = new Set([...vars.values()].map((v) => v.name));
    expect(Object.keys(grads).sort()).toEqual([...registered].sort());
    for (const t of model.frozenTensors()) expect(Object.values(grads).some((g) => g.id === t.id)).toBe(false);
    // finite differences on a few coordinates of each kind of parameter (float32: central difference, loose tolerance)
    for (const name of ["layers.0.gate.bias", "layers.1.gate.weight", "layers.0.memory.key_map", "layers.1.memory.value_map", "layers.1.memory.query_map"]) {
      const v = vars.get(name)!;
      const gAna = grads[v.name]!.dataSync();
      const data = v.dataSync().slice() as Float32Array;
      let idx = 0;
      for (let i = 0; i < gAna.length; i++) if (Math.abs(gAna[i]!) > Math.abs(gAna[idx]!)) idx = i;
      const h = 1e-2;
      const at = (delta: number) => {
        const d2 = data.slice();
        d2[idx]! += delta;
        tf.tidy(() => v.assign(tf.tensor(d2, v.shape)));
        const l = tf.tidy(lossFn);
        const out = l.dataSync()[0]!;
        l.dispose();
        return out;
      };
      const fd = (at(h) - at(-h)) / (2 * h);
      tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
      expect(Math.abs(fd - gAna[idx]!) / Math.max(1e-3, Math.abs(gAna[idx]!)), name).toBeLessThan(0.03);
    }
    tf.dispose(Object.values(grads));
    module.dispose();
    model.dispose();
  });

  it("rejects bad configs with one-line errors", () => {
    const bad: [Partial<EdgeInfiniteConfig>, RegExp][] = [
      [{ windowTokens: 4, segmentLength: 8 }, /windowTokens \(4\) < segmentLength \(8\)/],
      [{ sinkTokens: -1 }, /sinkTokens must be an integer ≥ 0/],
      [{ gateKind: "mlp" as never }, /unknown gateKind "mlp"/],
      [{ memoryRule: "hebbian" as never }, /unknown memoryRule/],
      [{ windowTokens: 300, segmentLength: 100 }, /exceeds the backbone's trained context 256/],
    ];
    for (const [over, re] of bad) {
      expect(() => validateEdgeInfiniteConfig(makeEdgeInfiniteConfig({ ...base, ...over }), c)).toThrow(re);
    }
    expect(() => validateEdgeInfiniteConfig(makeEdgeInfiniteConfig(base), { ...c, numHeads: 5 })).toThrow(/not divisible/);
    const msg = (() => {
      try {
        validateEdgeInfiniteConfig(makeEdgeInfiniteConfig({ windowTokens: 4, segmentLength: 8 }), c);
      } catch (e) {
        return (e as Error).message;
      }
      return "";
    })();
    expect(msg.includes("\n")).toBe(false);
  });
});

describe("bounded memory on stories260K", () => {
  it("KV bytes and tf.memory() after 2k, 8k and 32k tokens differ by less than one segment's worth", async () => {
    await initBackend("wasm");
    const b = await loadBackbone(stories);
    const model = LlamaModel.fromHost(b.config, b.weights);
    const cfg = makeEdgeInfiniteConfig({ sinkTokens: 4, windowTokens: 124, segmentLength: 128 });
    const module = new MemoryGatingModule(b.config, cfg);
    const rng = new Rng(3);
    const measure = async (n: number) => {
      const ids = [1, ...Array.from({ length: n - 1 }, () => 3 + rng.int(500))];
      const s = new EdgeInfiniteSession(model, module);
      (await s.prefill(ids)).dispose();
      const out = { kv: s.kvBytes(), tfBytes: tf.memory().numBytes, tensors: tf.memory().numTensors };
      s.dispose();
      return out;
    };
    const r: { kv: number; tfBytes: number; tensors: number }[] = [];
    for (const n of [2048, 8192, 32768]) r.push(await measure(n));
    const c = b.config;
    const segmentBytes = cfg.segmentLength * 2 * c.numKvHeads * c.headDim * 4 * c.numLayers;
    for (const x of r) {
      expect(Math.abs(x.kv - r[0]!.kv)).toBeLessThan(segmentBytes);
      expect(Math.abs(x.tfBytes - r[0]!.tfBytes)).toBeLessThan(segmentBytes);
      expect(x.tensors).toBe(r[0]!.tensors);
    }
    module.dispose();
    model.dispose();
  }, 300_000);
});
