import { existsSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { ensureDir } from "../util/paths.js";
import { initBackend } from "../backend/select.js";
import { WorkerPool, defaultWorkerCount } from "../parallel/pool.js";
import { loadBackbone, type LoadedBackbone } from "../loaders/index.js";
import { LlamaModel } from "../backbone/model.js";
import { parameterCount } from "../backbone/config.js";
import { MemoryGatingModule } from "../memory/module.js";
import { makeEdgeInfiniteConfig, validateEdgeInfiniteConfig, type EdgeInfiniteConfig } from "../memory/config.js";
import { EdgeInfError } from "../util/errors.js";
import { writeFileAtomic } from "../util/atomic.js";
import { acquireDirLock } from "../util/lock.js";
import { changedSources, readManifest, writeManifestFile } from "../datasets/manifest.js";
import type { Recipe } from "./recipe.js";
import { AdamW, type AdamWGroup } from "./adamw.js";
import { sequenceLossBatch, yieldToEventLoop } from "./tbptt.js";
import { mapInEqualLengthBatches } from "../backbone/nll.js";
import {
  loadCheckpoint,
  loadModuleTensors,
  readOptimizerState,
  readCheckpointMeta,
  removeIncompleteCheckpoints,
  pruneCheckpoints,
  checkBackbone,
  resolveCheckpointDir,
  type CheckpointHooks,
  type CheckpointMeta,
} from "./checkpoint.js";
import { buildSampler, buildHeldout, datasetManifest, loadRecipeData, sequencesPerStep, type TrainingSequence } from "./data.js";
import { objectiveByName, type Objective } from "./objectives/index.js";
import { TrainLog, type TrainResult } from "./train-log.js";
import { checkFinite, lastCheckpoint } from "./step-checks.js";

/** File name of the dataset manifest a run writes into its output folder. */
export const DATASET_MANIFEST = "dataset.manifest.json";

/** Ways into a run from outside (tests of crash safety kill the process inside a checkpoint write). */
export type TrainHooks = CheckpointHooks;

export interface TrainOptions {
  resume?: boolean;
  /** Stop after this step (exclusive) as if interrupted; the schedule still spans training.steps. */
  stopAtStep?: number;
  log?: (line: string) => void;
  progress?: boolean;
  hooks?: TrainHooks;
}

/** Everything a training run works with, ready before its first step (prepareRun); `dispose` frees the device tensors. */
export interface TrainRun {
  recipe: Recipe;
  /** The output folder. */
  out: string;
  log: (line: string) => void;
  hooks: TrainHooks;
  backendName: string;
  backbone: LoadedBackbone;
  config: EdgeInfiniteConfig;
  model: LlamaModel;
  module: MemoryGatingModule;
  optimizer: AdamW;
  objective: Objective<unknown>;
  /** Worker threads computing the micro-batches' gradients in parallel (training.workers > 1), else null. */
  pool: WorkerPool | null;
  /** training.tbpttSegments as a number (`all` = MAX_SAFE_INTEGER). */
  tbpttSegments: number;
  /** Sequence `index` of step `step` (0-based): a function of the recipe and its seed. */
  sample: (step: number, index: number) => TrainingSequence;
  heldout: TrainingSequence[];
  baselineHeldoutLoss: number;
  /** Steps already done (the checkpoint resumed from; 0 for a new run). */
  startStep: number;
  /** The checkpoint resumed from, if any. */
  resumedFrom: CheckpointMeta | null;
  trainLog: TrainLog;
  backboneChecksum: string;
  trainableParameters: number;
  backboneParameters: number;
  dispose(): void;
}

/** A --resume of a run that already reached training.steps: its summary, nothing to do. */
export interface FinishedRun {
  finished: TrainResult;
  /** The step its last checkpoint holds. */
  step: number;
}

/** Where a run's progress lines go unless TrainOptions.log says otherwise. */
export const defaultLog = (line: string): void => {
  process.stderr.write(line + "\n");
};

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
    exactSpread: e.exactSpread,
    exactTokensPerLayer: e.exactTokensPerLayer,
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

/**
 * Mean held-out loss of `module` over the run's fixed held-out sequences, up to `batchSize` equal-length sequences
 * per forward (training.batchSize). Each sequence's loss is the same whatever the batch size (sequenceLossBatch),
 * and they are summed in sequence order, so the result does not depend on it.
 */
export async function heldoutLoss(model: LlamaModel, module: MemoryGatingModule, seqs: readonly TrainingSequence[], batchSize = 1): Promise<number> {
  const losses = await mapInEqualLengthBatches(seqs, batchSize, async (group) => {
    await yieldToEventLoop();
    return sequenceLossBatch(model, module, group);
  });
  let sum = 0;
  for (const l of losses) sum += l;
  return sum / Math.max(1, seqs.length);
}

/** The recipe's settings checked against the backbone: sequences long enough to use memory. */
function checkRecipeFits(recipe: Recipe, cfg: EdgeInfiniteConfig, backbone: LoadedBackbone): void {
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
}

/**
 * training.optimizer.groups as AdamW groups: `lr` becomes a scale of the recipe's lr (so the schedule shapes every
 * group alike). A group that matches none of the module's variables is an error naming a few of them.
 */
export function optimizerGroups(recipe: Recipe, variableNames: readonly string[]): AdamWGroup[] {
  const o = recipe.training.optimizer;
  return o.groups.map((g, i) => {
    const match = new RegExp(g.match);
    if (!variableNames.some((n) => match.test(n))) {
      const some = variableNames.slice(0, 4).join(", ");
      throw new EdgeInfError(
        `recipe ${recipe.name}: training.optimizer.groups[${i}].match "${g.match}" matches none of the module's variables (${some}, … ${variableNames.length} in all)`,
        'match a part of the names, e.g. "gate" or "memory\\.query_map"',
      );
    }
    return { match, lrScale: g.lr !== undefined ? g.lr / o.lr : (g.lrScale ?? 1), weightDecay: g.weightDecay ?? o.weightDecay };
  });
}

/**
 * Everything before the first step. Whatever can fail on bad input — the backbone, the module's settings against
 * it, a checkpoint for another backbone or a damaged one, the data files and column mappings, optimizer groups —
 * fails before the output folder is created or written to. Then the folder gets its temp folders removed, old step
 * folders pruned, dataset.manifest.json, run.json and the log files. A --resume of a finished run returns its
 * summary and writes nothing.
 */
export async function prepareRun(recipe: Recipe, options: TrainOptions = {}): Promise<TrainRun | FinishedRun> {
  const log = options.log ?? defaultLog;
  const backendInfo = await initBackend(recipe.backend, { log });
  const backbone = await loadBackbone(recipe.backbone);
  const cfg = edgeInfiniteConfigFromRecipe(recipe);
  checkRecipeFits(recipe, cfg, backbone);
  const out = recipe.output;
  const trainLog = new TrainLog(out);
  const hasCheckpoint = existsSync(join(out, "latest.json"));
  if (!options.resume && hasCheckpoint) {
    const meta = readCheckpointMeta(out);
    throw new EdgeInfError(`output ${out} already holds a checkpoint at step ${meta.step}`, "pass --resume to continue it, or choose another output");
  }
  const resuming = options.resume === true && hasCheckpoint;
  const resumedMeta = resuming ? readCheckpointMeta(out) : null;
  if (resumedMeta) {
    checkBackbone(resumedMeta, backbone, resolveCheckpointDir(out));
    const summary = trainLog.readSummary();
    if (resumedMeta.step >= recipe.training.steps && summary) return { finished: summary, step: resumedMeta.step };
  }
  const data = loadRecipeData(recipe);
  const sample = buildSampler(recipe, backbone.tokenizer, data);
  const heldout = buildHeldout(recipe, backbone.tokenizer, data);
  const manifest = datasetManifest(recipe, data);

  // Device tensors from here on: freed however preparing ends, and by dispose() after the run.
  const cleanup: (() => void)[] = [];
  const dispose = () => {
    for (const c of cleanup.reverse()) c();
    cleanup.length = 0;
  };
  try {
    const model = LlamaModel.fromHost(backbone.config, backbone.weights);
    cleanup.push(() => model.dispose());
    const checksum = await backboneChecksum(model);
    const loaded = resuming ? loadCheckpoint(out, backbone) : null;
    const module = loaded ? loaded.module : new MemoryGatingModule(backbone.config, cfg);
    cleanup.push(() => module.dispose());
    const initFrom = !loaded && recipe.training.initFrom !== undefined ? initialiseFrom(module, recipe.training.initFrom, backbone) : null;
    const o = recipe.training.optimizer;
    const groups = optimizerGroups(recipe, [...module.trainableVariables().keys()]);
    const optimizer = new AdamW({ beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, ...(groups.length > 0 ? { groups } : {}) });
    cleanup.push(() => optimizer.dispose());
    const startStep = loaded ? loaded.meta.step : 0;
    if (loaded) {
      const state = readOptimizerState(loaded.dir);
      if (state) optimizer.loadState(loaded.meta.optimizer?.step ?? startStep, state);
    }
    // The folder is locked only now, once bad input can no longer stop the run, so bad input never creates it (a
    // folder made just for the lock is removed again if preparing fails). What was checked above is checked again,
    // in case another run wrote the folder meanwhile.
    const created = !existsSync(out);
    const lock = acquireDirLock(out, "training");
    cleanup.push(() => {
      lock.release();
      if (created) removeIfEmpty(out);
    });
    if ((lastCheckpoint(out)?.step ?? null) !== (resumedMeta?.step ?? null)) {
      throw new EdgeInfError(`output ${out} changed while this run was preparing (another run wrote checkpoints there)`, "choose another output, or --resume once that run has ended");
    }
    let baseline = loaded?.meta.metrics?.baselineHeldoutLoss ?? NaN;
    if (Number.isNaN(baseline)) {
      const untrained = new MemoryGatingModule(backbone.config, cfg);
      try {
        baseline = await heldoutLoss(model, untrained, heldout, recipe.training.batchSize);
      } finally {
        untrained.dispose();
      }
      await checkFinite(baseline, "held-out loss of the untrained module", "check the backbone and the data, or compare with another --backend");
    }

    // Data-parallel micro-batches (src/parallel): each worker runs whole micro-batches (training.batchSize sequences
    // in one forward/backward) and the sum is taken in micro-batch order, so results do not depend on the worker
    // count. Default on cpu and wasm: one single-threaded worker per core, at most one per micro-batch. With one
    // micro-batch a step, the process computes it itself, on wasm's threads. For the attention-transfer recipe a pool
    // of 2 was faster than one process on 2 threads (443 vs 388 tok/s), for next-token at segment 128 slower (286 vs
    // 355); docs/performance.md. Other backends keep one process.
    const parallelByDefault = ["wasm", "cpu"].includes(backendInfo.name);
    const microBatches = Math.ceil(sequencesPerStep(recipe) / recipe.training.batchSize);
    const workers = recipe.training.workers ?? (parallelByDefault ? Math.min(defaultWorkerCount(), microBatches) : 1);
    const pool = workers > 1 ? new WorkerPool({ workers, backend: backendInfo.name, backbone: recipe.backbone }) : null;
    if (pool) {
      cleanup.push(() => void pool.close());
      await pool.ready();
      log(`${workers} worker threads compute the micro-batches' gradients (training.workers)`);
    }

    writeRunFolder(out, log, resuming, manifest);
    const trainable = module.parameterCount();
    const backboneParams = backbone.weights.layers.length > 0 ? parameterCount(backbone.config) : 0;
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
    if (resumedMeta) pruneCheckpoints(out, recipe.training.keepCheckpoints, resumedMeta.step);
    // Rows for steps after the checkpoint a run resumes from were logged by the interrupted run and are redone now.
    trainLog.open(startStep);
    if (loaded) log(`resuming ${out} from step ${startStep}`);
    if (initFrom) log(`module initialised from ${initFrom.dir} (step ${initFrom.step}; training.initFrom)`);
    log(
      `training ${trainable.toLocaleString("en-US")} parameters (${((100 * trainable) / backboneParams).toFixed(3)}% of the backbone's ${backboneParams.toLocaleString("en-US")}), seed ${recipe.seed}, backbone ${backbone.source.id}`,
    );
    for (const [i, g] of groups.entries()) {
      const names = [...module.trainableVariables().keys()].filter((n) => optimizer.groupOf(n) === g);
      log(`optimizer group ${i} (match "${o.groups[i]!.match}"): ${names.length} variables, lr ${o.lr * g.lrScale}, weight decay ${g.weightDecay}`);
    }
    log(`held-out loss, untrained module (gate ≈ 0 ≈ StreamingLLM): ${baseline.toFixed(4)}`);
    return {
      recipe,
      out,
      log,
      hooks: options.hooks ?? {},
      backendName: backendInfo.name,
      backbone,
      config: cfg,
      model,
      module,
      optimizer,
      objective: objectiveByName(recipe.training.objective),
      pool,
      tbpttSegments: recipe.training.tbpttSegments === "all" ? Number.MAX_SAFE_INTEGER : recipe.training.tbpttSegments,
      sample,
      heldout,
      baselineHeldoutLoss: baseline,
      startStep,
      resumedFrom: loaded?.meta ?? null,
      trainLog,
      backboneChecksum: checksum,
      trainableParameters: trainable,
      backboneParameters: backboneParams,
      dispose,
    };
  } catch (e) {
    dispose();
    throw e;
  }
}

/**
 * training.initFrom: the trained module's weights into `module` (strict: every tensor present and of the recipe
 * module's shape), after checking it was trained on this backbone.
 */
function initialiseFrom(module: MemoryGatingModule, path: string, backbone: LoadedBackbone): { dir: string; step: number } {
  if (!existsSync(path)) throw new EdgeInfError(`training.initFrom ${path} does not exist`, "point it at a trained module's folder, e.g. modules/edge-lm-retrieval");
  const dir = resolveCheckpointDir(path);
  const meta = readCheckpointMeta(dir);
  checkBackbone(meta, backbone, dir);
  loadModuleTensors(module, dir);
  return { dir, step: meta.step };
}

function removeIfEmpty(dir: string): void {
  try {
    rmdirSync(dir); // fails when anything is in it
  } catch {
    // not empty: the run wrote there, keep it
  }
}

/** Creates the output folder (removing temp folders a crashed checkpoint write left) and writes the dataset manifest. */
function writeRunFolder(out: string, log: (line: string) => void, resuming: boolean, manifest: ReturnType<typeof datasetManifest>): void {
  ensureDir(out);
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
}
