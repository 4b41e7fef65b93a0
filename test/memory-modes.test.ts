import { describe, it, expect, beforeAll } from "vitest";
import { mkdtempSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { LlamaModel } from "../src/backbone/model.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig, validateEdgeInfiniteConfig, type EdgeInfiniteConfig } from "../src/memory/config.js";
import { EdgeInfiniteSession, forwardSegment } from "../src/memory/edgeinfinite.js";
import { initialState, disposeReplaced, disposeState, keepState, stateTensors } from "../src/memory/state.js";
import { attentionTransferGradients, positionWeights } from "../src/training/objectives/attention-transfer.js";
import { mixed } from "../src/training/objectives/mixed.js";
import { checkExportable } from "../src/export/exportable.js";
import { exportOnnx } from "../src/export/onnx.js";
import { gatherRows, spreadScores } from "../src/memory/exact-cache.js";
import { tinyConfig, randomWeights, edgeInfinite64, type Mem64Layer, type Vec } from "./reference/llama64.js";
import { randomizeModule, moduleTo64, relErr, oneLineError } from "./fixtures/module-params.js";
import { nll64 as tokenNll64 } from "./reference/families64.js";
import { memoryForward64, segmentChunks, attentionTransferLoss64, type MemoryVariant64, type SelectionStats } from "./reference/memory64.js";

const variant64 = (cfg: EdgeInfiniteConfig, plainUntil?: number): MemoryVariant64 => ({
  sinkTokens: cfg.sinkTokens,
  windowTokens: cfg.windowTokens,
  rule: cfg.memoryRule,
  readMode: cfg.readMode,
  featureMap: cfg.featureMap,
  exactTokens: cfg.exactTokens,
  exactSpread: cfg.exactSpread,
  eps: cfg.eps,
  plainUntil,
});

/** Logits of every position through forwardSegment, segment by segment (state disposed). */
function segmentLogits(model: LlamaModel, module: MemoryGatingModule, ids: number[]): Vec[] {
  let state = initialState(model.config, module.config.featureMap);
  const rows: Vec[] = [];
  for (let s0 = 0; s0 < ids.length; s0 += module.config.segmentLength) {
    const seg = ids.slice(s0, s0 + module.config.segmentLength);
    const prev = state;
    state = tf.scoped(() => {
      const out = forwardSegment(model, module, prev, seg);
      rows.push(...(model.logits(out.hidden).arraySync() as number[][]));
      return keepState(out.state);
    });
    disposeReplaced(prev, state);
  }
  disposeState(state);
  return rows;
}

async function sessionRows(s: EdgeInfiniteSession, prefill: number[], steps: number[]): Promise<Vec[]> {
  const rows: Vec[] = [];
  const take = (t: tf.Tensor1D) => {
    rows.push(Array.from(t.dataSync()));
    t.dispose();
  };
  take(await s.prefill(prefill));
  for (const id of steps) take(await s.step(id));
  return rows;
}

const c = tinyConfig();
const w = randomWeights(c, 5);
const ids = Array.from({ length: 45 }, (_, i) => (i * 7 + 3) % c.vocabSize);
const base: Partial<EdgeInfiniteConfig> = { sinkTokens: 2, windowTokens: 8, segmentLength: 4 };
const perToken = 2 * c.numKvHeads * c.headDim * 4;

beforeAll(async () => {
  await initBackend("cpu");
});

describe("memory read modes, feature maps and the exact cache against the float64 reference", () => {
  it("the layer-wise reference equals llama64's per-segment edgeInfinite64 on the blend/ELU path (reference cross-check)", () => {
    const model = LlamaModel.fromHost(c, w);
    for (const memoryRule of ["linear", "delta"] as const) {
      const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, memoryRule, gateKind: "learned" }));
      randomizeModule(module, 31);
      const mem = moduleTo64(module);
      const a = memoryForward64(c, w, mem, variant64(module.config), ids, segmentChunks(ids.length, 4));
      const b = edgeInfinite64(c, w, mem, { sinkTokens: 2, windowTokens: 8, segmentLength: 4, rule: memoryRule, eps: 1e-6 }, ids);
      expect(relErr(a, b)).toBeLessThan(1e-12);
      module.dispose();
    }
    model.dispose();
  });

  const cases: [string, Partial<EdgeInfiniteConfig>][] = [
    ["shared + elu", { readMode: "shared", gateKind: "learned" }],
    ["shared + hedgehog", { readMode: "shared", featureMap: "hedgehog", gateKind: "learned" }],
    ["blend + hedgehog", { featureMap: "hedgehog", gateKind: "scalar" }],
    ["exact cache E = 2, blend", { exactTokens: 2, gateKind: "learned" }],
    ["exact cache E = 2, shared", { exactTokens: 2, readMode: "shared", gateKind: "learned" }],
    ["exact cache E = 3, shared + hedgehog + delta", { exactTokens: 3, readMode: "shared", featureMap: "hedgehog", memoryRule: "delta", gateKind: "learned" }],
    ["delta + hedgehog", { memoryRule: "delta", featureMap: "hedgehog", gateKind: "learned" }],
    ["exact cache E = 3, spread [1, 1], shared + hedgehog", { exactTokens: 3, exactSpread: [1, 1], readMode: "shared", featureMap: "hedgehog", gateKind: "learned" }],
    ["exact cache E = 4, spread [2, 0], delta", { exactTokens: 4, exactSpread: [2, 0], memoryRule: "delta", gateKind: "learned" }],
  ];
  for (const [name, over] of cases) {
    it(`${name}: forwardSegment logits equal the float64 reference (rel. < 1e-4), and the variant matters`, () => {
      const model = LlamaModel.fromHost(c, w);
      const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, ...over }));
      validateEdgeInfiniteConfig(module.config, c);
      randomizeModule(module, 21, 1);
      const mem = moduleTo64(module);
      const chunks = segmentChunks(ids.length, 4);
      const stats: SelectionStats = { selections: 0, minRelGap: Infinity };
      const want = memoryForward64(c, w, mem, variant64(module.config), ids, chunks, stats);
      expect(relErr(segmentLogits(model, module, ids), want)).toBeLessThan(1e-4);
      // the reference tells this variant from the plain blend/ELU/no-cache module with the same parameters
      const plain = memoryForward64(c, w, mem, { ...variant64(module.config), readMode: "blend", featureMap: "elu", exactTokens: 0, rule: "linear" }, ids, chunks);
      expect(relErr(want, plain)).toBeGreaterThan(1e-2);
      if (module.config.exactTokens > 0) {
        // selections happened, each one well separated (float32 cannot swap the E-th and (E+1)-th token)
        expect(stats.selections).toBeGreaterThan(10);
        // (inside a spread plateau only the 10⁻³·err tie-break separates tokens: smaller gaps, still > 8 float32 ulps)
        expect(stats.minRelGap).toBeGreaterThan(module.config.exactSpread.some((n) => n > 0) ? 1e-6 : 1e-4);
      }
      if (module.config.exactSpread.some((n) => n > 0)) {
        // the spread changes which tokens stay exact: the reference without it gives other logits
        const unspread = memoryForward64(c, w, mem, { ...variant64(module.config), exactSpread: [0, 0] }, ids, chunks);
        expect(relErr(want, unspread)).toBeGreaterThan(1e-3);
      }
      module.dispose();
      model.dispose();
    });
  }

  for (const exactSpread of [[0, 0], [1, 1]] as [number, number][]) {
    it(`session with an exact cache (spread ${JSON.stringify(exactSpread)}) and Hedgehog: prefill in segments then decode steps (building segments, or one per token) equal the reference; KV counts sink + exact + window, memory 2d×d + 2d per KV head; numTensors flat`, async () => {
      const model = LlamaModel.fromHost(c, w);
      const E = 2;
      const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, exactTokens: E, exactSpread, readMode: "shared", featureMap: "hedgehog", gateKind: "learned", routingThreshold: 0 }));
      randomizeModule(module, 41, 1);
      const prefill = ids.slice(0, 23);
      const steps = ids.slice(23, 30);
      const d = c.headDim;
      const memoryBytes = c.numKvHeads * (2 * d * d + 2 * d) * 4;
      // By default every decoded token is its own segment (one eviction per token); with decodeSegment 4 decoding
      // builds segments: the 7 decoded tokens are the reference's segments of 4 and 3, the last 3 still in the window.
      const decodings: [number | undefined, number[], number][] = [
        [undefined, steps.map(() => 1), 0],
        [4, [4, 3], 3],
      ];
      const run = async () => {
        for (const [decodeSegment, decodeChunks, pending] of decodings) {
          const want = memoryForward64(c, w, moduleTo64(module), variant64(module.config), ids.slice(0, 30), [...segmentChunks(23, 4), ...decodeChunks]);
          const s = new EdgeInfiniteSession(model, module, decodeSegment !== undefined ? { decodeSegment } : {});
          const rows = await sessionRows(s, prefill, steps);
          expect(relErr(rows, [want[22]!, ...want.slice(23, 30)])).toBeLessThan(1e-4);
          const kvTokens = 2 + E + 8 + pending;
          expect(s.accounting()).toEqual(
            Array.from({ length: c.numLayers }, (_, layer) => ({ layer, kvTokens, kvBytes: kvTokens * perToken, memoryBytes, tokensSeen: 30 })),
          );
          expect(s.kvBytes()).toBe(c.numLayers * (kvTokens * perToken + memoryBytes));
          s.dispose();
        }
      };
      await run();
      const before = tf.memory().numTensors;
      await run();
      await run();
      expect(tf.memory().numTensors).toBe(before);
      // the accounting is what the state holds: exact tensors [Hkv, E, d], memory [Hkv, 2d, d] + [Hkv, 2d]
      let state = initialState(c, "hedgehog");
      for (const seg of [ids.slice(0, 4), ids.slice(4, 8), ids.slice(8, 12), ids.slice(12, 16)]) {
        const prev = state;
        state = tf.scoped(() => keepState(forwardSegment(model, module, prev, seg).state));
        disposeReplaced(prev, state);
      }
      const L0 = state.layers[0]!;
      expect(L0.exactK!.shape).toEqual([c.numKvHeads, E, d]);
      expect(L0.exactLength).toBe(E);
      expect(L0.memory.M.shape).toEqual([c.numKvHeads, 2 * d, d]);
      // tokens in memory: 16 seen − sink − exact − window; Hedgehog's φ sums to 2 per token, so Σ z = 2 per written token
      expect(state.tokensCompressed).toBe(16 - 2 - E - 8);
      for (const L of state.layers) {
        for (const zh of L.memory.z.arraySync()) expect(zh.reduce((a, b) => a + b, 0)).toBeCloseTo(2 * state.tokensCompressed, 4);
      }
      const held = stateTensors(state).reduce((a, t) => a + t.size * 4, 0);
      expect(held).toBe(c.numLayers * ((2 + E + 8) * perToken + memoryBytes));
      disposeState(state);
      module.dispose();
      model.dispose();
    });
  }

  for (const routingThreshold of [10, 14]) {
    it(`short → long switch with exactTokens 2 (routingThreshold ${routingThreshold}): decoding equals the reference of the plain first ${routingThreshold} tokens as one step, then one-token steps (or segments of 4 built token by token)`, async () => {
      const model = LlamaModel.fromHost(c, w);
      const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, exactTokens: 2, readMode: "shared", gateKind: "learned", routingThreshold }));
      validateEdgeInfiniteConfig(module.config, c);
      randomizeModule(module, 43, 1);
      const decode = async (decodeSegment?: number) => {
        const s = new EdgeInfiniteSession(model, module, decodeSegment !== undefined ? { decodeSegment } : {});
        // prefill short (plain backbone), decode past the threshold: the cache becomes sink + exact + window + memory
        const rows = await sessionRows(s, ids.slice(0, 6), ids.slice(6, 30));
        expect(s.mode()).toBe("long");
        expect(s.accounting()!.every((a) => a.kvTokens === 2 + 2 + 8)).toBe(true);
        s.dispose();
        return rows;
      };
      const rows = await decode();
      const before = tf.memory().numTensors;
      await decode();
      expect(tf.memory().numTensors).toBe(before);
      // The plain route's first R tokens are local attention over all of them at positions 0..R−1 with gate 0; the
      // switch (stateFromCache) splits the cache as one segment of R tokens would: sink, then the tokens between sink
      // and window leave together (exact cache by self-recall error against the empty memory, or memory).
      const chunks = [routingThreshold, ...Array.from({ length: 30 - routingThreshold }, () => 1)];
      const want = memoryForward64(c, w, moduleTo64(module), variant64(module.config, routingThreshold), ids.slice(0, 30), chunks);
      expect(relErr(rows, want.slice(5, 30))).toBeLessThan(1e-4);
      // decodeSegment 4: after the switch, decoded tokens leave the window in blocks of 4, as a prefill's segments do
      const inSegments = await decode(4);
      const chunks4 = [routingThreshold, ...segmentChunks(30 - routingThreshold, 4)];
      const want4 = memoryForward64(c, w, moduleTo64(module), variant64(module.config, routingThreshold), ids.slice(0, 30), chunks4);
      expect(relErr(inSegments, want4.slice(5, 30))).toBeLessThan(1e-4);
      expect(relErr(want4.slice(12, 30), want.slice(12, 30))).toBeGreaterThan(1e-4);
      module.dispose();
      model.dispose();
    });
  }
});

