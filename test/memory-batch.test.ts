/**
 * The EdgeInfinite segment step with a batch dimension (forwardSegmentBatch, per-sequence state [B·Hkv, …]):
 * B = 1 is forwardSegment, B sequences stepped together equal B separate runs segment after segment, and no
 * tensor is left behind. (forwardSegment's per-token NLL was also checked byte-identical to the commit before the
 * batch dimension, for every variant below, on wasm and cpu.)
 */
import { describe, it, expect, beforeAll } from "vitest";
import { resolve } from "node:path";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { loadBackbone } from "../src/loaders/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig, type EdgeInfiniteConfig } from "../src/memory/config.js";
import { edgeInfiniteNll, edgeInfiniteNllBatch, forwardSegment, forwardSegmentBatch, segmentsOf } from "../src/memory/edgeinfinite.js";
import { sequenceGradients, sequenceGradientsBatch, sequenceLoss, sequenceLossBatch } from "../src/training/tbptt.js";
import { heldoutLoss } from "../src/training/run.js";
import { attentionTransferGradients, attentionTransferGradientsBatch } from "../src/training/objectives/attention-transfer.js";
import { mixed } from "../src/training/objectives/mixed.js";
import { disposeReplaced, disposeState, initialState, keepState, totalStateBytes, type EdgeInfiniteState } from "../src/memory/state.js";
import { randomizeModule } from "./fixtures/module-params.js";
import { MAX_ADDN_INPUTS } from "../src/backend/add-n.js";

const stories = resolve(__dirname, "../../shared/models/stories260K/stories260K.bin");

/** Logits [rows·T·vocab] of every segment, the state carried from one to the next (B = rows.length). */
function runSegments(model: LlamaModel, module: MemoryGatingModule, rows: number[][], batched: boolean): Float32Array[] {
  const c = model.config;
  let state: EdgeInfiniteState = initialState(c, module.config.featureMap, batched ? rows.length : 1);
  const out: Float32Array[] = [];
  const segs = rows.map((r) => segmentsOf(r, module.config.segmentLength));
  for (let i = 0; i < segs[0]!.length; i++) {
    const prev = state;
    const r = tf.tidy(() => {
      const f = batched ? forwardSegmentBatch(model, module, prev, segs.map((s) => s[i]!)) : forwardSegment(model, module, prev, segs[0]![i]!);
      keepState(f.state);
      return { logits: tf.keep(model.logits(f.hidden)), state: f.state };
    });
    disposeReplaced(prev, r.state);
    state = r.state;
    out.push(r.logits.dataSync() as Float32Array);
    r.logits.dispose();
  }
  disposeState(state);
  return out;
}

const VARIANTS: Partial<EdgeInfiniteConfig>[] = [
  {},
  { memoryRule: "delta", gateKind: "learned" },
  { exactTokens: 8 },
  { memoryKeys: "post-rope" },
  { readMode: "shared", gateKind: "learned" },
  { featureMap: "hedgehog" },
];

