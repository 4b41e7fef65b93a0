/**
 * src/parallel: worker threads with their own wasm backend. Two workers must give exactly what one process gives:
 * data-parallel module gradients bit-identical to train()'s in-process accumulation (over two optimiser steps, so the
 * weights sent to the workers change), and `runSuite --workers 2` the same samples.jsonl rows, in the same order, as
 * one worker (timing fields aside); an interrupted 2-worker run leaves a prefix of that order and resumes to it.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { loadBackbone, type LoadedBackbone } from "../src/loaders/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig } from "../src/memory/config.js";
import { sequenceGradients } from "../src/training/tbptt.js";
import { AdamW } from "../src/training/adamw.js";
import { EdgeInfError } from "../src/util/errors.js";
import { parseSuite, type Suite } from "../src/eval/suite.js";
import { resolveWorkers, runSuite } from "../src/eval/harness.js";
import type { SampleRow } from "../src/eval/samples-log.js";
import { checkWorkerCount, runInOrder, WorkerPool } from "../src/parallel/pool.js";
import { parallelGradients, stepGradients } from "../src/parallel/gradients.js";
import { batchGradientsInto } from "../src/training/step.js";
import { objectiveByName } from "../src/training/objectives/index.js";
import { divideGradients } from "../src/training/gradient-sums.js";

const repo = resolve(__dirname, "..");
const storiesPath = resolve(repo, "../shared/models/stories260K/stories260K.bin");
const corpusPath = resolve(repo, "../shared/corpora/gutenberg/heldout");

let backbone: LoadedBackbone;
let model: LlamaModel;
let pool: WorkerPool;
const dirs: string[] = [];

beforeAll(async () => {
  await initBackend("wasm", { log: () => {} });
  backbone = await loadBackbone(storiesPath);
  model = LlamaModel.fromHost(backbone.config, backbone.weights);
  pool = new WorkerPool({ workers: 2, backend: "wasm", backbone: storiesPath });
  await pool.ready();
});

afterAll(async () => {
  await pool?.close();
  model?.dispose();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** train()'s in-process accumulation of one step, written out: Σ in micro-batch order, then ÷ count. */
async function inProcessStep(module: MemoryGatingModule, seqs: { ids: number[]; lossMask?: number[] }[], tbptt: number) {
  const grads = new Map<string, tf.Tensor>();
  let lossSum = 0;
  for (const s of seqs) {
    const r = await sequenceGradients(model, module, s.ids, tbptt, s.lossMask);
    lossSum += r.loss;
    for (const [k, g] of r.grads) {
      const acc = grads.get(k);
      grads.set(k, acc ? tf.tidy(() => tf.add(acc, g)) : g);
      if (acc) {
        acc.dispose();
        g.dispose();
      }
    }
  }
  for (const [k, g] of grads) {
    grads.set(k, tf.tidy(() => tf.div(g, seqs.length)));
    g.dispose();
  }
  return { loss: lossSum / seqs.length, grads };
}

async function hostValues(grads: Map<string, tf.Tensor>): Promise<[string, Float32Array][]> {
  const out: [string, Float32Array][] = [];
  for (const [k, g] of grads) out.push([k, (await g.data()) as Float32Array]);
  return out;
}

