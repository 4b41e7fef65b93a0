import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import * as tf from "../tf.js";
import { initBackend } from "../backend/select.js";
import { loadBackbone, type LoadedBackbone } from "../loaders/index.js";
import { LlamaModel } from "../backbone/model.js";
import { MemoryGatingModule } from "../memory/module.js";
import { makeEdgeInfiniteConfig, validateEdgeInfiniteConfig, type EdgeInfiniteConfig } from "../memory/config.js";
import { EdgeInfError } from "../util/errors.js";
import { assertFiniteAsync } from "../backend/webgpu-limits.js";
import { writeFileAtomic } from "../util/atomic.js";
import type { Recipe } from "./recipe.js";
import { AdamW, clipByGlobalNorm } from "./adamw.js";
import { learningRate } from "./schedule.js";
import { sequenceGradients, sequenceLoss } from "./tbptt.js";
import { attentionTransferGradients } from "./objectives/attention-transfer.js";
import {
  saveCheckpoint,
  loadCheckpoint,
  readOptimizerState,
  readCheckpointMeta,
  removeIncompleteCheckpoints,
  checkBackbone,
  resolveCheckpointDir,
} from "./checkpoint.js";
import { buildSampler, buildHeldout, datasetManifest, loadRecipeData, type TrainingSequence } from "./data.js";
import { changedSources, readManifest, writeManifestFile } from "../datasets/manifest.js";
import { Progress } from "./progress.js";

/** File name of the dataset manifest a run writes into its output folder. */
export const DATASET_MANIFEST = "dataset.manifest.json";

export interface TrainOptions {
  resume?: boolean;
  /** Stop after this step (exclusive) as if interrupted (tests of --resume). */
  stopAtStep?: number;
  log?: (line: string) => void;
  progress?: boolean;
}

export interface TrainResult {
  steps: number;
  finalLoss: number;
  heldoutLoss: number;
  baselineHeldoutLoss: number;
  checkpointDir: string;
  trainableParameters: number;
  backboneParameters: number;
  backboneChecksum: string;
  tokensPerSecond: number;
}

export function edgeInfiniteConfigFromRecipe(r: Recipe): EdgeInfiniteConfig {
  const e = r.edgeinfinite;
  return makeEdgeInfiniteConfig({
    sinkTokens: e.sinkTokens,
    windowTokens: e.windowTokens,
    segmentLength: e.segmentLength,
    memoryRule: e.memoryRule,
    gateKind: e.gateKind,
    memoryKeys: e.memoryKeys,
    gateInitLogit: e.gateInitLogit,
    readMode: e.readMode,
    featureMap: e.featureMap,
    exactTokens: e.exactTokens,
    trainProjections: { q: e.trainProjections.includes("q"), k: e.trainProjections.includes("k"), v: e.trainProjections.includes("v") },
  });
}

/**
 * sha256 over every frozen backbone tensor's bytes: proves training never touched the backbone. Reads one tensor
 * at a time, asynchronously (works on webgpu).
 */
