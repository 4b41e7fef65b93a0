import { existsSync, readFileSync, renameSync, rmSync, readdirSync } from "node:fs";
import { join, dirname, basename } from "node:path";
import type { LoadedBackbone } from "../loaders/index.js";
import { readSafetensors, writeSafetensors } from "../loaders/safetensors.js";
import { writeFileAtomic } from "../util/atomic.js";
import { ensureDir } from "../util/paths.js";
import { readJsonFile } from "../util/json.js";
import { EdgeInfError } from "../util/errors.js";
import { MemoryGatingModule } from "../memory/module.js";
import { layoutOverrides, layoutSchema, makeEdgeInfiniteConfig, validateEdgeInfiniteConfig, type EdgeInfiniteConfig, type Layout } from "../memory/config.js";

/**
 * A checkpoint is a folder `DIR/step-NNNNNN/` holding
 *   module.safetensors     the trainable tensors (names as in MemoryGatingModule),
 *   optimizer.safetensors  AdamW moments (for --resume),
 *   checkpoint.json        recipe, backbone id and sha256, step, seeds, metrics, EdgeInfinite config;
 * and `DIR/latest.json` names the newest complete one. A step folder is written under a temp name and renamed,
 * and latest.json is replaced atomically after it, so a crash (even kill -9) mid-write leaves the previous
 * checkpoint as the one that loads. A temp folder left by a crash is removed by the next run (removeIncompleteCheckpoints),
 * and step folders a crash left unpruned by the next run's pruneCheckpoints.
 */
export interface CheckpointMeta {
  format: "edgeinfinite-checkpoint/1";
  step: number;
  /** `path` (where it was loaded from) is recorded since v0.1 runs; older checkpoints lack it. */
  backbone: { id: string; sha256: string; format: string; path?: string };
  /** The settings it was trained with (resume uses these). */
  edgeinfinite: EdgeInfiniteConfig;
  /**
   * The layout eval/generate/ppl run it at when they name none (`edgeinf layout`): keys over `edgeinfinite`'s. Not
   * written by training; a run resumed from this checkpoint writes checkpoints without it.
   */
  inference?: Layout;
  recipe?: unknown;
  seed?: number;
  metrics?: Record<string, number>;
  optimizer?: { name: "adamw"; step: number };
  createdAt: string;
}

export interface HostTensorMap {
  [name: string]: { shape: number[]; data: Float32Array };
}

/** Host copies of the module's trainable tensors, read asynchronously (works on webgpu). */
export async function moduleHostTensors(module: MemoryGatingModule): Promise<HostTensorMap> {
  const entries = [...module.trainableVariables()];
  const data = await Promise.all(entries.map(([, v]) => v.data() as Promise<Float32Array>));
  const out: HostTensorMap = {};
  entries.forEach(([name, v], i) => (out[name] = { shape: v.shape, data: data[i]! }));
  return out;
}

/** Moments inside a checkpoint write where a hook runs (see CheckpointHooks). */
export type CheckpointWriteStage = "write-step-folder" | "before-latest" | "before-prune";

/**
 * Called inside saveCheckpoint, synchronously, at two moments of the write:
 *   write-step-folder  module.safetensors is in the temp folder; optimizer.safetensors, checkpoint.json and the
 *                      rename are not done;
 *   before-latest      the step folder has been renamed into place; latest.json still names the previous step;
 *   before-prune       latest.json names the new step; older step folders beyond `keep` are not deleted yet.
 * Tests of crash safety kill the process there (test/fixtures/crash-hook.ts) instead of racing a kill against the writer.
 */
export interface CheckpointHooks {
  onCheckpointWrite?(stage: CheckpointWriteStage, step: number): void;
}

const TMP_NAME = /^\.step-\d+\.tmp-(\d+)$/;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes temp step folders (`.step-NNNNNN.tmp-PID`) that a crashed writer left in `dir` (the writer's process no
 * longer runs); returns their names. They never hold a checkpoint that latest.json names.
 */
export function removeIncompleteCheckpoints(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const removed: string[] = [];
  for (const f of readdirSync(dir)) {
    const m = TMP_NAME.exec(f);
    if (!m || Number(m[1]) === process.pid || processAlive(Number(m[1]))) continue;
    rmSync(join(dir, f), { recursive: true, force: true });
    removed.push(f);
  }
  return removed;
}

/**
 * Writes a checkpoint step folder (see above) and prunes all but the newest `keep`. Asynchronous only for reading
 * the module's tensors off the device; the files are written after that, synchronously, temp folder then rename.
 */