describe("attention-transfer objective", () => {
  const seq = ids.slice(0, 29); // N = 28 inputs: 7 segments of 4
  const lossMask = seq.map((_, i) => (i >= seq.length - 3 ? 1 : 0));
  const options = { answerWeight: 5, querySpan: 6 };
  /** The documented weights, written out: answerWeight from querySpan positions before the first answer prediction. */
  const weights64 = (N: number) => {
    const firstPredicted = seq.length - 3 - 1;
    return Array.from({ length: N }, (_, t) => (t >= firstPredicted - options.querySpan ? options.answerWeight : 1));
  };

  const variants: [string, Partial<EdgeInfiniteConfig>][] = [
    ["shared + exact cache E = 2 + hedgehog", { readMode: "shared", exactTokens: 2, featureMap: "hedgehog", gateKind: "learned" }],
    ["blend", { gateKind: "learned" }],
  ];
  for (const [name, over] of variants) {
    it(`${name}: loss equals the float64 teacher/student reference; gradients match finite differences (tfjs and float64)`, async () => {
      const model = LlamaModel.fromHost(c, w);
      const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, ...over }));
      randomizeModule(module, 51, 1);
      const vars = module.trainableVariables();
      const r = await attentionTransferGradients(model, module, seq, lossMask, options);
      const cfg64 = variant64(module.config);
      const inputs = seq.slice(0, -1);
      const lossAt = (mem: Mem64Layer[]) => attentionTransferLoss64(c, w, mem, cfg64, inputs, weights64(inputs.length), 4);
      const mem = moduleTo64(module);
      const want = lossAt(mem);
      expect(Math.abs(r.loss - want) / want).toBeLessThan(1e-4);
      expect(r.tokens).toBe(28);
      expect([...r.grads.keys()].sort()).toEqual([...vars.keys()].sort());
      // the weights matter: the uniform-weight reference differs
      expect(Math.abs(attentionTransferLoss64(c, w, mem, cfg64, inputs, inputs.map(() => 1), 4) - want) / want).toBeGreaterThan(1e-2);

      const names = ["layers.0.gate.bias", "layers.1.gate.weight", "layers.0.memory.query_map", "layers.1.memory.key_map", "layers.0.memory.value_map"];
      for (const pname of names) {
        const v = vars.get(pname)!;
        const gAna = r.grads.get(pname)!.dataSync();
        let idx = 0;
        for (let i = 0; i < gAna.length; i++) if (Math.abs(gAna[i]!) > Math.abs(gAna[idx]!)) idx = i;
        const gi = gAna[idx]!;
        expect(Math.abs(gi), `${pname} gradient`).toBeGreaterThan(1e-3);
        const data = v.dataSync().slice() as Float32Array;
        // tfjs (float32) central difference: h large enough that rounding (~1e-7 of the loss) stays far below h·|g|
        const h = 1e-2;
        const tfLossAt = async (delta: number) => {
          const d2 = data.slice();
          d2[idx]! += delta;
          tf.tidy(() => v.assign(tf.tensor(d2, v.shape)));
          const rr = await attentionTransferGradients(model, module, seq, lossMask, options);
          tf.dispose([...rr.grads.values()]);
          return rr.loss;
        };
        const fd = ((await tfLossAt(h)) - (await tfLossAt(-h))) / (2 * h);
        tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
        expect(Math.abs(fd - gi) / Math.abs(gi), `${pname}[${idx}] tfjs FD ${fd} vs ${gi}`).toBeLessThan(1e-2);
        // float64 central difference of the reference loss (independent of tfjs' graph)
        const perturbed = (delta: number) => {
          const m = moduleTo64(module);
          const L = m[Number(pname.split(".")[1])]!;
          const shape = v.shape;
          if (pname.endsWith("gate.bias")) L.gateBias[idx]! += delta;
          else if (pname.endsWith("gate.weight")) L.gateWeight![Math.floor(idx / shape[1]!)]![idx % shape[1]!]! += delta;
          else {
            const M3 = pname.endsWith("query_map") ? L.queryMap : pname.endsWith("key_map") ? L.keyMap : L.valueMap;
            const [, a, b] = shape as [number, number, number];
            M3[Math.floor(idx / (a * b))]![Math.floor(idx / b) % a]![idx % b]! += delta;
          }
          return lossAt(m);
        };
        const h64 = 1e-5;
        const fd64 = (perturbed(h64) - perturbed(-h64)) / (2 * h64);
        expect(Math.abs(fd64 - gi) / Math.abs(gi), `${pname}[${idx}] float64 FD ${fd64} vs ${gi}`).toBeLessThan(1e-3);
      }
      tf.dispose([...r.grads.values()]);
      module.dispose();
      model.dispose();
    });
  }

  it("a last partial segment and no loss mask (uniform weights): loss equals the float64 reference", async () => {
    const model = LlamaModel.fromHost(c, w);
    const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, readMode: "shared", exactTokens: 2, gateKind: "learned", memoryRule: "delta" }));
    randomizeModule(module, 57, 1);
    const short = ids.slice(3, 30); // N = 26 inputs: 6 segments of 4 and one of 2
    const r = await attentionTransferGradients(model, module, short, undefined, options);
    tf.dispose([...r.grads.values()]);
    const inputs = short.slice(0, -1);
    const want = attentionTransferLoss64(c, w, moduleTo64(module), variant64(module.config), inputs, inputs.map(() => 1), 4);
    expect(Math.abs(r.loss - want) / want).toBeLessThan(1e-4);
    module.dispose();
    model.dispose();
  });

  it("gradients never reach the backbone (no backbone variable, backbone bit-for-bit), numTensors flat over 3 calls", async () => {
    const registered = () => Object.keys(tf.engine().registeredVariables);
    const before = new Set(registered());
    const model = LlamaModel.fromHost(c, w);
    const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, readMode: "shared", exactTokens: 2, gateKind: "learned" }));
    randomizeModule(module, 53, 1);
    const moduleNames = [...module.trainableVariables().values()].map((v) => v.name).sort();
    expect(registered().filter((n) => !before.has(n)).sort()).toEqual(moduleNames);
    const bytes = (t: tf.Tensor) => Buffer.from(new Uint8Array((t.dataSync() as Float32Array).slice().buffer));
    const frozen = model.frozenTensors();
    const backboneBefore = frozen.map(bytes);
    const counts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await attentionTransferGradients(model, module, seq, lossMask, options);
      expect([...r.grads.keys()].sort()).toEqual([...module.trainableVariables().keys()].sort());
      for (const g of r.grads.values()) expect(Array.from(g.dataSync()).every(Number.isFinite)).toBe(true);
      tf.dispose([...r.grads.values()]);
      counts.push(tf.memory().numTensors);
    }
    expect(counts[1]).toBe(counts[0]);
    expect(counts[2]).toBe(counts[0]);
    frozen.forEach((t, i) => expect(bytes(t).equals(backboneBefore[i]!), `backbone tensor ${i}`).toBe(true));
    module.dispose();
    model.dispose();
  });

  it("mixed: loss = a·attention transfer + b·next-token NLL (float64 references of both); gradients match float64 finite differences", async () => {
    const model = LlamaModel.fromHost(c, w);
    const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, readMode: "shared", exactTokens: 2, featureMap: "hedgehog", gateKind: "learned" }));
    randomizeModule(module, 59, 1);
    const opts = mixed.optionsSchema.parse({ attentionTransfer: 0.7, nextToken: 0.4, answerWeight: options.answerWeight, querySpan: options.querySpan });
    const sequence = { ids: seq, lossMask };
    const r = await mixed.gradients({ model, module, sequence, tbpttSegments: Number.MAX_SAFE_INTEGER, options: opts });
    const cfg64 = variant64(module.config);
    const inputs = seq.slice(0, -1);
    /**
     * Mean −log p of the masked targets (lossMask[t+1] for the target of input t) from the float64 EdgeInfinite
     * forward over the whole sequence (causal: its first N rows are the inputs' logits).
     */
    const nll64 = (mem: Mem64Layer[]) => {
      const perToken = tokenNll64(memoryForward64(c, w, mem, cfg64, seq, segmentChunks(seq.length, 4)), seq);
      const counted = perToken.filter((_, t) => lossMask[t + 1] === 1);
      return counted.reduce((a, b) => a + b, 0) / counted.length;
    };
    const loss64 = (mem: Mem64Layer[]) => 0.7 * attentionTransferLoss64(c, w, mem, cfg64, inputs, weights64(inputs.length), 4) + 0.4 * nll64(mem);
    expect(Math.abs(r.loss - loss64(moduleTo64(module))) / loss64(moduleTo64(module))).toBeLessThan(1e-4);
    // both parts count: dropping either one changes the loss by more than the tolerance
    expect(Math.abs(0.4 * nll64(moduleTo64(module))) / r.loss).toBeGreaterThan(1e-2);
    for (const pname of ["layers.0.gate.bias", "layers.1.memory.key_map"]) {
      const v = module.trainableVariables().get(pname)!;
      const g = r.grads.get(pname)!.dataSync();
      let idx = 0;
      for (let i = 0; i < g.length; i++) if (Math.abs(g[i]!) > Math.abs(g[idx]!)) idx = i;
      const at = (delta: number) => {
        const m = moduleTo64(module);
        const L = m[Number(pname.split(".")[1])]!;
        if (pname.endsWith("gate.bias")) L.gateBias[idx]! += delta;
        else {
          const [, a, b] = v.shape as [number, number, number];
          L.keyMap[Math.floor(idx / (a * b))]![Math.floor(idx / b) % a]![idx % b]! += delta;
        }
        return loss64(m);
      };
      const fd = (at(1e-5) - at(-1e-5)) / 2e-5;
      expect(Math.abs(g[idx]!), pname).toBeGreaterThan(1e-3);
      expect(Math.abs(fd - g[idx]!) / Math.abs(g[idx]!), `${pname}[${idx}] float64 FD ${fd} vs ${g[idx]}`).toBeLessThan(1e-3);
    }
    tf.dispose([...r.grads.values()]);
    const before = tf.memory().numTensors;
    const again = await mixed.gradients({ model, module, sequence, tbpttSegments: Number.MAX_SAFE_INTEGER, options: opts });
    tf.dispose([...again.grads.values()]);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => mixed.optionsSchema.parse({ attentionTransfer: 0, nextToken: 0 })).toThrow(/at least one of attentionTransfer and nextToken/);
    module.dispose();
    model.dispose();
  });

  it("positionWeights marks the question span and the answer (lossMask on the N+1 ids), 1 elsewhere", () => {
    const o = { answerWeight: 7, querySpan: 3 };
    // ids 0..10 (N = 10 inputs), answer = ids 8..10: predicted at inputs 7..9; question = inputs 4..6
    const mask = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1];
    expect(Array.from(positionWeights(10, mask, o))).toEqual([1, 1, 1, 1, 7, 7, 7, 7, 7, 7]);
    // no mask, or a mask without answer tokens: uniform
    expect(Array.from(positionWeights(4, undefined, o))).toEqual([1, 1, 1, 1]);
    expect(Array.from(positionWeights(4, [0, 0, 0, 0, 0], o))).toEqual([1, 1, 1, 1]);
    // a question span reaching before the start is clipped at position 0
    expect(Array.from(positionWeights(4, [0, 0, 1, 1, 1], o))).toEqual([7, 7, 7, 7]);
    // answerWeight 1 is uniform
    expect(Array.from(positionWeights(10, mask, { answerWeight: 1, querySpan: 3 }))).toEqual(new Array(10).fill(1));
  });
});