export async function backboneChecksum(model: LlamaModel): Promise<string> {
  const h = createHash("sha256");
  for (const t of model.frozenTensors()) {
    const data = (await t.data()) as Float32Array;
    h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return h.digest("hex");
}

async function heldoutLoss(model: LlamaModel, module: MemoryGatingModule, seqs: readonly TrainingSequence[]): Promise<number> {
  let sum = 0;
  for (const s of seqs) sum += await sequenceLoss(model, module, s.ids, s.lossMask);
  return sum / Math.max(1, seqs.length);
}

/**
 * Fails loudly when a training value is NaN/±Inf or the webgpu device reported errors (assertFiniteAsync), naming
 * the step; the message says that the last good checkpoint is kept. `what` is e.g. "training loss".
 */
async function checkFinite(value: number, what: string, step: number, out: string, hint: string): Promise<void> {
  try {
    await assertFiniteAsync(value, `${what} at step ${step}`);
  } catch (e) {
    if (!(e instanceof EdgeInfError)) throw e;
    if (!Number.isFinite(value)) {
      throw new EdgeInfError(`${what} became ${value} at step ${step}; stopped, the last good checkpoint in ${out} is kept (backend ${tf.getBackend()})`, hint);
    }
    // Finite, but the webgpu device reported errors: its outputs (and this value) are not trustworthy.
    const problem = e.hint !== undefined ? e.message.slice(0, e.message.length - e.hint.length - 3) : e.message;
    throw new EdgeInfError(`${problem}; stopped, the last good checkpoint in ${out} is kept`, e.hint);
  }
}

/** Removes train_log rows for steps > `step` (left by a run interrupted after its last checkpoint), atomically. */
function dropLogRowsAfter(step: number, jsonl: string, csv: string): void {
  if (existsSync(jsonl)) {
    const rows = readFileSync(jsonl, "utf8").split("\n").filter((l) => l.trim() !== "");
    const keep = rows.filter((l) => {
      try {
        return (JSON.parse(l) as { step: number }).step <= step;
      } catch {
        return false; // a row cut short by the crash
      }
    });
    if (keep.length !== rows.length) writeFileAtomic(jsonl, keep.map((l) => l + "\n").join(""));
  }
  if (existsSync(csv)) {
    const [header, ...rows] = readFileSync(csv, "utf8").split("\n").filter((l) => l.trim() !== "");
    const keep = rows.filter((l) => Number(l.split(",")[0]) <= step && l.split(",").length === header!.split(",").length);
    if (keep.length !== rows.length) writeFileAtomic(csv, [header, ...keep].map((l) => l + "\n").join(""));
  }
}

/** Runs a recipe: segment-wise TBPTT of the memory-gating module on a frozen backbone. */
export async function train(recipe: Recipe, options: TrainOptions = {}): Promise<TrainResult> {
  const log = options.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const backendInfo = await initBackend(recipe.backend, { log });
  const backbone: LoadedBackbone = await loadBackbone(recipe.backbone);
  const cfg = edgeInfiniteConfigFromRecipe(recipe);
  try {
    validateEdgeInfiniteConfig(cfg, backbone.config);
  } catch (e) {
    if (e instanceof EdgeInfError) throw new EdgeInfError(`recipe ${recipe.name}: edgeinfinite: ${e.message.replace(/^edgeinfinite config: /, "")}`);
    throw e;
  }
  if (recipe.data.sequenceLength <= cfg.routingThreshold) {
    throw new EdgeInfError(
      `recipe ${recipe.name}: data.sequenceLength ${recipe.data.sequenceLength} ≤ sinkTokens + windowTokens ${cfg.routingThreshold}: memory would never be used`,
      "use longer sequences or a smaller window",
    );
  }
  const heldoutLength = recipe.data.heldout.sequenceLength ?? recipe.data.sequenceLength;
  if (heldoutLength <= cfg.routingThreshold) {
    throw new EdgeInfError(
      `recipe ${recipe.name}: held-out sequences of ${heldoutLength} tokens ≤ sinkTokens + windowTokens ${cfg.routingThreshold} would never use memory, so trained and untrained held-out loss would be equal`,
      "raise data.heldout.sequenceLength",
    );
  }
  const out = recipe.output;
  const resuming = options.resume === true && existsSync(join(out, "latest.json"));
  if (!options.resume && existsSync(join(out, "latest.json"))) {
    const meta = readCheckpointMeta(out);
    throw new EdgeInfError(`output ${out} already holds a checkpoint at step ${meta.step}`, "pass --resume to continue it, or choose another output");
  }
  // Everything that can fail on bad input (checkpoint for another backbone, data files, column mappings) fails
  // before the output folder is created or written to.
  if (resuming) checkBackbone(readCheckpointMeta(out), backbone, resolveCheckpointDir(out));
  const data = loadRecipeData(recipe);
  const sampler = buildSampler(recipe, backbone.tokenizer, data);
  const heldout = buildHeldout(recipe, backbone.tokenizer, data);
  const manifest = datasetManifest(recipe, data);

  mkdirSync(out, { recursive: true });
  for (const f of removeIncompleteCheckpoints(out)) log(`removed ${join(out, f)}: an interrupted checkpoint write`);
  const manifestPath = join(out, DATASET_MANIFEST);
  if (resuming && existsSync(manifestPath)) {
    let changed: string[];
    try {
      changed = changedSources(readManifest(manifestPath));
    } catch (e) {
      changed = [`${manifestPath} unreadable: ${(e as Error).message}`];
    }
    if (changed.length > 0) log(`warning: data changed since this run started (${changed.join(", ")}); the resumed steps read the new data`);
  }
  writeManifestFile(manifestPath, manifest);
  // Device tensors from here on: freed however the run ends (also on a NaN stop or a bad checkpoint).
  const model = LlamaModel.fromHost(backbone.config, backbone.weights);
  const cleanup: (() => void)[] = [() => model.dispose()];
  try {
    const checksumBefore = await backboneChecksum(model);

    let module = new MemoryGatingModule(backbone.config, cfg);
    cleanup.push(() => module.dispose());
    const optimizer = new AdamW({
      beta1: recipe.training.optimizer.beta1,
      beta2: recipe.training.optimizer.beta2,
      eps: recipe.training.optimizer.eps,
      weightDecay: recipe.training.optimizer.weightDecay,
    });
    cleanup.push(() => optimizer.dispose());
    const tbptt = recipe.training.tbpttSegments === "all" ? Number.MAX_SAFE_INTEGER : recipe.training.tbpttSegments;

    let startStep = 0;
    let baseline = NaN;
    const loaded = resuming ? loadCheckpoint(out, backbone) : null;
    if (loaded) {
      module.dispose();
      module = loaded.module;
      startStep = loaded.meta.step;
      const opt = readOptimizerState(loaded.dir);
      if (opt) optimizer.loadState(loaded.meta.optimizer?.step ?? startStep, opt);
      baseline = loaded.meta.metrics?.baselineHeldoutLoss ?? NaN;
      log(`resuming ${out} from step ${startStep}`);
    }
    if (Number.isNaN(baseline)) {
      const untrained = new MemoryGatingModule(backbone.config, cfg);
      try {
        baseline = await heldoutLoss(model, untrained, heldout);
      } finally {
        untrained.dispose();
      }
      await checkFinite(baseline, "held-out loss of the untrained module", startStep, out, "check the backbone and the data, or compare with another --backend");
    }

    const trainable = module.parameterCount();
    const backboneParams = backbone.weights.layers.length > 0 ? (await import("../backbone/config.js")).parameterCount(backbone.config) : 0;
    const runInfo = {
      recipe,
      seed: recipe.seed,
      backend: backendInfo.name,
      backbone: backbone.source,
      trainableParameters: trainable,
      backboneParameters: backboneParams,
      trainableShare: trainable / backboneParams,
      edgeinfinite: cfg,
      dataset: { manifest: DATASET_MANIFEST, sequences: manifest.records, tokens: manifest.tokens, files: manifest.sources.length },
    };
    writeFileAtomic(join(out, "run.json"), JSON.stringify(runInfo, null, 2));
    log(
      `training ${trainable.toLocaleString("en-US")} parameters (${((100 * trainable) / backboneParams).toFixed(3)}% of the backbone's ${backboneParams.toLocaleString("en-US")}), seed ${recipe.seed}, backbone ${backbone.source.id}`,
    );
    log(`held-out loss, untrained module (gate ≈ 0 ≈ StreamingLLM): ${baseline.toFixed(4)}`);

    const jsonl = join(out, "train_log.jsonl");
    const csv = join(out, "train_log.csv");
    // Rows for steps after the checkpoint a run resumes from were logged by the interrupted run and are redone now.
    if (loaded) dropLogRowsAfter(startStep, jsonl, csv);
    if (!existsSync(csv)) appendFileSync(csv, "step,loss,lr,grad_norm,tokens_per_s,heldout_loss\n");
    const micro = recipe.training.batchSize * recipe.training.gradAccumulation;
    const progress = new Progress("train", recipe.training.steps, process.stderr, options.progress === false ? 1e9 : 10, startStep);
    let lastLoss = NaN;
    let lastHeldout = NaN;
    let lastGradNorm = NaN;
    let tokensDone = 0;
    const t0 = performance.now();
    const saveAt = async (step: number, metrics: Record<string, number>) =>
      saveCheckpoint(
        out,
        module,
        {
          step,
          backbone: { id: backbone.source.id, sha256: backbone.source.sha256, format: backbone.source.format, path: backbone.source.path },
          recipe,
          seed: recipe.seed,
          metrics: { baselineHeldoutLoss: baseline, ...metrics },
          optimizer: { name: "adamw", step: optimizer.step },
        },
        await optimizer.stateTensors(),
        recipe.training.keepCheckpoints,
      );

    const endStep = Math.min(recipe.training.steps, options.stopAtStep ?? Infinity);
    for (let step = startStep; step < endStep; step++) {
      const lr = learningRate(step, recipe.training.optimizer.lr, recipe.training.schedule.warmupSteps, recipe.training.steps, recipe.training.schedule.minLrRatio);
      const grads = new Map<string, tf.Tensor>();
      let lossSum = 0;
      let tokens = 0;
      const done = step + 1;
      const badStep = "lower training.optimizer.lr or training.gradClip and --resume";
      let loss = NaN;
      // One try from the first micro-batch on: whatever throws (a later micro-batch, a non-finite loss or norm, the
      // optimiser), the gradients accumulated so far are freed.
      try {
        for (let i = 0; i < micro; i++) {
          const seq = sampler(step, i);
          const r =
            recipe.training.objective === "attention-transfer"
              ? await attentionTransferGradients(model, module, seq.ids, seq.lossMask, recipe.training.attentionTransfer)
              : await sequenceGradients(model, module, seq.ids, tbptt, seq.lossMask);
          lossSum += r.loss;
          tokens += seq.ids.length - 1;
          for (const [k, g] of r.grads) {
            const acc = grads.get(k);
            grads.set(k, acc ? tf.tidy(() => tf.add(acc, g)) : g);
            if (acc) {
              acc.dispose();
              g.dispose();
            }
          }
        }
        loss = lossSum / micro;
        await checkFinite(loss, "training loss", done, out, badStep);
        for (const [k, g] of grads) {
          grads.set(k, tf.tidy(() => tf.div(g, micro)));
          g.dispose();
        }
        const gradNorm = await clipByGlobalNorm(grads, recipe.training.gradClip);
        await checkFinite(gradNorm, "gradient norm", done, out, badStep);
        optimizer.apply(module.trainableVariables(), grads, lr);
        lastGradNorm = gradNorm;
      } finally {
        tf.dispose([...grads.values()]);
      }
      const gradNorm = lastGradNorm;
      tokensDone += tokens;
      lastLoss = loss;
      const tps = (tokensDone * 1000) / (performance.now() - t0);
      let heldoutNow: number | undefined;
      if (done % recipe.training.evalInterval === 0 || done === recipe.training.steps) {
        heldoutNow = await heldoutLoss(model, module, heldout);
        lastHeldout = heldoutNow;
        await checkFinite(heldoutNow, "held-out loss", done, out, "lower the learning rate and --resume");
      }
      const row = { step: done, loss, lr, gradNorm, tokensPerSecond: tps, heldoutLoss: heldoutNow ?? null, baselineHeldoutLoss: baseline };
      appendFileSync(jsonl, JSON.stringify(row) + "\n");
      appendFileSync(csv, `${done},${loss},${lr},${gradNorm},${tps.toFixed(1)},${heldoutNow ?? ""}\n`);
      progress.update(done, `loss ${loss.toFixed(4)} | ${tps.toFixed(0)} tok/s${heldoutNow !== undefined ? ` | held-out ${heldoutNow.toFixed(4)}` : ""}`);
      if (done % recipe.training.checkpointInterval === 0 || done === recipe.training.steps) {
        await saveAt(done, { loss, ...(Number.isFinite(lastHeldout) ? { heldoutLoss: lastHeldout } : {}) });
      }
    }
    progress.finish(`loss ${lastLoss.toFixed(4)}`);
    const checksumAfter = await backboneChecksum(model);
    if (checksumAfter !== checksumBefore) throw new Error("backbone weights changed during training (this is a bug)");
    const result: TrainResult = {
      steps: endStep,
      finalLoss: lastLoss,
      heldoutLoss: lastHeldout,
      baselineHeldoutLoss: baseline,
      checkpointDir: out,
      trainableParameters: trainable,
      backboneParameters: backboneParams,
      backboneChecksum: checksumAfter,
      tokensPerSecond: (tokensDone * 1000) / (performance.now() - t0),
    };
    writeFileAtomic(join(out, "summary.json"), JSON.stringify(result, null, 2));
    if (Number.isFinite(lastHeldout)) {
      const delta = lastHeldout - baseline;
      const diff = `${delta < 0 ? "−" : "+"}${Math.abs(delta).toFixed(Math.abs(delta) < 5e-4 ? 6 : 4)}`;
      log(`held-out loss: trained ${lastHeldout.toFixed(4)} vs untrained ${baseline.toFixed(4)} (${diff}, ${lastHeldout < baseline ? "better" : "not better"})`);
    }
    return result;
  } finally {
    for (const c of cleanup.reverse()) c();
  }
}