describe("parallelGradients", () => {
  it("2 workers (and stepGradients in process) give bit-identical loss and gradients to train()'s accumulation, step after step", async () => {
    const cfg = makeEdgeInfiniteConfig({ sinkTokens: 2, windowTokens: 8, segmentLength: 8, trainProjections: { q: true, k: true, v: true } });
    const local = new MemoryGatingModule(backbone.config, cfg);
    const remote = new MemoryGatingModule(backbone.config, cfg);
    const optLocal = new AdamW({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
    const optRemote = new AdamW({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
    const V = backbone.config.vocabSize;
    // Three micro-batches (uneven over two workers), different lengths, one with a loss mask.
    const seqs = [
      { ids: Array.from({ length: 41 }, (_, i) => (i * 7 + 3) % V) },
      { ids: Array.from({ length: 33 }, (_, i) => (i * 13 + 1) % V), lossMask: Array.from({ length: 33 }, (_, i) => (i > 20 ? 1 : 0)) },
      { ids: Array.from({ length: 49 }, (_, i) => (i * 5 + 11) % V) },
    ];
    const tensorsAfterStep: number[] = [];
    try {
      for (let step = 0; step < 3; step++) {
        const a = await inProcessStep(local, seqs, 2);
        const b = await parallelGradients(pool, remote, seqs.map((s) => [s]), { tbpttSegments: 2 });
        const c = await stepGradients(model, local, seqs, { tbpttSegments: 2 });
        const ha = await hostValues(a.grads);
        for (const other of [b, c]) {
          expect(other.loss).toBe(a.loss);
          expect(other.tokens).toBe(40 + 32 + 48);
          const hb = await hostValues(other.grads);
          // Same names in the same order (clipByGlobalNorm sums in map order), same bits.
          expect(hb.map(([k]) => k)).toEqual(ha.map(([k]) => k));
          for (let i = 0; i < ha.length; i++) {
            expect(Buffer.from(hb[i]![1].buffer, hb[i]![1].byteOffset, hb[i]![1].byteLength).equals(Buffer.from(ha[i]![1].buffer, ha[i]![1].byteOffset, ha[i]![1].byteLength)), ha[i]![0]).toBe(true);
          }
        }
        tf.dispose([...c.grads.values()]);
        // The gradients are not trivially zero (a gradient that never flows would also be "equal").
        expect(ha.some(([, v]) => v.some((x) => x !== 0))).toBe(true);
        optLocal.apply(local.trainableVariables(), a.grads, 1e-2);
        optRemote.apply(remote.trainableVariables(), b.grads, 1e-2);
        tf.dispose([...a.grads.values(), ...b.grads.values()]);
        tensorsAfterStep.push(tf.memory().numTensors);
      }
      // Flat once the optimiser's moments exist: nothing of the parallel path stays behind in this process.
      expect(tensorsAfterStep[2]).toBe(tensorsAfterStep[1]);
    } finally {
      optLocal.dispose();
      optRemote.dispose();
      local.dispose();
      remote.dispose();
    }
  });
});

describe("parallelGradients with batches (workers × batch)", () => {
  for (const objective of ["next-token", "mixed"] as const) {
    it(`${objective}: micro-batches of 2 equal-length sequences per worker give the in-process batched step's loss and gradients bit for bit`, async () => {
      const cfg = makeEdgeInfiniteConfig({ sinkTokens: 2, windowTokens: 8, segmentLength: 8, readMode: "shared", featureMap: "hedgehog", gateKind: "learned", exactTokens: 2 });
      const module = new MemoryGatingModule(backbone.config, cfg);
      const V = backbone.config.vocabSize;
      const seq = (n: number, r: number, answerFrom?: number) => ({
        ids: Array.from({ length: n }, (_, i) => (i * (7 + 2 * r) + 3 * r + 1) % V),
        ...(answerFrom !== undefined ? { lossMask: Array.from({ length: n }, (_, i) => (i >= answerFrom ? 1 : 0)) } : {}),
        source: "test",
      });
      // three micro-batches over two workers: two of two sequences (one row masked), then one alone
      const batches = [[seq(33, 0), seq(33, 1, 25)], [seq(41, 2), seq(41, 3)], [seq(25, 4, 20)]];
      const options = objective === "mixed" ? { attentionTransfer: 1, nextToken: 0.5, answerWeight: 5, querySpan: 6 } : {};
      const common = { model, module, tbpttSegments: 2, options };
      // train()'s in-process step (src/training/step.ts): batchGradientsInto per micro-batch, then ÷ sequences
      const want = new Map<string, tf.Tensor>();
      let lossSum = 0;
      for (const b of batches) lossSum += (await batchGradientsInto(want, objectiveByName(objective), common, b)).lossSum;
      divideGradients(want, 5);
      const before = tf.memory().numTensors;
      const got = await parallelGradients(pool, module, batches, { tbpttSegments: 2, objective, objectiveOptions: options });
      expect(got.loss).toBe(lossSum / 5);
      expect(got.tokens).toBe(2 * 32 + 2 * 40 + 24);
      const [hw, hg] = [await hostValues(want), await hostValues(got.grads)];
      expect(hg.map(([k]) => k)).toEqual(hw.map(([k]) => k));
      for (let i = 0; i < hw.length; i++) expect(Buffer.from(hg[i]![1].buffer).equals(Buffer.from(hw[i]![1].buffer)), hw[i]![0]).toBe(true);
      expect(hw.some(([, v]) => v.some((x) => x !== 0))).toBe(true);
      tf.dispose([...got.grads.values()]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([...want.values()]);
      module.dispose();
    });
  }
});

/** Fields that are timing or process measurements (they differ from run to run, and between 1 and 2 workers). */
const TIMING: (keyof SampleRow)[] = ["ttftMs", "ttftMsRuns", "decodeTokensPerSecond", "prefillTokensPerSecond", "maxRssKb", "rssBytes", "finishedAt"];

function readRows(runDir: string): Record<string, unknown>[] {
  return readFileSync(join(runDir, "samples.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      const row = JSON.parse(l) as Record<string, unknown>;
      for (const k of TIMING) delete row[k];
      return row;
    });
}

function tinySuite(): Suite {
  return parseSuite(
    {
      name: "tiny-parallel",
      backbone: storiesPath,
      corpus: corpusPath,
      seed: 7,
      lengths: [160],
      tasks: [{ name: "passkey", source: "synthetic", count: 2, depths: [0.2, 0.8], intro: false }],
      methods: [{ name: "full" }, { name: "h2o", budget: 64 }, { name: "edgeinfinite", sinkTokens: 4, windowTokens: 60, segmentLength: 32 }],
      generation: { maxNewTokens: 8, temperature: 0 },
      warmup: true,
    },
    "<test suite>",
    repo,
  );
}

describe("runSuite with workers", () => {
  it("2 workers write the 1-worker rows in the 1-worker order; interrupted, they leave a prefix and resume to the same file", async () => {
    const s = tinySuite();
    const dir = mkdtempSync(join(tmpdir(), "edgeinf-parallel-"));
    dirs.push(dir);
    const one = await runSuite(s, { runDir: join(dir, "one"), backbone, model, progress: "none", warn: () => {}, workers: 1 });
    expect(one.samples).toHaveLength(6);
    const expected = readRows(join(dir, "one"));
    // Outputs and the eviction really differ between methods (equal rows are not a sign of an idle method).
    expect(expected.some((r) => (r.outputIds as number[]).length > 0)).toBe(true);

    const two = join(dir, "two");
    const controller = new AbortController();
    const warnings: string[] = [];
    const cut = await runSuite(s, { runDir: two, backbone, progress: "none", warn: (m) => warnings.push(m), workers: 2, signal: controller.signal, onProgress: () => controller.abort() });
    expect(cut.complete).toBe(false);
    expect(warnings.some((w) => /2 workers share .* contention/.test(w))).toBe(true);
    const partial = readRows(two);
    expect(partial.length).toBeGreaterThanOrEqual(1);
    expect(partial.length).toBeLessThan(6);
    expect(partial).toEqual(expected.slice(0, partial.length));

    const rest = await runSuite(s, { runDir: two, backbone, progress: "none", warn: () => {}, workers: 2 });
    expect(rest.complete).toBe(true);
    expect(rest.resumedSamples).toBe(partial.length);
    expect(rest.newSamples).toBe(6 - partial.length);
    expect(readRows(two)).toEqual(expected);
    const run = JSON.parse(readFileSync(join(two, "run.json"), "utf8")) as { invocations: { workers: number; complete: boolean }[] };
    expect(run.invocations.map((i) => [i.workers, i.complete])).toEqual([[2, false], [Math.min(2, 6 - partial.length), true]]);
  });
});

describe("pool errors and settings", () => {
  it("a worker's one-line error reaches the parent as an EdgeInfError; bad worker counts fail with one line", async () => {
    const bad = new WorkerPool({ workers: 1, backend: "wasm", backbone: join(tmpdir(), "no-such-model.bin") });
    try {
      await expect(bad.ready()).rejects.toBeInstanceOf(EdgeInfError);
      await expect(bad.ready()).rejects.toThrow(/no-such-model/);
    } finally {
      await bad.close();
    }
    for (const n of [0, -1, 1.5, NaN]) expect(() => checkWorkerCount(n, "--workers")).toThrow(/^--workers .* must be a positive integer/);
    expect(resolveWorkers(undefined, "wasm")).toBe(1);
    expect(resolveWorkers("auto", "webgpu")).toBe(1);
    expect(resolveWorkers("auto", "wasm")).toBeGreaterThanOrEqual(1);
    expect(resolveWorkers(3, "webgpu")).toBe(3);
  });

  it("runInOrder consumes results in item order whatever order they finish in", async () => {
    const delays = [30, 0, 10, 0, 20];
    const seen: number[] = [];
    const n = await runInOrder(pool, delays.length, (i) => new Promise<number>((done) => setTimeout(() => done(i * 10), delays[i])), (r) => void seen.push(r));
    expect(n).toBe(5);
    expect(seen).toEqual([0, 10, 20, 30, 40]);
  });
});
