import { describe, it, expect, beforeAll } from "vitest";
import { mkdtempSync, existsSync, readFileSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { spawn } from "node:child_process";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { LlamaModel } from "../src/backbone/model.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig } from "../src/memory/config.js";
import { forwardSegment } from "../src/memory/edgeinfinite.js";
import { initialState, keepState } from "../src/memory/state.js";
import { sequenceGradients } from "../src/training/tbptt.js";
import { loadRecipe } from "../src/training/recipe.js";
import { train } from "../src/training/train.js";
import { resolveCheckpointDir, readCheckpointMeta } from "../src/training/checkpoint.js";
import { readSafetensors } from "../src/loaders/safetensors.js";
import { learningRate } from "../src/training/schedule.js";
import { tinyConfig, randomWeights } from "./reference/llama64.js";

const repo = resolve(__dirname, "..");
const shared = resolve(repo, "../shared");

function tinyRecipe(dir: string, extra = ""): string {
  const path = join(dir, "recipe.yaml");
  writeFileSync(
    path,
    `name: tiny
seed: 7
backend: cpu
backbone: ${shared}/models/stories260K/stories260K.bin
data:
  sequenceLength: 192
  mixture:
    - { source: text, path: ${shared}/corpora/gutenberg/train/Peter_Pan.txt, weight: 1 }
  heldout: { path: ${shared}/corpora/gutenberg/heldout/Treasure_Island.txt, sequences: 1 }
edgeinfinite: { sinkTokens: 4, windowTokens: 60, segmentLength: 32 }
training:
  steps: 4
  tbpttSegments: 2
  gradAccumulation: 1
  optimizer: { lr: 0.01 }
  evalInterval: 2
  checkpointInterval: 2
output: ${dir}/out
${extra}`,
  );
  return path;
}

const quiet = { log: () => {}, progress: false };

describe("recipes", () => {
  it("reject bad recipes with one-line errors naming the key, and write nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-recipe-"));
    const base = tinyRecipe(dir);
    const cases: [string[], RegExp][] = [
      [["training.stepz=3"], /unknown key "stepz" at training/],
      [["training.steps=three"], /training\.steps: .*number/i],
      [["edgeinfinite.gateKind=mlp"], /edgeinfinite\.gateKind/],
      [["backbone=/nope/model.bin"], /backbone \/nope\/model\.bin does not exist/],
      [["data.sequenceLength=200"], /sequenceLength 200 is not a multiple of edgeinfinite\.segmentLength 32/],
    ];
    for (const [sets, re] of cases) {
      let msg = "";
      try {
        loadRecipe(base, sets);
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg).toMatch(re);
      expect(msg).toContain(base);
      expect(msg.includes("\n")).toBe(false);
    }
    expect(() => loadRecipe(join(dir, "missing.yaml"))).toThrow(/recipe .*missing\.yaml does not exist/);
    expect(existsSync(join(dir, "out"))).toBe(false);
  });

  it("shipped recipes validate", () => {
    for (const f of readdirSync(join(repo, "recipes")).filter((f) => f.endsWith(".yaml"))) {
      const path = join(repo, "recipes", f);
      const text = readFileSync(path, "utf8");
      if (text.includes("edge-lm") && !existsSync(join(shared, "models/edge-lm"))) continue;
      process.chdir(repo);
      expect(() => loadRecipe(path)).not.toThrow();
    }
  });

  it("warmup + cosine schedule", () => {
    expect(learningRate(0, 1, 4, 20, 0.1)).toBeCloseTo(0.25, 12);
    expect(learningRate(3, 1, 4, 20, 0.1)).toBeCloseTo(1, 12);
    expect(learningRate(12, 1, 4, 20, 0.1)).toBeCloseTo(0.1 + 0.45 * (1 + Math.cos(Math.PI * 0.5)), 12);
    expect(learningRate(20, 1, 4, 20, 0.1)).toBeCloseTo(0.1, 12);
  });
});