describe("exact cache spread", () => {
  it("spreadScores is the max over [i − after, i + before] per head (plain JS reference), clipped at both ends; numTensors flat", () => {
    const H = 3;
    const C = 17;
    const rows = Array.from({ length: H }, (_, h) => Array.from({ length: C }, (_, i) => ((i * 37 + h * 11) % 23) / 7));
    const score = tf.tensor2d(rows);
    const before0 = tf.memory().numTensors;
    for (const [before, after] of [[0, 0], [1, 1], [2, 0], [0, 3], [4, 2]] as [number, number][]) {
      const got = spreadScores(score, before, after);
      const want = rows.map((r) => r.map((_, i) => Math.max(...r.slice(Math.max(0, i - after), i + before + 1))));
      expect(got.arraySync()).toEqual(want.map((r) => r.map((x) => Math.fround(x))));
      got.dispose();
    }
    expect(tf.memory().numTensors).toBe(before0);
    score.dispose();
  });

  it("gatherRows: a gather outside a gradient tape and one-hot rows under one give the same rows (plain JS), and the gradient reaches x", () => {
    const [H, C, d] = [2, 7, 4];
    const xs = Array.from({ length: H * C * d }, (_, i) => Math.fround(Math.sin(i * 1.7) * 3));
    const idxRows = [
      [6, 0, 3],
      [2, 2, 5],
    ];
    const x = tf.tensor3d(xs, [H, C, d]);
    const idx = tf.tensor2d(idxRows, [H, 3], "int32");
    const w = tf.tensor3d(Array.from({ length: H * 3 * d }, (_, i) => (i % 5) - 2), [H, 3, d]);
    const before0 = tf.memory().numTensors;
    const want = idxRows.map((r, h) => r.map((j) => xs.slice((h * C + j) * d, (h * C + j + 1) * d)));
    const outside = gatherRows(x, idx);
    expect(outside.arraySync()).toEqual(want);
    outside.dispose();
    // Under the tape: the weighted sum of the gathered rows, and its gradient (w scattered back to the chosen rows).
    const { value, grad } = tf.valueAndGrad((t: tf.Tensor) => tf.sum(tf.mul(gatherRows(t as tf.Tensor3D, idx), w)))(x);
    const wv = w.arraySync() as number[][][];
    let sum = 0;
    const gradWant = Array.from({ length: H }, () => Array.from({ length: C }, () => new Array<number>(d).fill(0)));
    idxRows.forEach((r, h) => r.forEach((j, m) => wv[h]![m]!.forEach((wk, k) => ((sum += wk * want[h]![m]![k]!), (gradWant[h]![j]![k]! += wk)))));
    expect(value.dataSync()[0]).toBeCloseTo(sum, 4);
    expect(grad.arraySync()).toEqual(gradWant);
    tf.dispose([value, grad]);
    expect(tf.memory().numTensors).toBe(before0);
    tf.dispose([x, idx, w]);
  });
});