export async function saveCheckpoint(
  dir: string,
  module: MemoryGatingModule,
  meta: Omit<CheckpointMeta, "format" | "createdAt" | "edgeinfinite">,
  optimizerState?: HostTensorMap,
  keep = 2,
  hooks: CheckpointHooks = {},
): Promise<string> {
  const tensors = await moduleHostTensors(module);
  ensureDir(dir);
  const name = `step-${String(meta.step).padStart(6, "0")}`;
  const final = join(dir, name);
  const tmp = join(dir, `.${name}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  ensureDir(tmp);
  const full: CheckpointMeta = { format: "edgeinfinite-checkpoint/1", createdAt: new Date().toISOString(), edgeinfinite: module.config, ...meta };
  writeSafetensors(join(tmp, "module.safetensors"), tensors, { format: full.format, step: String(meta.step) });
  hooks.onCheckpointWrite?.("write-step-folder", meta.step);
  if (optimizerState) writeSafetensors(join(tmp, "optimizer.safetensors"), optimizerState, { step: String(meta.step) });
  writeFileAtomic(join(tmp, "checkpoint.json"), JSON.stringify(full, null, 2));
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  hooks.onCheckpointWrite?.("before-latest", meta.step);
  writeFileAtomic(join(dir, "latest.json"), JSON.stringify({ step: meta.step, path: name }, null, 2));
  hooks.onCheckpointWrite?.("before-prune", meta.step);
  pruneCheckpoints(dir, keep, meta.step);
  return final;
}

const STEP_NAME = /^step-(\d+)$/;

/**
 * Deletes all but the newest `keep` step folders up to `latestStep` (the one latest.json names); returns their names.
 * Folders of later steps (renamed into place by a run killed before it replaced latest.json) are left: the resumed
 * run redoes those steps and replaces them.
 */
export function pruneCheckpoints(dir: string, keep: number, latestStep: number): string[] {
  const steps = readdirSync(dir)
    .filter((f) => STEP_NAME.test(f) && Number(STEP_NAME.exec(f)![1]) <= latestStep)
    .sort();
  const old = steps.slice(0, Math.max(0, steps.length - keep));
  for (const f of old) rmSync(join(dir, f), { recursive: true, force: true });
  return old;
}

/** Resolves DIR (with latest.json), or a step folder itself, to the step folder. */
export function resolveCheckpointDir(path: string): string {
  if (!existsSync(path)) throw new EdgeInfError(`checkpoint ${path} does not exist`, "pass a folder written by edgeinf train (e.g. checkpoints/quickstart)");
  if (existsSync(join(path, "checkpoint.json"))) return path;
  const latest = join(path, "latest.json");
  if (!existsSync(latest)) throw new EdgeInfError(`checkpoint ${path} has no latest.json or checkpoint.json`, "pass a folder written by edgeinf train");
  const parsed = readJsonFile(latest, "the checkpoint folder is damaged; pass one of its step-* folders instead");
  const step = (parsed as { path?: unknown } | null)?.path;
  if (typeof step !== "string" || step === "") {
    throw new EdgeInfError(`${latest} names no step folder (no "path")`, "the checkpoint folder is damaged; pass one of its step-* folders instead");
  }
  const dir = join(path, step);
  if (!existsSync(join(dir, "checkpoint.json"))) throw new EdgeInfError(`checkpoint ${dir} is incomplete (no checkpoint.json)`, "resume from an earlier step folder");
  return dir;
}

export function readCheckpointMeta(path: string): CheckpointMeta {
  const dir = resolveCheckpointDir(path);
  try {
    return JSON.parse(readFileSync(join(dir, "checkpoint.json"), "utf8")) as CheckpointMeta;
  } catch (e) {
    throw new EdgeInfError(`checkpoint ${dir}/checkpoint.json is not valid JSON: ${(e as Error).message}`, "the checkpoint is damaged; use an earlier one");
  }
}

/** Refuses a checkpoint trained on another backbone (compared by weight sha256). */
export function checkBackbone(meta: CheckpointMeta, backbone: LoadedBackbone, where: string): void {
  if (meta.backbone.sha256 !== backbone.source.sha256) {
    // Two backbones can share a name (two "model.bin"s, two "edge-lm" folders): then name their paths too.
    const sameId = meta.backbone.id === backbone.source.id;
    const was = `"${meta.backbone.id}"${sameId && meta.backbone.path ? ` at ${meta.backbone.path}` : ""}`;
    const now = `"${backbone.source.id}"${sameId ? ` at ${backbone.source.path}` : ""}`;
    throw new EdgeInfError(
      `checkpoint ${where} was trained on backbone ${was} (sha256 ${meta.backbone.sha256.slice(0, 12)}…), not on ${now} (sha256 ${backbone.source.sha256.slice(0, 12)}…)`,
      "pass the backbone it was trained on, or train a module for this one",
    );
  }
}

/**
 * Loads the step folder's module.safetensors into `module`, strictly (MemoryGatingModule.load: a missing, extra or
 * mis-shaped tensor is a one-line EdgeInfError naming the file and the tensor). Shared by loadCheckpoint (--resume,
 * eval, ppl, generate) and the export's openCheckpointForExport.
 */
export function loadModuleTensors(module: MemoryGatingModule, dir: string): void {
  const file = join(dir, "module.safetensors");
  if (!existsSync(file)) throw new EdgeInfError(`checkpoint ${dir} has no module.safetensors`, "the checkpoint is incomplete; use another step folder");
  module.load(readSafetensors(file), file);
}

/** The checkpoint's `inference` layout as config overrides ({} when it has none); `dir` names it in errors. */
function checkpointLayout(meta: CheckpointMeta, dir: string): Partial<EdgeInfiniteConfig> {
  if (meta.inference === undefined) return {};
  const parsed = layoutSchema.safeParse(meta.inference);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new EdgeInfError(
      `checkpoint ${dir}/checkpoint.json: inference${issue.path.length ? "." + issue.path.join(".") : ""}: ${issue.message}`,
      `set the layout again with edgeinf layout ${dir} (or --clear it)`,
    );
  }
  return layoutOverrides(parsed.data);
}

/**
 * Trained settings with `layout` over them, the routing threshold following a new sink or window unless given.
 */
function layoutConfig(trained: EdgeInfiniteConfig, layout: Partial<EdgeInfiniteConfig>): EdgeInfiniteConfig {
  const { routingThreshold, ...rest } = trained;
  const windowChanged = layout.sinkTokens !== undefined || layout.windowTokens !== undefined;
  const keepRouting = layout.routingThreshold === undefined && !windowChanged;
  return makeEdgeInfiniteConfig({ ...rest, ...layout, ...(keepRouting ? { routingThreshold } : {}) });
}

/**
 * The settings the checkpoint runs at: its trained ones, its `inference` layout over them, and `overrides` (a suite's
 * or `--method-option`'s layout keys) over both. What eval, generate, ppl, export and `edgeinf layout` use.
 */
export function runConfig(meta: CheckpointMeta, dir: string, overrides: Partial<EdgeInfiniteConfig> = {}): EdgeInfiniteConfig {
  return layoutConfig(makeEdgeInfiniteConfig(meta.edgeinfinite), { ...checkpointLayout(meta, dir), ...overrides });
}

/**
 * Sets (or with null removes) the `inference` layout of the checkpoint at `path` (a step folder or a training output
 * folder: its latest step). Checked as a whole config first; checkpoint.json is replaced atomically. Returns the
 * step folder written.
 */
export function writeCheckpointLayout(path: string, layout: Layout | null): { dir: string; meta: CheckpointMeta } {
  const dir = resolveCheckpointDir(path);
  const meta = readCheckpointMeta(dir);
  const { inference: _old, ...rest } = meta;
  const next: CheckpointMeta = layout === null || Object.keys(layoutOverrides(layout)).length === 0 ? rest : { ...rest, inference: layout };
  const cfg = runConfig(next, dir);
  try {
    validateEdgeInfiniteConfig(cfg);
  } catch (e) {
    if (e instanceof EdgeInfError) throw new EdgeInfError(`layout for ${dir}: ${e.message}`);
    throw e;
  }
  writeFileAtomic(join(dir, "checkpoint.json"), JSON.stringify(next, null, 2));
  return { dir, meta: next };
}

/** Loads a trained module for `backbone` (weights + EdgeInfinite config). */
export function loadCheckpoint(path: string, backbone: LoadedBackbone): { module: MemoryGatingModule; meta: CheckpointMeta; dir: string } {
  const dir = resolveCheckpointDir(path);
  const meta = readCheckpointMeta(dir);
  checkBackbone(meta, backbone, dir);
  const cfg = makeEdgeInfiniteConfig(meta.edgeinfinite);
  validateEdgeInfiniteConfig(cfg, backbone.config);
  const module = new MemoryGatingModule(backbone.config, cfg);
  try {
    loadModuleTensors(module, dir);
  } catch (e) {
    module.dispose();
    throw e;
  }
  return { module, meta, dir };
}

export function readOptimizerState(dir: string): Map<string, { shape: number[]; data: Float32Array }> | null {
  const p = join(resolveCheckpointDir(dir), "optimizer.safetensors");
  return existsSync(p) ? readSafetensors(p) : null;
}

export const checkpointName = (dir: string): string => basename(dirname(dir));