describe("segment-wise TBPTT", () => {
  beforeAll(async () => {
    await initBackend("cpu");
  });
  const c = tinyConfig();
  const ids = Array.from({ length: 65 }, (_, i) => (i * 11 + 5) % c.vocabSize);
  const cfg = makeEdgeInfiniteConfig({ sinkTokens: 2, windowTokens: 8, segmentLength: 8 });

  it("k = all equals full backprop; k = 1 equals the sum of per-segment gradients with the carried state held constant", async () => {
    const model = LlamaModel.fromHost(c, randomWeights(c, 2));
    const module = new MemoryGatingModule(c, { ...cfg, gateInitLogit: 0 });
    const vars = module.trainableVariables();
    const inputs = ids.slice(0, -1);
    const targets = ids.slice(1);
    const segLoss = (st: ReturnType<typeof initialState>, s: number) => {
      const seg = inputs.slice(s * 8, s * 8 + 8);
      const r = forwardSegment(model, module, st, seg);
      const logp = tf.logSoftmax(model.logits(r.hidden));
      const nll = tf.neg(tf.sum(tf.mul(logp, tf.oneHot(tf.tensor1d(targets.slice(s * 8, s * 8 + 8), "int32"), c.vocabSize))));
      return { loss: tf.div(nll, targets.length) as tf.Scalar, state: r.state };
    };
    // full BPTT written directly: one tape over all 8 segments
    const full = tf.variableGrads(() => {
      let st = initialState(c);
      let total: tf.Scalar = tf.scalar(0);
      for (let s = 0; s < 8; s++) {
        const r = segLoss(st, s);
        total = tf.add(total, r.loss);
        st = r.state;
      }
      return total;
    }, [...vars.values()]);
    // k = 1 written directly: each segment's own tape, state from the previous one as a constant
    const perSegment = new Map<string, Float32Array>();
    let st = initialState(c);
    for (let s = 0; s < 8; s++) {
      let next = st;
      const g = tf.variableGrads(() => {
        const r = segLoss(st, s);
        next = keepState(r.state);
        return r.loss;
      }, [...vars.values()]);
      for (const [name, v] of vars) {
        // with k = 1 key/value maps get no gradient (memory written in a segment is read only by later ones)
        const add = g.grads[v.name]?.dataSync() ?? new Float32Array(v.size);
        const acc = perSegment.get(name) ?? new Float32Array(v.size);
        perSegment.set(name, acc.map((a, i) => a + add[i]!));
      }
      tf.dispose([g.value, ...Object.values(g.grads)]);
      st = next;
    }
    const kAll = await sequenceGradients(model, module, ids, 1000);
    const k1 = await sequenceGradients(model, module, ids, 1);
    let differs = false;
    for (const [name, v] of vars) {
      const want = full.grads[v.name]!.dataSync();
      const gotAll = kAll.grads.get(name)!.dataSync();
      const got1 = k1.grads.get(name)!.dataSync();
      const want1 = perSegment.get(name)!;
      const scale = Math.max(1e-6, ...Array.from(want).map(Math.abs));
      const scale1 = Math.max(1e-6, ...Array.from(want1).map(Math.abs));
      for (let i = 0; i < want.length; i++) {
        expect(Math.abs(gotAll[i]! - want[i]!) / scale, name).toBeLessThan(1e-4);
        expect(Math.abs(got1[i]! - want1[i]!) / scale1, name).toBeLessThan(1e-4);
        if (Math.abs(got1[i]! - want[i]!) / scale > 1e-3) differs = true;
      }
    }
    expect(differs).toBe(true); // truncation changes the gradient
    expect(kAll.loss).toBeCloseTo(full.value.dataSync()[0]!, 5);
    tf.dispose([full.value, ...Object.values(full.grads), ...kAll.grads.values(), ...k1.grads.values()]);
    module.dispose();
    model.dispose();
  });

  it("peak memory grows with k, not with sequence length", async () => {
    const model = LlamaModel.fromHost(c, randomWeights(c, 2));
    const module = new MemoryGatingModule(c, cfg);
    const peak = async (n: number, k: number) => {
      const seq = Array.from({ length: n * 8 + 1 }, (_, i) => (i * 7 + 1) % c.vocabSize);
      const info = await tf.profile(async () => {
        const { grads } = await sequenceGradients(model, module, seq, k);
        tf.dispose([...grads.values()]);
      });
      return info.peakBytes;
    };
    const short2 = await peak(8, 2);
    const long2 = await peak(32, 2);
    const short8 = await peak(8, 8);
    expect(Math.abs(long2 - short2) / short2).toBeLessThan(0.05);
    expect(short8).toBeGreaterThan(2 * short2);
    module.dispose();
    model.dispose();
  });
});

