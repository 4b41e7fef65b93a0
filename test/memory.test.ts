import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { resolve } from "node:path";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { LlamaModel } from "../src/backbone/model.js";
import { parameterCount } from "../src/backbone/config.js";
import { loadBackbone, type LoadedBackbone } from "../src/loaders/index.js";
import { CachedSession } from "../src/cache/cached-session.js";
import { streamingPolicy } from "../src/cache/streaming.js";
import { writeMemory, emptyMemory } from "../src/memory/write-memory.js";
import { readMemory } from "../src/memory/read-memory.js";
import { gateValues, type GateKind } from "../src/memory/gate.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig, validateEdgeInfiniteConfig, type EdgeInfiniteConfig } from "../src/memory/config.js";
import { EdgeInfiniteSession, forwardSegment } from "../src/memory/edgeinfinite.js";
import { initialState, disposeState, keepState, accounting, stateTensors, totalStateBytes, type EdgeInfiniteState } from "../src/memory/state.js";
import { sequenceGradients } from "../src/training/tbptt.js";
import { AdamW } from "../src/training/adamw.js";
import { Rng } from "../src/util/rng.js";
import { tinyConfig, randomWeights, edgeInfinite64, forward64, sigma as sigma64, type Vec } from "./reference/llama64.js";
import { streaming64, chunksOf } from "./reference/streaming64.js";
import { randomizeModule, moduleTo64, relErr } from "./fixtures/module-params.js";

const stories = resolve(__dirname, "../../shared/models/stories260K/stories260K.bin");

function randArray(rng: Rng, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => scale * rng.normal());
}

function maxAbs(got: number[][], want: number[][]): number {
  let m = 0;
  got.forEach((row, t) => row.forEach((v, i) => (m = Math.max(m, Math.abs(v - want[t]![i]!)))));
  return m;
}

/** Logits of every position through EdgeInfinite segments, and the final state (the caller disposes it). */
function edgeRun(model: LlamaModel, module: MemoryGatingModule, ids: number[], forceGate?: number): { rows: number[][]; state: EdgeInfiniteState } {
  let state = initialState(model.config);
  const rows: number[][] = [];
  for (let s0 = 0; s0 < ids.length; s0 += module.config.segmentLength) {
    const seg = ids.slice(s0, s0 + module.config.segmentLength);
    const prev = state;
    state = tf.scoped(() => {
      const out = forwardSegment(model, module, prev, seg, { forceGate });
      rows.push(...(model.logits(out.hidden).arraySync() as number[][]));
      return keepState(out.state);
    });
    const live = new Set(stateTensors(state));
    for (const t of stateTensors(prev)) if (!live.has(t)) t.dispose();
  }
  return { rows, state };
}

function edgeLogits(model: LlamaModel, module: MemoryGatingModule, ids: number[], forceGate?: number): number[][] {
  const { rows, state } = edgeRun(model, module, ids, forceGate);
  disposeState(state);
  return rows;
}

/** A session's logits for one position as a row (the tensor is disposed). */
function logitsRow(logits: tf.Tensor1D): number[] {
  const row = Array.from(logits.dataSync());
  logits.dispose();
  return row;
}