describe("batched EdgeInfinite segment step", () => {
  for (const backend of ["wasm", "cpu"] as const) {
    describe(backend, () => {
      beforeAll(async () => {
        await initBackend(backend);
      });

      for (const v of VARIANTS) {
        it(`${JSON.stringify(v)}: B = 1 is forwardSegment; 3 sequences together equal 3 runs over 7 segments; no tensor left`, async () => {
          const b = await loadBackbone(stories);
          const model = LlamaModel.fromHost(b.config, b.weights);
          const module = new MemoryGatingModule(b.config, makeEdgeInfiniteConfig({ sinkTokens: 4, windowTokens: 32, segmentLength: 16, ...v }));
          randomizeModule(module, 5);
          // 100 tokens: 6 full segments and a short one; the window overflows into memory from the third.
          const rows = [0, 1, 2].map((r) => [1, ...Array.from({ length: 99 }, (_, i) => 3 + ((i * 13 + r * 71 + r * i) % 500))]);
          runSegments(model, module, [rows[0]!], false); // builds the RoPE tables the model keeps
          const before = tf.memory().numTensors;
          const alone = rows.map((r) => runSegments(model, module, [r], false));
          expect(runSegments(model, module, [rows[0]!], true).map((x) => Array.from(x))).toEqual(alone[0]!.map((x) => Array.from(x)));
          const together = runSegments(model, module, rows, true);
          for (let s = 0; s < together.length; s++) {
            const size = alone[0]![s]!.length;
            for (let r = 0; r < rows.length; r++) {
              expect(Array.from(together[s]!.subarray(r * size, (r + 1) * size)), `segment ${s}, row ${r}`).toEqual(Array.from(alone[r]![s]!));
            }
          }
          expect(tf.memory().numTensors).toBe(before);
          module.dispose();
          model.dispose();
        });
      }
    });
  }

  it("a state of B sequences takes B rows, and counts the bytes of all B", async () => {
    await initBackend("cpu");
    const b = await loadBackbone(stories);
    const model = LlamaModel.fromHost(b.config, b.weights);
    const module = new MemoryGatingModule(b.config, makeEdgeInfiniteConfig({ sinkTokens: 4, windowTokens: 32, segmentLength: 16 }));
    const one = initialState(b.config, "elu", 1);
    const three = initialState(b.config, "elu", 3);
    expect(totalStateBytes(three, b.config)).toBe(3 * totalStateBytes(one, b.config));
    expect(() => tf.tidy(() => void forwardSegmentBatch(model, module, three, [[1, 2, 3]]))).toThrow(/1 rows for a state of 3 sequences/);
    disposeState(one);
    disposeState(three);
    module.dispose();
    model.dispose();
  });

  it("held-out loss: NLL of B texts, per-row loss masks and heldoutLoss at batch sizes 1–4 equal the unbatched values exactly", async () => {
    await initBackend("wasm");
    const b = await loadBackbone(stories);
    const model = LlamaModel.fromHost(b.config, b.weights);
    const module = new MemoryGatingModule(b.config, makeEdgeInfiniteConfig({ sinkTokens: 4, windowTokens: 32, segmentLength: 16, gateKind: "learned" }));
    randomizeModule(module, 9);
    const ids = (r: number, n: number) => [1, ...Array.from({ length: n - 1 }, (_, i) => 3 + ((i * 29 + r * 53) % 500))];
    // Four of 80 tokens (one masked to its last 20) and one of 64: two length groups.
    const seqs = [
      { ids: ids(0, 80), source: "t" },
      { ids: ids(1, 80), lossMask: Array.from({ length: 80 }, (_, i) => (i >= 60 ? 1 : 0)), source: "t" },
      { ids: ids(2, 64), source: "t" },
      { ids: ids(3, 80), source: "t" },
      { ids: ids(4, 80), source: "t" },
    ];
    const equalLength = [seqs[0]!, seqs[1]!, seqs[3]!];
    await edgeInfiniteNll(model, module, seqs[2]!.ids); // builds the RoPE tables the model keeps
    const before = tf.memory().numTensors;
    const alone: number[][] = [];
    for (const s of equalLength) alone.push(await edgeInfiniteNll(model, module, s.ids));
    expect(await edgeInfiniteNllBatch(model, module, equalLength.map((s) => s.ids))).toEqual(alone);
    const losses: number[] = [];
    for (const s of equalLength) losses.push(await sequenceLoss(model, module, s.ids, s.lossMask));
    expect(await sequenceLossBatch(model, module, equalLength)).toEqual(losses);
    expect(losses[1]).not.toBe(alone[1]!.reduce((a, x) => a + x, 0) / alone[1]!.length); // the mask counted
    const one = await heldoutLoss(model, module, seqs, 1);
    for (const batch of [2, 3, 4]) expect(await heldoutLoss(model, module, seqs, batch)).toBe(one);
    expect(tf.memory().numTensors).toBe(before);
    module.dispose();
    model.dispose();
  });

  for (const k of [1, 2]) {
    it(`TBPTT k = ${k}: B = 3 sequences in one forward/backward give the sum of the three sequences' gradients and losses, per-row masks`, async () => {
      await initBackend("wasm");
      const b = await loadBackbone(stories);
      const model = LlamaModel.fromHost(b.config, b.weights);
      const module = new MemoryGatingModule(b.config, makeEdgeInfiniteConfig({ sinkTokens: 4, windowTokens: 16, segmentLength: 8, gateKind: "learned", memoryRule: "delta" }));
      randomizeModule(module, 11);
      const ids = (r: number) => [1, ...Array.from({ length: 48 }, (_, i) => 3 + ((i * 37 + r * 91) % 500))];
      const seqs = [{ ids: ids(0) }, { ids: ids(1), lossMask: ids(1).map((_, i) => (i % 4 === 0 ? 1 : 0)) }, { ids: ids(2) }];
      await sequenceLoss(model, module, seqs[0]!.ids); // builds the RoPE tables the model keeps
      const before = tf.memory().numTensors;
      const alone: Awaited<ReturnType<typeof sequenceGradients>>[] = [];
      for (const q of seqs) alone.push(await sequenceGradients(model, module, q.ids, k, q.lossMask));
      const together = await sequenceGradientsBatch(model, module, seqs, k);
      expect(together.tokens).toEqual(alone.map((a) => a.tokens));
      expect(together.lossSum).toBeCloseTo(alone.reduce((a, x) => a + x.loss, 0), 5);
      for (const [name, g] of together.grads) {
        const got = g.dataSync();
        const want = new Float64Array(got.length);
        for (const a of alone) a.grads.get(name)!.dataSync().forEach((x, i) => (want[i]! += x));
        const scale = Math.max(1e-3, ...Array.from(want, Math.abs));
        let err = 0;
        for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i]! - want[i]!));
        expect(err / scale, name).toBeLessThan(1e-5);
      }
      tf.dispose([...together.grads.values(), ...alone.flatMap((a) => [...a.grads.values()])]);
      expect(tf.memory().numTensors).toBe(before);
      await expect(sequenceGradientsBatch(model, module, [{ ids: ids(0) }, { ids: ids(1).slice(0, 40) }], k)).rejects.toThrow(/equal lengths/);
      module.dispose();
      model.dispose();
    });
  }

  for (const variant of [
    { readMode: "shared", featureMap: "hedgehog", gateKind: "learned", exactTokens: 4 },
    { memoryRule: "delta", gateKind: "learned" },
  ] as Partial<EdgeInfiniteConfig>[]) {
    it(`attention transfer and mixed (${JSON.stringify(variant)}): B = 3 in one forward/backward give the sum of each sequence's loss and gradients, per-row masks`, async () => {
      await initBackend("wasm");
      const b = await loadBackbone(stories);
      const model = LlamaModel.fromHost(b.config, b.weights);
      const module = new MemoryGatingModule(b.config, makeEdgeInfiniteConfig({ sinkTokens: 4, windowTokens: 16, segmentLength: 8, ...variant }));
      randomizeModule(module, 12);
      const ids = (r: number) => [1, ...Array.from({ length: 44 }, (_, i) => 3 + ((i * 37 + r * 91) % 500))];
      const answerAt = (r: number, from: number) => ids(r).map((_, i) => (i >= from ? 1 : 0));
      const seqs = [{ ids: ids(0) }, { ids: ids(1), lossMask: answerAt(1, 40) }, { ids: ids(2), lossMask: answerAt(2, 30) }];
      const options = { answerWeight: 5, querySpan: 6 };
      const check = (got: Map<string, tf.Tensor>, alone: Map<string, tf.Tensor>[], weight = 1): void => {
        expect([...got.keys()].sort()).toEqual([...alone[0]!.keys()].sort());
        for (const [name, g] of got) {
          const v = g.dataSync();
          const want = new Float64Array(v.length);
          for (const a of alone) a.get(name)!.dataSync().forEach((x, i) => (want[i]! += weight * x));
          const scale = Math.max(1e-3, ...Array.from(want, Math.abs));
          let err = 0;
          for (let i = 0; i < v.length; i++) err = Math.max(err, Math.abs(v[i]! - want[i]!));
          expect(err / scale, name).toBeLessThan(1e-5);
        }
      };
      await attentionTransferGradients(model, module, seqs[0]!.ids, undefined, options).then((r) => tf.dispose([...r.grads.values()])); // RoPE tables
      const before = tf.memory().numTensors;
      const alone = [];
      for (const q of seqs) alone.push(await attentionTransferGradients(model, module, q.ids, q.lossMask, options));
      const together = await attentionTransferGradientsBatch(model, module, seqs, options);
      expect(together.tokens).toEqual(alone.map((a) => a.tokens));
      expect(together.lossSum).toBeCloseTo(alone.reduce((a, x) => a + x.loss, 0), 5);
      check(together.grads, alone.map((a) => a.grads));
      // the masks count: sequence 1 alone with and without its mask differ
      const unmasked = await attentionTransferGradients(model, module, seqs[1]!.ids, undefined, options);
      expect(unmasked.loss).not.toBeCloseTo(alone[1]!.loss, 5);
      // mixed: a·AT + b·NT, batched the same way
      const mixedOptions = { attentionTransfer: 1, nextToken: 0.5, ...options };
      const common = { model, module, tbpttSegments: 2, options: mixedOptions };
      const mixedAlone = [];
      for (const q of seqs) mixedAlone.push(await mixed.gradients({ ...common, sequence: q }));
      const mixedTogether = await mixed.batchGradients!({ ...common, sequences: seqs });
      expect(mixedTogether.lossSum).toBeCloseTo(mixedAlone.reduce((a, x) => a + x.loss, 0), 5);
      check(mixedTogether.grads, mixedAlone.map((a) => a.grads));
      tf.dispose([...together.grads.values(), ...unmasked.grads.values(), ...mixedTogether.grads.values(), ...alone.flatMap((a) => [...a.grads.values()]), ...mixedAlone.flatMap((a) => [...a.grads.values()])]);
      expect(tf.memory().numTensors).toBe(before);
      await expect(attentionTransferGradientsBatch(model, module, [{ ids: ids(0) }, { ids: ids(1).slice(0, 40) }], options)).rejects.toThrow(/different lengths/);
      module.dispose();
      model.dispose();
    });
  }

  it("attention transfer holds one layer's tape at a time: peak bytes with all 5 layers stay below twice those of the first layer alone (one tape over all layers: about 5×)", async () => {
    await initBackend("wasm");
    const b = await loadBackbone(stories);
    const cfg = makeEdgeInfiniteConfig({ sinkTokens: 4, windowTokens: 16, segmentLength: 8, readMode: "shared", featureMap: "hedgehog", gateKind: "learned", exactTokens: 4 });
    const ids = [1, ...Array.from({ length: 160 }, (_, i) => 3 + ((i * 37) % 500))];
    const peakBytes = async (layers: number): Promise<number> => {
      const config = { ...b.config, numLayers: layers };
      const model = LlamaModel.fromHost(config, { ...b.weights, layers: b.weights.layers.slice(0, layers) });
      const module = new MemoryGatingModule(config, cfg);
      randomizeModule(module, 3);
      await attentionTransferGradients(model, module, ids, undefined).then((r) => tf.dispose([...r.grads.values()])); // RoPE tables
      const before = tf.memory().numBytes;
      const info = await tf.profile(async () => {
        const r = await attentionTransferGradients(model, module, ids, undefined);
        tf.dispose([...r.grads.values()]);
      });
      module.dispose();
      model.dispose();
      return info.peakBytes - before;
    };
    expect(b.config.numLayers).toBe(5);
    const one = await peakBytes(1);
    const all = await peakBytes(5);
    expect(all).toBeLessThan(2 * one);
  });

  it("B = 9 sequences: no AddN kernel gets more than 7 inputs (webgpu's storage-buffer limit), and the loss is the sum of each alone", async () => {
    await initBackend("cpu");
    const b = await loadBackbone(stories);
    const model = LlamaModel.fromHost(b.config, b.weights);
    const module = new MemoryGatingModule(b.config, makeEdgeInfiniteConfig({ sinkTokens: 2, windowTokens: 4, segmentLength: 4 }));
    randomizeModule(module, 5);
    const seqs = Array.from({ length: 9 }, (_, r) => ({ ids: [1, ...Array.from({ length: 12 }, (_, i) => 3 + ((i * 37 + r * 91) % 500))] }));
    let alone = 0;
    for (const q of seqs) {
      const r = await sequenceGradients(model, module, q.ids, 2);
      alone += r.loss;
      tf.dispose([...r.grads.values()]);
    }
    const inputsPerAddN: number[] = [];
    let lossSum = NaN;
    const profile = await tf.profile(async () => {
      const r = await sequenceGradientsBatch(model, module, seqs, 2);
      lossSum = r.lossSum;
      tf.dispose([...r.grads.values()]);
    });
    for (const k of profile.kernels) if (k.name === "AddN") inputsPerAddN.push(k.inputShapes.length);
    expect(inputsPerAddN.length).toBeGreaterThan(0);
    expect(Math.max(...inputsPerAddN)).toBeLessThanOrEqual(MAX_ADDN_INPUTS);
    expect(lossSum).toBeCloseTo(alone, 4);
    module.dispose();
    model.dispose();
  });
});