describe("training runs", () => {
  it("--resume continues bit-for-bit like an uninterrupted run; the backbone is untouched", async () => {
    const a = mkdtempSync(join(tmpdir(), "ei-train-a-"));
    const b = mkdtempSync(join(tmpdir(), "ei-train-b-"));
    const ra = await train(loadRecipe(tinyRecipe(a)), quiet);
    await train(loadRecipe(tinyRecipe(b)), { ...quiet, stopAtStep: 2 });
    expect(readCheckpointMeta(join(b, "out")).step).toBe(2);
    const rb = await train(loadRecipe(tinyRecipe(b)), { ...quiet, resume: true });
    const ma = readFileSync(join(resolveCheckpointDir(join(a, "out")), "module.safetensors"));
    const mb = readFileSync(join(resolveCheckpointDir(join(b, "out")), "module.safetensors"));
    expect(Buffer.compare(ma, mb)).toBe(0);
    expect(rb.finalLoss).toBe(ra.finalLoss);
    expect(rb.backboneChecksum).toBe(ra.backboneChecksum);
    // the module did change
    const t = readSafetensors(join(resolveCheckpointDir(join(a, "out")), "module.safetensors"));
    expect(Array.from(t.get("layers.0.gate.bias")!.data).some((v) => Math.abs(v + 6) > 1e-4)).toBe(true);
    // an existing output without --resume is refused
    await expect(train(loadRecipe(tinyRecipe(a)), quiet)).rejects.toThrow(/already holds a checkpoint at step 4 — pass --resume/);
  }, 180_000);

  it("a NaN loss stops the run with a message and keeps the last good checkpoint", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-nan-"));
    const recipe = loadRecipe(tinyRecipe(dir), ["training.optimizer.lr=1e30", "training.checkpointInterval=1", "training.steps=6", "training.gradClip=0"]);
    await expect(train(recipe, quiet)).rejects.toThrow(/loss became (NaN|Infinity|-Infinity) at step \d+; stopped, the last good checkpoint/);
    const meta = readCheckpointMeta(join(dir, "out"));
    expect(meta.step).toBeGreaterThanOrEqual(1);
    expect(readSafetensors(join(resolveCheckpointDir(join(dir, "out")), "module.safetensors")).size).toBeGreaterThan(0);
  }, 120_000);

  it("kill -9 during checkpoint writes leaves the previous checkpoint loadable", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-kill-"));
    const child = spawn(process.execPath, ["--import", "tsx", join(repo, "test/fixtures/checkpoint-writer.ts"), dir], { cwd: repo });
    let saved = 0;
    await new Promise<void>((done) => {
      child.stdout.on("data", (d: Buffer) => {
        saved += (d.toString().match(/saved/g) ?? []).length;
        if (saved >= 3) {
          // kill while the next write is in flight
          setTimeout(() => child.kill("SIGKILL"), 7);
        }
      });
      child.on("exit", () => done());
    });
    expect(saved).toBeGreaterThanOrEqual(3);
    const meta = readCheckpointMeta(dir);
    expect(meta.step).toBeGreaterThanOrEqual(3);
    const step = resolveCheckpointDir(dir);
    expect(readSafetensors(join(step, "module.safetensors")).size).toBeGreaterThan(0);
    expect(readSafetensors(join(step, "optimizer.safetensors")).get("m.big")!.data.length).toBe(4_000_000);
  }, 60_000);
});