/** One logits row per decode step of `ids` through a session (EdgeInfiniteSession or CachedSession). */
async function decodeRows(session: { step(id: number): Promise<tf.Tensor1D> }, ids: readonly number[]): Promise<number[][]> {
  const rows: number[][] = [];
  for (const id of ids) rows.push(logitsRow(await session.step(id)));
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
        st = writeMemory(st, tf.tensor3d(k1, [Hkv, n, d]), tf.tensor3d(v1, [Hkv, n, dv]), rule, 1e-6);
        st = writeMemory(st, tf.tensor3d(k2, [Hkv, n, d]), tf.tensor3d(v2, [Hkv, n, dv]), rule, 1e-6);
        return readMemory(st, tf.tensor3d(q, [Hkv, g * T, d]), 1e-6).out;
      });
      const out = Array.from(got.dataSync());
      got.dispose();
      const err = Math.max(...out.map((v, i) => Math.abs(v - want[i]!))) / Math.max(...want.map(Math.abs));
      expect(err).toBeLessThan(1e-5);
    });
  }

  it("ε guards an empty memory (z = 0): the read is 0, finite", () => {
    const r = tf.tidy(() => readMemory(emptyMemory(2, 4, 4), tf.randomNormal([2, 6, 4]) as tf.Tensor3D, 1e-6).out);
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

  for (const [memoryRule, gateKind] of [["linear", "scalar"], ["delta", "learned"]] as const) {
    it(`memoryKeys post-rope matches the float64 reference (${memoryRule}, ${gateKind} gate)`, () => {
      const model = LlamaModel.fromHost(c, w);
      const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, memoryRule, gateKind, memoryKeys: "post-rope" }));
      randomizeModule(module, 23, 1);
      const got = edgeLogits(model, module, ids);
      const mem = moduleTo64(module);
      const cfg64 = { sinkTokens: 2, windowTokens: 8, segmentLength: 4, rule: memoryRule, eps: 1e-6 };
      const post = edgeInfinite64(c, w, mem, { ...cfg64, memoryKeys: "post-rope" }, ids);
      expect(relErr(got, post)).toBeLessThan(1e-4);
      // the reference tells the two modes apart: post-rope is not pre-rope on this input
      expect(relErr(post, edgeInfinite64(c, w, mem, cfg64, ids))).toBeGreaterThan(1e-2);
      module.dispose();
      model.dispose();
    });
  }

  it("with g forced to 0 a long input gets exactly sink + window attention (independent float64 StreamingLLM)", () => {
    const model = LlamaModel.fromHost(c, w);
    const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig(base));
    randomizeModule(module, 4, 3); // g ≈ 0.95 unless forced: memory would dominate
    const got = edgeLogits(model, module, ids, 0);
    const want = streaming64(c, w, { sinkTokens: 2, windowTokens: 8 }, chunksOf(ids, 4));
    expect(relErr(got, want)).toBeLessThan(1e-5);
    // ids is 4.5× sink + window: the reference is not the full backbone
    expect(relErr(want.slice(10), forward64(c, w, ids).slice(10))).toBeGreaterThan(1e-2);
    module.dispose();
    model.dispose();
  });

  it("routes inputs of at most routingThreshold tokens to the plain backbone (bit-identical, float64), longer ones through memory", async () => {
    const model = LlamaModel.fromHost(c, w);
    const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig(base));
    randomizeModule(module, 9, 3); // g ≈ 0.95: the memory path is far from the backbone
    expect(module.config.routingThreshold).toBe(10);
    const short = ids.slice(0, 10);
    const s1 = new EdgeInfiniteSession(model, module);
    const a = await s1.prefill(short);
    expect(s1.mode()).toBe("short");
    expect(s1.accounting()).toBeNull();
    const full = tf.tidy(() => model.logits(model.forward(short)));
    expect(Array.from(a.dataSync())).toEqual(Array.from(full.dataSync()).slice(-c.vocabSize));
    expect(relErr([Array.from(a.dataSync())], forward64(c, w, short).slice(-1))).toBeLessThan(1e-5);
    // one token more: memory path, equal to the EdgeInfinite reference and not to the backbone
    const long = ids.slice(0, 11);
    const s2 = new EdgeInfiniteSession(model, module);
    const b = Array.from((await s2.prefill(long)).dataSync());
    expect(s2.mode()).toBe("long");
    const want = edgeInfinite64(c, w, moduleTo64(module), { sinkTokens: 2, windowTokens: 8, segmentLength: 4, rule: "linear", eps: 1e-6 }, long);
    expect(relErr([b], want.slice(-1))).toBeLessThan(1e-4);
    expect(relErr([b], forward64(c, w, long).slice(-1))).toBeGreaterThan(1e-2);
    tf.dispose([a, full]);
    s1.dispose();
    s2.dispose();
    module.dispose();
    model.dispose();
  });

  it("decoding continues seamlessly from the short to the long mode with bounded KV", async () => {
    const model = LlamaModel.fromHost(c, w);
    const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, segmentLength: 1 }));
    randomizeModule(module, 8);
    const s = new EdgeInfiniteSession(model, module);
    (await s.prefill(ids.slice(0, 6))).dispose();
    const rows = await decodeRows(s, ids.slice(6, 30));
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

  it("accounting(): per-layer KV bytes, memory bytes and tokens seen after inputs of several lengths, equal to the tensors held", async () => {
    const model = LlamaModel.fromHost(c, w);
    // routingThreshold 0: every input takes the memory path, even one shorter than the sink
    const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, routingThreshold: 0 }));
    const [sink, window, seg] = [2, 8, 4];
    const perToken = 2 * c.numKvHeads * c.headDim * 4; // float32 K and V of one token in one layer
    const memoryBytes = c.numKvHeads * (c.headDim * c.headDim + c.headDim) * 4; // M [Hkv, d, d] and z [Hkv, d]
    for (const n of [1, 2, 3, 5, 10, 11, 14, 23, 45]) {
      const kvTokens = Math.min(n, sink + window);
      const s = new EdgeInfiniteSession(model, module);
      (await s.prefill(ids.slice(0, n))).dispose();
      expect(s.mode()).toBe("long");
      expect(s.tokensSeen()).toBe(n);
      expect(s.accounting()).toEqual(
        Array.from({ length: c.numLayers }, (_, layer) => ({ layer, kvTokens, kvBytes: kvTokens * perToken, memoryBytes, tokensSeen: n })),
      );
      expect(s.kvBytes()).toBe(c.numLayers * (kvTokens * perToken + memoryBytes));
      // peak: one layer holds its previous sink + window plus the segment while it attends, the others their state
      let peak = 0;
      for (let seen = 0; seen < n; seen += seg) {
        const T = Math.min(seg, n - seen);
        const before = Math.min(seen, sink + window);
        const after = Math.min(seen + T, sink + window);
        peak = Math.max(peak, ((c.numLayers - 1) * after + before + T) * perToken + c.numLayers * memoryBytes);
      }
      expect(s.peakKvBytes(), `peak after ${n}`).toBe(peak);
      // two decode steps: bounded, counted (one eviction per token by default)
      for (const id of [5, 6]) (await s.step(id)).dispose();
      expect(s.accounting()!.every((a) => a.tokensSeen === n + 2 && a.kvTokens === Math.min(n + 2, sink + window))).toBe(true);
      s.dispose();
      // decodeSegment 4: decoded tokens stay in the window until a segment's worth has overflowed it
      const inSegments = new EdgeInfiniteSession(model, module, { decodeSegment: seg });
      (await inSegments.prefill(ids.slice(0, n))).dispose();
      for (const id of [5, 6]) (await inSegments.step(id)).dispose();
      expect(inSegments.accounting()!.every((a) => a.tokensSeen === n + 2 && a.kvTokens === Math.min(n, sink + window) + 2)).toBe(true);
      inSegments.dispose();
      // the accounting is what the state's tensors hold
      const { state } = edgeRun(model, module, ids.slice(0, n));
      const acc = accounting(state, c);
      state.layers.forEach((L, i) => {
        expect((L.sinkK?.shape[1] ?? 0) + (L.windowK?.shape[1] ?? 0)).toBe(acc[i]!.kvTokens);
        const kvHeld = [L.sinkK, L.sinkV, L.windowK, L.windowV].reduce((a, t) => a + (t ? t.size * 4 : 0), 0);
        expect(kvHeld).toBe(acc[i]!.kvBytes);
        expect((L.memory.M.size + L.memory.z.size) * 4).toBe(acc[i]!.memoryBytes);
      });
      expect(stateTensors(state).reduce((a, t) => a + t.size * 4, 0)).toBe(totalStateBytes(state, c));
      expect(state.tokensCompressed).toBe(Math.max(0, n - sink - window));
      disposeState(state);
    }
    module.dispose();
    model.dispose();
  });

  it("trainable parameter count for scalar and learned gates and each projection choice", () => {
    const { numLayers: L, numHeads: H, numKvHeads: Hkv, headDim: d } = c;
    const cases: [GateKind, { q: boolean; k: boolean; v: boolean }][] = [
      ["scalar", { q: true, k: true, v: true }],
      ["learned", { q: true, k: true, v: true }],
      ["scalar", { q: true, k: false, v: false }],
      ["learned", { q: false, k: true, v: false }],
      ["scalar", { q: false, k: false, v: false }],
    ];
    for (const [gateKind, tp] of cases) {
      const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, gateKind, trainProjections: tp }));
      const perLayer = H + (gateKind === "learned" ? H * d : 0) + (tp.q ? H * d * d : 0) + (tp.k ? Hkv * d * d : 0) + (tp.v ? Hkv * d * d : 0);
      expect(module.parameterCount(), `${gateKind} ${JSON.stringify(tp)}`).toBe(L * perLayer);
      const names = Array.from({ length: L }, (_, i) => [
        `layers.${i}.gate.bias`,
        ...(gateKind === "learned" ? [`layers.${i}.gate.weight`] : []),
        ...(tp.q ? [`layers.${i}.memory.query_map`] : []),
        ...(tp.k ? [`layers.${i}.memory.key_map`] : []),
        ...(tp.v ? [`layers.${i}.memory.value_map`] : []),
      ]).flat();
      expect([...module.trainableVariables().keys()].sort()).toEqual(names.sort());
      module.dispose();
    }
  });

  it("a fresh module is the identity map on every head with g = sigmoid(gateInitLogit), for scalar and learned gates", () => {
    const rng = new Rng(17);
    const q = tf.tensor3d(randArray(rng, c.numHeads * 5 * c.headDim, 2), [c.numHeads, 5, c.headDim]);
    for (const gateKind of ["scalar", "learned"] as const) {
      for (const gateInitLogit of [undefined, -2.5]) {
        const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, gateKind, ...(gateInitLogit !== undefined ? { gateInitLogit } : {}), trainProjections: { q: true, k: false, v: true } }));
        const logit = gateInitLogit ?? -6;
        const eye = (heads: number) => Array.from({ length: heads }, () => Array.from({ length: c.headDim }, (_, i) => Array.from({ length: c.headDim }, (_, j) => (i === j ? 1 : 0))));
        for (const L of module.layers) {
          expect(L.queryMap.arraySync()).toEqual(eye(c.numHeads));
          expect(L.keyMap.arraySync()).toEqual(eye(c.numKvHeads));
          expect(L.valueMap.arraySync()).toEqual(eye(c.numKvHeads));
          expect(Array.from(L.gate.bias.dataSync())).toEqual(new Array(c.numHeads).fill(Math.fround(logit)));
          if (gateKind === "learned") expect(Array.from(L.gate.weight!.dataSync()).every((x) => x === 0)).toBe(true);
          else expect(L.gate.weight).toBeNull();
          const g = tf.tidy(() => gateValues(L.gate, q));
          expect(g.shape).toEqual(gateKind === "scalar" ? [c.numHeads, 1, 1] : [c.numHeads, 5, 1]);
          const want = 1 / (1 + Math.exp(-logit));
          for (const x of g.dataSync()) expect(Math.abs(x - want)).toBeLessThan(1e-7);
          g.dispose();
        }
        // the frozen key map is a plain tensor, the others variables
        expect(module.layers[0]!.keyMap instanceof tf.Variable).toBe(false);
        expect(module.layers[0]!.queryMap instanceof tf.Variable).toBe(true);
        module.dispose();
      }
    }
    q.dispose();
  });

  it("only the module's variables exist and get (non-zero, finite) gradients; the backbone is plain tensors that the loss reaches but training never changes", async () => {
    const registered = () => Object.keys(tf.engine().registeredVariables);
    const before = new Set(registered());
    const added = () => registered().filter((n) => !before.has(n)).sort();
    // (a) the backbone creates no variable and its weights are plain tensors
    const model = LlamaModel.fromHost(c, w);
    expect(added()).toEqual([]);
    const frozen = model.frozenTensors();
    expect(frozen.length).toBe(3 + 6 * c.numLayers); // embedding, final norm, head; per layer 2 norms, wQkv, wo, wGateUp, wDown
    for (const t of frozen) expect(t instanceof tf.Variable).toBe(false);
    // the module's trainable tensors, and only those, are registered (frozen value maps are not)
    const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, gateKind: "learned", trainProjections: { q: true, k: true, v: false } }));
    const vars = module.trainableVariables();
    const moduleNames = [...vars.values()].map((v) => v.name).sort();
    expect(added()).toEqual(moduleNames);
    expect(moduleNames.length).toBe(4 * c.numLayers);
    randomizeModule(module, 13);
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
    // (b) no variable list: tfjs differentiates w.r.t. every registered trainable variable that the loss depends on
    const { value, grads } = tf.variableGrads(lossFn);
    value.dispose();
    expect(Object.keys(grads).sort()).toEqual(moduleNames);
    for (const [name, g] of Object.entries(grads)) {
      const data = g.dataSync();
      expect(data.every(Number.isFinite), name).toBe(true);
      expect(Math.max(...Array.from(data, Math.abs)), name).toBeGreaterThan(0);
    }
    // (c) the loss does depend on the backbone: explicit gradients w.r.t. backbone weights are non-zero, so their
    // absence above is the freezing, not a disconnected graph
    for (const t of [model.layers[0]!.wQkv, model.layers[c.numLayers - 1]!.wGateUp, model.embedding]) {
      const [g] = tf.grads(() => lossFn())([t]);
      expect(Math.max(...Array.from(g!.dataSync(), Math.abs))).toBeGreaterThan(0);
      g!.dispose();
    }
    // finite differences on a few coordinates of each kind of parameter (float32: central difference, loose tolerance)
    for (const name of ["layers.0.gate.bias", "layers.1.gate.weight", "layers.0.memory.key_map", "layers.1.memory.query_map"]) {
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
    // (d) training steps (TBPTT k = 2 + AdamW) move every module variable and leave the backbone bit-for-bit
    const bytes = (t: tf.Tensor) => Buffer.from(new Uint8Array((t.dataSync() as Float32Array).slice().buffer));
    const backboneBefore = frozen.map(bytes);
    const moduleBefore = [...vars.values()].map(bytes);
    const frozenMaps = module.layers.map((L) => bytes(L.valueMap));
    const opt = new AdamW({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
    for (let step = 0; step < 2; step++) {
      const r = await sequenceGradients(model, module, seq, 2);
      expect([...r.grads.keys()].sort()).toEqual([...vars.keys()].sort());
      opt.apply(vars, r.grads, 1e-2);
      tf.dispose([...r.grads.values()]);
    }
    opt.dispose();
    frozen.forEach((t, i) => expect(bytes(t).equals(backboneBefore[i]!), `backbone tensor ${i}`).toBe(true));
    [...vars.values()].forEach((v, i) => expect(bytes(v).equals(moduleBefore[i]!), v.name).toBe(false));
    module.layers.forEach((L, i) => expect(bytes(L.valueMap).equals(frozenMaps[i]!)).toBe(true));
    expect(added()).toEqual(moduleNames); // the optimiser made no variables
    module.dispose();
    model.dispose();
    expect(added()).toEqual([]);
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

describe("StreamingLLM, the backbone and an untrained module on stories260K (independent float64 references)", () => {
  let b: LoadedBackbone;
  /** stories260K, shared by the tests below (none of them changes it). */
  let model: LlamaModel;
  beforeAll(async () => {
    await initBackend("cpu");
    b = await loadBackbone(stories);
    model = LlamaModel.fromHost(b.config, b.weights);
  });
  afterAll(() => model?.dispose());
  // sink + window = 32 tokens; the input is 150 tokens (4.7×) in segments of 16, then 10 decode steps
  const sw = { sinkTokens: 4, windowTokens: 28 };
  const seg = 16;
  const N = 150;
  const steps = 10;
  const rng = new Rng(31);
  const ids = [1, ...Array.from({ length: N + steps - 1 }, () => 3 + rng.int(500))];
  let streamingRef: Vec[] | null = null;
  /** Segment-wise StreamingLLM over the prefill, then one token per decode step (what the session does by default). */
  const streaming = (): Vec[] =>
    (streamingRef ??= streaming64(b.config, b.weights, sw, [...chunksOf(ids.slice(0, N), seg), ...ids.slice(N).map((id) => [id])]));

  it("with g forced to 0 the session's logits equal a separate float64 StreamingLLM (sink + window, in-span positions)", async () => {
    const c = b.config;
    const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...sw, segmentLength: seg }));
    randomizeModule(module, 4, 2); // g ≈ 0.88 unless forced
    const want = streaming();
    const s = new EdgeInfiniteSession(model, module, { forceGate: 0 });
    const rows = [logitsRow(await s.prefill(ids.slice(0, N)))];
    expect(s.mode()).toBe("long");
    rows.push(...(await decodeRows(s, ids.slice(N))));
    // fp32 through 5 layers against float64: measured 2e-7 relative, 3e-6 absolute on logits of scale 17
    expect(relErr(rows, want.slice(N - 1))).toBeLessThan(1e-5);
    expect(maxAbs(rows, want.slice(N - 1))).toBeLessThan(1e-4);
    // decodeSegment 16: the 10 decoded tokens are one more segment, built token by token before any leaves the window
    const inSegments = new EdgeInfiniteSession(model, module, { forceGate: 0, decodeSegment: seg });
    const rows16 = [logitsRow(await inSegments.prefill(ids.slice(0, N))), ...(await decodeRows(inSegments, ids.slice(N)))];
    inSegments.dispose();
    const want16 = streaming64(c, b.weights, sw, [...chunksOf(ids.slice(0, N), seg), ids.slice(N)]);
    expect(relErr(rows16, want16.slice(N - 1))).toBeLessThan(1e-5);
    expect(relErr(want16.slice(N + 1), want.slice(N + 1))).toBeGreaterThan(1e-4);
    // every prefill position, segment by segment
    const all = edgeLogits(model, module, ids.slice(0, N), 0);
    expect(relErr(all, want.slice(0, N))).toBeLessThan(1e-5);
    // the reference is not the backbone: evicting matters past sink + window
    expect(relErr(want.slice(40), forward64(c, b.weights, ids).slice(40))).toBeGreaterThan(1e-2);
    s.dispose();
    module.dispose();
  });

  it("segment-wise local span vs per-token eviction: segmentLength 1 is per-token StreamingLLM, as src/cache/streaming.ts decodes", async () => {
    const c = b.config;
    const n = 80;
    const perToken = streaming64(c, b.weights, sw, chunksOf(ids.slice(0, n), 1));
    const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...sw, segmentLength: 1 }));
    expect(relErr(edgeLogits(model, module, ids.slice(0, n), 0), perToken)).toBeLessThan(1e-5);
    // src/cache/streaming.ts: one token of prefill, then decode steps evict after every token
    const cached = new CachedSession(model, streamingPolicy(sw));
    const rows = [logitsRow(await cached.prefill(ids.slice(0, 1))), ...(await decodeRows(cached, ids.slice(1, n)))];
    expect(relErr(rows, perToken)).toBeLessThan(1e-5);
    cached.dispose();
    // segments of 16 see up to 15 more recent tokens than per-token eviction does: not the same outputs
    expect(relErr(streaming().slice(sw.sinkTokens + sw.windowTokens, n), perToken.slice(sw.sinkTokens + sw.windowTokens))).toBeGreaterThan(1e-3);
    // and a whole prompt prefilled by src/cache/streaming.ts attends over all of it (eviction only afterwards)
    const once = new CachedSession(model, streamingPolicy(sw));
    const last = logitsRow(await once.prefill(ids.slice(0, n)));
    once.dispose();
    expect(relErr([last], forward64(c, b.weights, ids.slice(0, n)).slice(-1))).toBeLessThan(1e-5);
    module.dispose();
  });

  it("routing disabled and window ≥ input length: the memory path equals the backbone forward (float64) when g = 0", async () => {
    const c = b.config;
    const n = 60;
    // routingThreshold 0: even short inputs take the memory path; window 64 ≥ 60 + 4 decode steps: nothing is compressed
    const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ sinkTokens: 4, windowTokens: 64, segmentLength: 16, routingThreshold: 0 }));
    randomizeModule(module, 6, 2);
    const want = forward64(c, b.weights, ids.slice(0, n + 4));
    const s = new EdgeInfiniteSession(model, module, { forceGate: 0 });
    const rows = [logitsRow(await s.prefill(ids.slice(0, n)))];
    expect(s.mode()).toBe("long");
    rows.push(...(await decodeRows(s, ids.slice(n, n + 4))));
    expect(s.accounting()![0]!.kvTokens).toBe(n + 4);
    expect(relErr(rows, want.slice(n - 1))).toBeLessThan(1e-5);
    const all = edgeLogits(model, module, ids.slice(0, n), 0);
    expect(relErr(all, want.slice(0, n))).toBeLessThan(1e-5);
    const backbone = tf.tidy(() => model.logits(model.forward(ids.slice(0, n))));
    expect(relErr(all, backbone.arraySync() as number[][])).toBeLessThan(1e-5);
    backbone.dispose();
    s.dispose();
    module.dispose();
  });

  it("an untrained module is StreamingLLM up to first order in g = sigmoid(gateInitLogit)", () => {
    const c = b.config;
    const want = streaming().slice(0, N);
    const errAt = (gateInitLogit: number) => {
      const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...sw, segmentLength: seg, gateInitLogit }));
      const e = maxAbs(edgeLogits(model, module, ids.slice(0, N)), want);
      module.dispose();
      return e;
    };
    const g = (x: number) => 1 / (1 + Math.exp(-x));
    const e6 = errAt(-6);
    const e9 = errAt(-9);
    const scale = Math.max(...want.flat().map(Math.abs));
    // |out − out(g = 0)| = g·|A_mem − A_local| per head: the logits move by O(g) (measured: 1.2·g of their scale
    // at −6), and proportionally to g (measured ratio within 1% of g(−9)/g(−6))
    expect(e6 / scale).toBeLessThan(2 * g(-6));
    expect(e6 / scale).toBeGreaterThan(0.1 * g(-6)); // memory is read (not a no-op) …
    expect(e9 / e6).toBeGreaterThan(0.8 * (g(-9) / g(-6))); // … and the deviation is linear in g
    expect(e9 / e6).toBeLessThan(1.25 * (g(-9) / g(-6)));
  });

  it("trainable share of the backbone: parameter count formula against the loaded weights", () => {
    const c = b.config;
    const w = b.weights;
    const size = (t: { shape: number[] }) => t.shape.reduce((a, x) => a * x, 1);
    let backbone = size(w.embed) + size(w.finalNorm) + (w.lmHead ? size(w.lmHead) : 0);
    for (const L of w.layers) for (const t of Object.values(L)) backbone += size(t);
    expect(parameterCount(c)).toBe(backbone);
    const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...sw, segmentLength: seg, gateKind: "learned" }));
    const { numLayers: L, numHeads: H, numKvHeads: Hkv, headDim: d } = c;
    const trainable = L * (H + H * d + H * d * d + 2 * Hkv * d * d);
    expect(module.parameterCount()).toBe(trainable);
    // what training reports as trainableShare (src/training/train.ts)
    expect(module.parameterCount() / parameterCount(c)).toBeCloseTo(trainable / backbone, 12);
    module.dispose();
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
