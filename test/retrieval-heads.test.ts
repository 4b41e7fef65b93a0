import { describe, it, expect, beforeAll } from "vitest";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { LlamaModel } from "../src/backbone/model.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig, validateEdgeInfiniteConfig, exactTokensAt, layoutOverrides, type EdgeInfiniteConfig } from "../src/memory/config.js";
import { forwardSegment } from "../src/memory/edgeinfinite.js";
import { initialState, disposeReplaced, disposeState, keepState } from "../src/memory/state.js";
import { allocateExactTokens, retrievalProbes, retrievalScores, type RetrievalProbe } from "../src/memory/retrieval-heads.js";
import { parseExactPerLayer } from "../src/cli/commands/layout.js";
import { EdgeInfError } from "../src/util/errors.js";
import { tinyConfig, randomWeights, forward64, type Vec } from "./reference/llama64.js";
import { memoryForward64, segmentChunks, type MemoryVariant64 } from "./reference/memory64.js";
import { randomizeModule, moduleTo64, relErr } from "./fixtures/module-params.js";
import { charTokenizer } from "./fixtures/char-tokenizer.js";

beforeAll(async () => {
  await initBackend("cpu");
});

describe("allocateExactTokens", () => {
  it("gives every layer the floor and the rest in proportion to its score, in whole tokens summing to the total", () => {
    // rest 70 split 0 : 1 : 3 → 0, 17.5, 52.5 → floors 10, 27, 62 + one token by largest remainder (tie: lower layer)
    expect(allocateExactTokens([0, 1, 3], 100, 10)).toEqual([10, 28, 62]);
    expect(allocateExactTokens([0.2, 0.2, 0.6], 10, 0)).toEqual([2, 2, 6]);
  });
  it("caps a layer and gives what it cannot take to the others in the same proportion", () => {
    // 9, 9, 72 uncapped; layer 2 capped at 40, the 50 left split 1 : 1
    expect(allocateExactTokens([1, 1, 8], 90, 0, 40)).toEqual([25, 25, 40]);
    // two rounds: 4 : 1 : 1 of 120 over floor 0 with cap 50 → 50, then 70 split 1 : 1 → 35 each
    expect(allocateExactTokens([4, 1, 1], 120, 0, 50)).toEqual([50, 35, 35]);
  });
  it("splits evenly when no layer scores, and refuses a floor above the total", () => {
    expect(allocateExactTokens([0, 0, 0], 90, 5)).toEqual([30, 30, 30]);
    expect(allocateExactTokens([0, 0, 0, 0], 10, 0)).toEqual([3, 3, 2, 2]);
    expect(() => allocateExactTokens([1, 1], 10, 6)).toThrow(/floor 6/);
  });
});

describe("retrievalScores against a float64 forward", () => {
  const c = tinyConfig({ numLayers: 3 });
  const w = randomWeights(c, 11);
  it("per layer and query head: the largest mass a copying row puts on the sources, averaged over probes; numTensors flat", () => {
    const model = LlamaModel.fromHost(c, w);
    const probes: RetrievalProbe[] = [
      { ids: Array.from({ length: 30 }, (_, i) => (i * 7 + 3) % c.vocabSize), queryRows: [24, 28], sources: [[5, 9]] },
      { ids: Array.from({ length: 26 }, (_, i) => (i * 11 + 1) % c.vocabSize), queryRows: [20, 23], sources: [[2, 5], [10, 13]] },
    ];
    retrievalScores(model, probes.slice(0, 1)); // warm-up: RoPE tables are made on first use and kept
    const before = tf.memory().numTensors;
    const got = retrievalScores(model, probes);
    expect(tf.memory().numTensors).toBe(before);
    const want = Array.from({ length: c.numLayers }, () => new Array<number>(c.numHeads).fill(0));
    for (const p of probes) {
      const best = Array.from({ length: c.numLayers }, () => new Array<number>(c.numHeads).fill(0));
      forward64(c, w, p.ids, (layer, t, h, probs: Vec) => {
        if (t < p.queryRows[0] || t >= p.queryRows[1]) return;
        const mass = p.sources.reduce((s, [a, b]) => s + probs.slice(a, b).reduce((x, y) => x + y, 0), 0);
        best[layer]![h] = Math.max(best[layer]![h]!, mass);
      });
      best.forEach((row, l) => row.forEach((m, h) => (want[l]![h]! += m / probes.length)));
    }
    expect(relErr(got, want)).toBeLessThan(1e-5);
    // the sources matter: another span gives other scores
    const moved = retrievalScores(model, probes.map((p) => ({ ...p, sources: [[0, 2]] as [number, number][] })));
    expect(relErr(moved, want)).toBeGreaterThan(1e-2);
    model.dispose();
  });
});