describe("config and export edges of the memory variants", () => {
  it("validateEdgeInfiniteConfig rejects unknown readMode/featureMap, negative exactTokens, exact + post-rope and a span beyond the context, one line each", () => {
    const check = (over: Partial<EdgeInfiniteConfig>, re: RegExp) =>
      oneLineError(() => validateEdgeInfiniteConfig(makeEdgeInfiniteConfig({ ...base, ...over }), c), re);
    check({ readMode: "mix" as never }, /unknown readMode "mix".*blend, shared/);
    check({ featureMap: "relu" as never }, /unknown featureMap "relu".*elu, hedgehog/);
    check({ exactTokens: -1 }, /exactTokens must be an integer ≥ 0/);
    check({ exactTokens: 1.5 }, /exactTokens must be an integer ≥ 0/);
    check({ exactTokens: 2, memoryKeys: "post-rope" }, /exactTokens needs pre-RoPE memory keys/);
    check({ exactSpread: [1, -1] as [number, number] }, /exactSpread must be two integers ≥ 0/);
    check({ exactSpread: [1] as unknown as [number, number] }, /exactSpread must be two integers ≥ 0/);
    // span 2 + 16 + 200 + 40 = 258 > 256; without the exact cache (242) it fits
    check({ exactTokens: 16, windowTokens: 200, segmentLength: 40 }, /sinkTokens \+ exactTokens \+ windowTokens \+ segmentLength = 258 exceeds the backbone's trained context 256/);
    expect(() => validateEdgeInfiniteConfig(makeEdgeInfiniteConfig({ ...base, windowTokens: 200, segmentLength: 40 }), c)).not.toThrow();
    expect(() => validateEdgeInfiniteConfig(makeEdgeInfiniteConfig({ ...base, exactTokens: 2, readMode: "shared", featureMap: "hedgehog" }), c)).not.toThrow();
  });

  it("export refuses readMode shared, featureMap hedgehog and an exact cache with one line (checkExportable and exportOnnx)", () => {
    const dir = mkdtempSync(join(tmpdir(), "memory-modes-"));
    const cases: [Partial<EdgeInfiniteConfig>, RegExp][] = [
      [{ readMode: "shared" }, /readMode "shared" is not exportable/],
      [{ featureMap: "hedgehog" }, /featureMap "hedgehog" is not exportable/],
      [{ exactTokens: 2 }, /exactTokens 2 is not exportable/],
    ];
    for (const [over, re] of cases) {
      const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, ...over }));
      oneLineError(() => checkExportable(module), re);
      const out = join(dir, "never.onnx");
      oneLineError(() => exportOnnx(module, { layers: "all", outPath: out }), re);
      expect(existsSync(out)).toBe(false);
      module.dispose();
    }
    const ok = new MemoryGatingModule(c, makeEdgeInfiniteConfig(base));
    expect(() => checkExportable(ok)).not.toThrow();
    ok.dispose();
  });
});