describe("retrievalProbes", () => {
  const corpus = [Array.from({ length: 400 }, (_, i) => `Sentence number ${["one", "two", "three", "four"][i % 4]} is here.`).join(" ")];
  it("finds the value of each needle where the needle put it (both passkey mentions), and the rows that copy it", () => {
    const probes = retrievalProbes({ tokenizer: charTokenizer, corpus, length: 600, count: 4, seed: 3 });
    expect(probes.length).toBe(4);
    probes.forEach((p, i) => {
      expect(p.ids.length).toBe(600);
      const [r0, r1] = p.queryRows;
      expect(r1).toBe(p.ids.length - 2); // the last row predicts the final "." (not copied)
      const value = charTokenizer.decode(p.ids.slice(r0 + 1, r1 + 1));
      expect(value).toMatch(/^ \d{4,6}$/);
      for (const [a, b] of p.sources) expect(charTokenizer.decode(p.ids.slice(a, b))).toBe(value);
      const context = charTokenizer.decode(p.ids.slice(0, r0 + 1));
      expect(p.sources.length).toBe(context.split(value).length - 1);
      // passkey (even probes) states its number twice; key-value once
      expect(p.sources.length).toBe(i % 2 === 0 ? 2 : 1);
    });
    // seeded: the same probes again
    expect(retrievalProbes({ tokenizer: charTokenizer, corpus, length: 600, count: 4, seed: 3 })).toEqual(probes);
  });
});

describe("exactTokensPerLayer", () => {
  const c = tinyConfig();
  const w = randomWeights(c, 5);
  const ids = Array.from({ length: 45 }, (_, i) => (i * 7 + 3) % c.vocabSize);
  const base: Partial<EdgeInfiniteConfig> = { sinkTokens: 2, windowTokens: 8, segmentLength: 4, readMode: "shared", featureMap: "hedgehog", gateKind: "learned", exactSpread: [1, 1] };

  function segmentLogits(model: LlamaModel, module: MemoryGatingModule): Vec[] {
    let state = initialState(model.config, module.config.featureMap);
    const rows: Vec[] = [];
    for (let s0 = 0; s0 < ids.length; s0 += module.config.segmentLength) {
      const prev = state;
      state = tf.scoped(() => {
        const out = forwardSegment(model, module, prev, ids.slice(s0, s0 + module.config.segmentLength));
        rows.push(...(model.logits(out.hidden).arraySync() as number[][]));
        return keepState(out.state);
      });
      disposeReplaced(prev, state);
    }
    const sizes = state.layers.map((L) => L.exactLength);
    disposeState(state);
    rows.push(sizes);
    return rows;
  }

  it("each layer keeps its own number of exact tokens: logits equal the float64 reference with per-layer caches", () => {
    const model = LlamaModel.fromHost(c, w);
    const cfg = makeEdgeInfiniteConfig({ ...base, exactTokens: 3, exactTokensPerLayer: [1, 5] });
    validateEdgeInfiniteConfig(cfg, c);
    expect([exactTokensAt(cfg, 0), exactTokensAt(cfg, 1)]).toEqual([1, 5]);
    const module = new MemoryGatingModule(c, cfg);
    randomizeModule(module, 21, 1);
    const mem = moduleTo64(module);
    const variant: MemoryVariant64 = { sinkTokens: 2, windowTokens: 8, rule: "linear", readMode: "shared", featureMap: "hedgehog", exactTokens: 3, exactSpread: [1, 1], eps: cfg.eps };
    const chunks = segmentChunks(ids.length, 4);
    const want = memoryForward64(c, w, mem, { ...variant, exactTokensPerLayer: [1, 5] }, ids, chunks);
    const rows = segmentLogits(model, module);
    expect(rows.pop()).toEqual([1, 5]); // the state holds 1 and 5 exact tokens
    expect(relErr(rows, want)).toBeLessThan(1e-4);
    // and the split matters: 3 in each layer gives other logits
    expect(relErr(want, memoryForward64(c, w, mem, variant, ids, chunks))).toBeGreaterThan(1e-3);
    module.dispose();
    model.dispose();
  });

  it("the same number in every layer is exactly exactTokens", () => {
    const model = LlamaModel.fromHost(c, w);
    const a = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, exactTokens: 3 }));
    const b = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ ...base, exactTokens: 7, exactTokensPerLayer: [3, 3] }));
    randomizeModule(a, 21, 1);
    randomizeModule(b, 21, 1);
    expect(segmentLogits(model, b)).toEqual(segmentLogits(model, a));
    a.dispose();
    b.dispose();
    model.dispose();
  });

  it("rejects a list of the wrong length, a negative entry, or a layer whose span passes the trained context", () => {
    const check = (over: Partial<EdgeInfiniteConfig>) => () => validateEdgeInfiniteConfig(makeEdgeInfiniteConfig({ ...base, ...over }), c);
    expect(check({ exactTokensPerLayer: [1, 2, 3] })).toThrow(/exactTokensPerLayer has 3 entries, the backbone 2 layers/);
    expect(check({ exactTokensPerLayer: [1, -2] })).toThrow(EdgeInfError);
    expect(check({ exactTokens: 4, exactTokensPerLayer: [1, 250] })).toThrow(/= 264 \(exactTokens of the largest layer\) exceeds/);
    expect(check({ exactTokensPerLayer: [0, 250 - 14] })).not.toThrow();
    // the split replaces exactTokens in every layer, so only its own largest entry bounds the span
    expect(check({ exactTokens: 300, exactTokensPerLayer: [4, 4] })).not.toThrow();
  });

  it("a layout that sets exactTokens alone means that many in every layer: it clears a split it sits over", () => {
    expect(layoutOverrides({ exactTokens: 5 })).toEqual({ exactTokens: 5, exactTokensPerLayer: null });
    expect(layoutOverrides({ exactTokens: 5, exactTokensPerLayer: [1, 9] })).toEqual({ exactTokens: 5, exactTokensPerLayer: [1, 9] });
    expect(layoutOverrides({ sinkTokens: 4 })).toEqual({ sinkTokens: 4 });
    const checkpoint = makeEdgeInfiniteConfig({ ...base, exactTokens: 3, exactTokensPerLayer: [1, 5] });
    const suite = makeEdgeInfiniteConfig({ ...checkpoint, ...layoutOverrides({ exactTokens: 4 }) });
    expect([exactTokensAt(suite, 0), exactTokensAt(suite, 1)]).toEqual([4, 4]);
  });

  it("--exact-per-layer parses whole numbers, none clears it, anything else is one error line", () => {
    expect(parseExactPerLayer("40, 43,1250")).toEqual([40, 43, 1250]);
    expect(parseExactPerLayer("none")).toBeNull();
    expect(() => parseExactPerLayer("40,-3")).toThrow(/--exact-per-layer 40,-3 is not whole numbers/);
    expect(() => parseExactPerLayer("40,,3")).toThrow(EdgeInfError);
  });
});
