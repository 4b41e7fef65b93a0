/**
 * runSuite: every task × length × sample × method of a suite — prompt, greedy generation, score, measurements —
 * one fsynced JSONL line per finished sample in RUN_DIR/samples.jsonl, so a restart with the same run dir skips
 * what is done. At the end (or when interrupted) the result tables are rewritten from all finished rows.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, rmdirSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "../tf.js";
import { backendName, initBackend, type BackendName } from "../backend/select.js";
import { LlamaModel } from "../backbone/model.js";
import { loadBackbone, type LoadedBackbone } from "../loaders/index.js";
import { resolveCheckpointDir } from "../training/checkpoint.js";
import { writeFileAtomic } from "../util/atomic.js";
import { fail } from "../util/errors.js";
import { acquireDirLock } from "../util/lock.js";
import { noChatTemplateDatasets } from "./longbench-config.js";
import { scoreSample } from "./score-sample.js";
import { measure, warmUp, type Measurement } from "./measure.js";
import { checkBudget, createSession, kvBytesFullFor, prepareMethod, type PreparedMethod } from "./methods.js";
import { progressReporter, type ProgressMode } from "./progress.js";
import { samplesForTask, suiteSampleSources, type EvalSample } from "./samples.js";
import { cotAnswerSample } from "./sources/longbench-v2.js";
import { appendSample, readSamplesLog, rowKey, type AnswerPass, type SampleRow } from "./samples-log.js";
import { configHash, knownMethods, taskOfSample, type MethodSpec, type Suite, type TaskSpec } from "./suite.js";
import { sortRows, writeTables, type AggregateRow } from "./tables.js";
import { checkWorkerCount, defaultWorkerCount, runInOrder, WorkerPool } from "../parallel/pool.js";

/** Prompt tokens of the untimed warm-up prefill per method. */
const WARMUP_TOKENS = 16;

export interface ProgressEvent {
  /** Samples finished, counting those from an earlier run of this run dir. */
  done: number;
  total: number;
  row: SampleRow;
}

export interface RunSuiteOptions {
  runDir: string;
  /** Only these method labels (or names); default every method of the suite. */
  methods?: readonly string[];
  /** At most this many samples per task × length. */
  limit?: number;
  onProgress?: (event: ProgressEvent) => void;
  /** Stops between samples when aborted; finished samples are kept and tables written. */
  signal?: AbortSignal;
  /** Default "auto": a bar on a terminal, plain lines otherwise. */
  progress?: ProgressMode;
  /** Backend to start when none runs yet (default: EDGEINF_BACKEND, then auto). */
  backend?: BackendName | "auto";
  /** An already loaded backbone (and its model) to reuse; it must be the suite's. */
  backbone?: LoadedBackbone;
  model?: LlamaModel;
  /** Warnings (skipped JSONL lines, ignored rows); default stderr. */
  warn?: (message: string) => void;
  /**
   * Worker threads that run samples (src/parallel/pool.ts), each with its own backend and backbone; the rows are
   * the same as with 1 and samples.jsonl is written here, in the 1-worker order. "auto": one per core on the
   * single-threaded cpu and wasm backends, 1 elsewhere. Default 1 (in this process, reusing `model`).
   */
  workers?: number | "auto";
}

export interface RunResult {
  runDir: string;
  /** Every finished row of this suite (earlier runs included), in table order. */
  samples: SampleRow[];
  aggregates: AggregateRow[];
  /** Rows run by this call. */
  newSamples: number;
  /** Rows skipped because an earlier run finished them. */
  resumedSamples: number;
  /** False when interrupted (signal) before every sample finished. */
  complete: boolean;
  files: string[];
}

/** Settings of the suite that change every row's result (part of each task's hash). */
function globalSettings(suite: Suite, backbone: LoadedBackbone): unknown {
  return { backbone: backbone.source.sha256, seed: suite.seed, corpus: suite.corpus ?? null, maxLength: suite.maxLength ?? null, generation: suite.generation };
}

function taskHashOf(suite: Suite, task: TaskSpec, backbone: LoadedBackbone): string {
  return configHash({ task, global: globalSettings(suite, backbone) });
}

/** The method's settings, and for a trained EdgeInfinite the step folder it loads (retraining changes results). */
function methodHashOf(method: MethodSpec): string {
  const { label: _label, ...settings } = method;
  const checkpointStep = method.checkpoint !== undefined && existsSync(method.checkpoint) ? resolveCheckpointDir(method.checkpoint) : null;
  return configHash({ settings, checkpointStep });
}

/**
 * The suite's methods named in `only` (labels or names), in suite order; all of them when `only` is absent or empty.
 * Fails with one line naming an entry that is no method at all, or a method the suite does not have, and listing the
 * suite's methods. `source` names where the list came from in the message (the CLI passes "--methods"); the CLI
 * calls this before loading the model, so a typo fails at once.
 */
export function selectMethods(suite: Suite, only: readonly string[] | undefined, source = "the methods option"): MethodSpec[] {
  if (only === undefined || only.length === 0) return suite.methods;
  const labels = suite.methods.map((m) => m.label).join(", ");
  for (const want of only) {
    if (suite.methods.some((m) => m.label === want || m.name === want)) continue;
    if (!knownMethods().includes(want)) fail(`unknown method "${want}" in ${source}`, `the suite's methods: ${labels}`);
    fail(`method "${want}" is not in suite ${suite.file} (asked for in ${source})`, `the suite's methods: ${labels} (add it to the suite to run it)`);
  }
  return suite.methods.filter((m) => only.includes(m.label) || only.includes(m.name));
}

/** Fails with one line unless `limit` (samples per task × length) is a positive integer; `name` names the setting. */
export function checkLimit(limit: number, name = "limit"): void {
  if (!Number.isInteger(limit) || limit < 1) fail(`${name} ${String(limit)} must be a positive integer`, "e.g. --limit 5");
}

/** Version of this package (package.json above this file, in src/ or dist/src/). */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, "package.json");
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "edgeinfinite") return pkg.version ?? "unknown";
    }
    dir = dirname(dir);
  }
  return "unknown";
}

interface RunJson {
  suite: Suite;
  seed: number;
  backbone: LoadedBackbone["source"];
  backend: string;
  versions: Record<string, string>;
  machine: { platform: string; arch: string; cpus: number; cpuModel: string };
  methods: { label: string; name: string; checkpointDir: string | null; edgeinfinite: unknown }[];
  invocations: { startedAt: string; finishedAt: string | null; newSamples: number; complete: boolean; methods: string[]; limit: number | null; workers?: number }[];
  /** The backbone's chat template applied to LongBench prompts (not on noChatTemplateDatasets), or null. */
  chatTemplate: { name: string; sha256: string; skippedDatasets: string[] } | null;
}

function readRunJson(path: string): RunJson | null {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, "utf8")) as RunJson;
  } catch (e) {
    return fail(`${path} is not valid JSON: ${(e as Error).message}`, "the run dir is damaged; use a new --run-dir");
  }
}

/**
 * Refuses rows of this suite's tasks/methods made with other settings (resuming would mix them), and says how many
 * rows belong to tasks or methods no longer in the suite (kept in the file, left out of the tables).
 */
function reconcile(rows: SampleRow[], suite: Suite, taskHash: Map<string, string>, methodHash: Map<string, string>, logPath: string, warn: (m: string) => void): SampleRow[] {
  const kept: SampleRow[] = [];
  let foreign = 0;
  for (const row of rows) {
    const th = taskHash.get(row.task);
    const mh = methodHash.get(row.method);
    if (th === undefined || mh === undefined) {
      foreign++;
      continue;
    }
    if (row.taskHash !== th) fail(`${logPath}: rows of task "${row.task}" were made with other settings than ${suite.file} has now`, "use a new --run-dir, or restore the task's settings");
    if (row.methodHash !== mh) fail(`${logPath}: rows of method "${row.method}" were made with other settings than ${suite.file} has now`, "use a new --run-dir, or give the changed method a new label");
    kept.push(row);
  }
  if (foreign > 0) warn(`${logPath}: ${foreign} rows belong to tasks or methods not in ${suite.file}; they stay in the file but not in the tables`);
  return kept;
}

/** Worker threads for `workers` on `backend`: "auto" is one per core where tfjs computes on one thread. */
export function resolveWorkers(workers: number | "auto" | undefined, backend: string): number {
  if (workers === undefined) return 1;
  if (workers === "auto") return backend === "wasm" || backend === "cpu" ? defaultWorkerCount() : 1;
  checkWorkerCount(workers);
  return workers;
}

/** Runs (or resumes) a suite into opts.runDir. */
export async function runSuite(suite: Suite, opts: RunSuiteOptions): Promise<RunResult> {
  const warn = opts.warn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
  await initBackend(opts.backend);
  // The running backend (a caller may have switched it with tf.setBackend after initBackend).
  const backend = { name: backendName() };
  const runDir = resolve(opts.runDir);
  if (opts.limit !== undefined) checkLimit(opts.limit);
  const workersAsked = resolveWorkers(opts.workers, backend.name);

  // One process per run dir, taken before anything loads: a second eval would run every sample again and
  // interleave its rows with ours. A run dir this call made is removed again if it fails before writing into it.
  const madeRunDir = !existsSync(runDir);
  const lock = acquireDirLock(runDir, "eval");
  try {
    return await runSuiteLocked(suite, opts, runDir, backend, warn, workersAsked);
  } finally {
    lock.release();
    if (madeRunDir && readdirSync(runDir).length === 0) rmdirSync(runDir);
  }
}

async function runSuiteLocked(
  suite: Suite,
  opts: RunSuiteOptions,
  runDir: string,
  backend: { name: string },
  warn: (m: string) => void,
  workersAsked: number,
): Promise<RunResult> {
  const logPath = join(runDir, "samples.jsonl");
  const runJsonPath = join(runDir, "run.json");
  const backbone = opts.backbone ?? (await loadBackbone(suite.backbone));
  let model: LlamaModel | null = null;
  let ownModel = false;
  const prepared: PreparedMethod[] = [];
  try {
    const methods = selectMethods(suite, opts.methods);
    for (const m of methods) prepared.push(prepareMethod(m, backbone));

    // Samples (prompts) of every task, and the checks that need them, before anything runs.
    const sources = suiteSampleSources(suite, backbone.tokenizer, { ...(opts.limit !== undefined ? { limit: opts.limit } : {}), warn });
    const chatTemplate = sources.chatTemplate;
    const samples: EvalSample[] = suite.tasks.flatMap((t) => samplesForTask(suite, t, sources));
    for (const m of methods) for (const s of samples) checkBudget(m, s.promptIds.length, backbone.config);

    const taskHash = new Map(suite.tasks.map((t) => [t.name, taskHashOf(suite, t, backbone)]));
    const methodHash = new Map(suite.methods.map((m) => [m.label, methodHashOf(m)]));
    const earlier = reconcile(readSamplesLog(logPath), suite, taskHash, methodHash, logPath, warn);
    const finished = new Map(earlier.map((r) => [rowKey(r), r]));
    const work = samples.flatMap((s) => prepared.map((p) => ({ sample: s, method: p })));
    const pending = work.filter((w) => !finished.has(rowKey({ ...w.sample, method: w.method.spec.label })));
    // More workers than samples would only load the backbone for nothing.
    const workers = Math.max(1, Math.min(workersAsked, pending.length));

    const previous = readRunJson(runJsonPath);
    const startedAt = new Date().toISOString();
    const invocation = { startedAt, finishedAt: null as string | null, newSamples: 0, complete: false, methods: methods.map((m) => m.label), limit: opts.limit ?? null, workers };
    const runJson: RunJson = {
      suite,
      seed: suite.seed,
      backbone: backbone.source,
      backend: backend.name,
      versions: { edgeinfinite: packageVersion(), node: process.versions.node, tfjs: tf.version_core, v8: process.versions.v8 },
      machine: { platform: process.platform, arch: process.arch, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "unknown" },
      methods: prepared.map((p) => ({ label: p.spec.label, name: p.spec.name, checkpointDir: p.checkpointDir, edgeinfinite: p.edgeinfinite })),
      invocations: [...(previous?.invocations ?? []), invocation],
      chatTemplate: chatTemplate && { name: chatTemplate.name, sha256: createHash("sha256").update(chatTemplate.source).digest("hex"), skippedDatasets: [...noChatTemplateDatasets] },
    };
    writeFileAtomic(runJsonPath, JSON.stringify(runJson, null, 2) + "\n");
    if (workers > 1) {
      warn(`${workers} workers share ${availableParallelism()} cores: TTFT and tokens/s of this run are measured under contention (scores, outputs and KV bytes are not affected); use --workers 1 for timing numbers`);
    }

    const longest = samples.reduce((n, x) => Math.max(n, x.promptIds.length + x.maxNewTokens), 0);
    const progress = progressReporter(opts.progress ?? "auto", work.length, work.length - pending.length);
    const rows = new Map(finished);
    let newSamples = 0;
    let complete = true;
    const record = (row: SampleRow): void => {
      appendSample(logPath, row);
      rows.set(rowKey(row), row);
      newSamples++;
      // run.json counts finished samples as they finish, so a kill or a second Ctrl-C leaves the true count.
      invocation.newSamples = newSamples;
      writeFileAtomic(runJsonPath, JSON.stringify(runJson, null, 2) + "\n");
      progress.tick(`${row.task}@${row.length} ${row.method} score=${row.score.toFixed(2)} ttft=${row.ttftMs.toFixed(0)}ms`);
      opts.onProgress?.({ done: work.length - pending.length + newSamples, total: work.length, row });
    };
    const hashes = (w: { sample: EvalSample; method: PreparedMethod }) => ({ taskHash: taskHash.get(w.sample.task)!, methodHash: methodHash.get(w.method.spec.label)! });
    try {
      if (workers > 1) {
        const run = await runPending(suite, pending, { workers, backend: backend.name, backbone: opts.backbone?.source.path ?? suite.backbone, methods, longest, hashes, record, signal: opts.signal });
        complete = run.complete;
      } else {
        ownModel = opts.model === undefined;
        model = opts.model ?? LlamaModel.fromHost(backbone.config, backbone.weights);
        // RoPE tables grow on first use of a position: grow them now, so no sample pays for it or counts it as a leak.
        growRope(model, longest);
        if (suite.warmup) {
          for (const p of prepared) {
            const first = pending.find((w) => w.method === p)?.sample;
            if (first !== undefined) await warmUpMethod(suite, first, p, { model, backbone });
          }
        }
        for (const w of pending) {
          // Sessions are asynchronous (they await every tensor read), but on cpu and wasm those reads resolve as
          // microtasks, so a whole sample still runs without one turn of the event loop (a setImmediate queued before a
          // sample runs only after it); webgpu's reads do wait. Yield a turn here, so a signal handler (edgeinf eval's
          // Ctrl-C → abort) runs between samples on every backend; test/cli-eval.test.ts's Ctrl-C test relies on it.
          if (opts.signal !== undefined) await new Promise<void>((done) => setImmediate(done));
          if (opts.signal?.aborted) {
            complete = false;
            break;
          }
          record(await runSample(suite, w.sample, w.method, { model, backbone, backend: backend.name, ...hashes(w) }));
        }
      }
    } finally {
      progress.stop();
    }

    const order = { tasks: suite.tasks.map((t) => t.name), methods: suite.methods.map((m) => m.label) };
    const allRows = [...rows.values()];
    const { aggregates, files } = writeTables(runDir, allRows, {
      suite: suite.name,
      order,
      ...(suite.windowSplitTokens !== undefined ? { windowSplitTokens: suite.windowSplitTokens } : {}),
    });
    invocation.finishedAt = new Date().toISOString();
    invocation.newSamples = newSamples;
    invocation.complete = complete;
    writeFileAtomic(runJsonPath, JSON.stringify(runJson, null, 2) + "\n");
    return { runDir, samples: sortRows(allRows, order), aggregates, newSamples, resumedSamples: work.length - pending.length, complete, files: [logPath, runJsonPath, ...files] };
  } finally {
    for (const p of prepared) p.dispose();
    if (ownModel) model?.dispose();
  }
}

interface PendingRun {
  workers: number;
  backend: string;
  /** What each worker loads (the suite's backbone, or the path of the one the caller passed). */
  backbone: string;
  methods: MethodSpec[];
  longest: number;
  hashes: (w: { sample: EvalSample; method: PreparedMethod }) => { taskHash: string; methodHash: string };
  /** Called in `pending` order, whatever order the workers finish in. */
  record: (row: SampleRow) => void;
  signal: AbortSignal | undefined;
}

/**
 * The pending samples on a pool of workers: each worker takes the next sample when free; rows are recorded in
 * pending order (runInOrder), so samples.jsonl reads as a 1-worker run's. On abort no new sample starts; those
 * running finish and are recorded, so what is written is a prefix of `pending` (resume skips exactly it).
 */
async function runPending(suite: Suite, pending: { sample: EvalSample; method: PreparedMethod }[], o: PendingRun): Promise<{ complete: boolean }> {
  const pool = new WorkerPool({ workers: o.workers, backend: o.backend, backbone: o.backbone });
  try {
    await pool.ready();
    await pool.broadcast(() => ({ task: { kind: "prepareEval", suite, methods: o.methods, longestTokens: o.longest } }));
    const done = await runInOrder(
      pool,
      pending.length,
      (i, worker) => {
        const w = pending[i]!;
        return pool.call<SampleRow>(worker, { kind: "evalSample", sample: w.sample, method: w.method.spec.label, backend: o.backend, warmUp: suite.warmup, ...o.hashes(w) });
      },
      (row) => o.record(row),
      () => o.signal?.aborted === true,
    );
    return { complete: done === pending.length };
  } finally {
    await pool.close();
  }
}

/**
 * Grows the model's RoPE tables to `tokens` positions (first use of a position would otherwise grow them): every
 * layer's, since Gemma 3's local layers have a table of their own.
 */
export function growRope(model: LlamaModel, tokens: number): void {
  // The block body returns nothing, so tidy disposes the rotated probes too (a returned tensor would outlive it).
  if (tokens > 0) {
    tf.tidy(() => {
      const probe = tf.zeros([1, 1, model.config.headDim]) as tf.Tensor3D;
      const tables = new Set([model.rope, ...Array.from({ length: model.config.numLayers }, (_, l) => model.ropeFor(l))]);
      for (const rope of tables) rope.apply(probe, Int32Array.of(tokens));
    });
  }
}

/** The untimed warm-up of a method: budgets resolve against the real prompt; only its first tokens are fed (too few to evict anything). */
export async function warmUpMethod(suite: Suite, first: EvalSample, method: PreparedMethod, ctx: Pick<RunContext, "model" | "backbone">): Promise<void> {
  const warmIds = first.promptIds.slice(0, WARMUP_TOKENS);
  await warmUp(() => createSession(method, { model: ctx.model, backbone: ctx.backbone, promptTokens: first.promptIds.length, ...(suite.maxScoreBytes ? { maxScoreBytes: suite.maxScoreBytes } : {}) }), warmIds);
}

export interface RunContext {
  model: LlamaModel;
  backbone: LoadedBackbone;
  backend: string;
  taskHash: string;
  methodHash: string;
}

/** Fresh sessions of `method` on the sample's prompt: greedy generation, measured (measure.ts). */
async function measureSample(suite: Suite, sample: EvalSample, method: PreparedMethod, ctx: RunContext): Promise<Measurement> {
  return measure(
    () =>
      createSession(method, {
        model: ctx.model,
        backbone: ctx.backbone,
        promptTokens: sample.promptIds.length,
        ...(suite.maxScoreBytes ? { maxScoreBytes: suite.maxScoreBytes } : {}),
        ...(sample.questionStart !== null ? { questionStart: sample.questionStart } : {}),
      }),
    sample.promptIds,
    { maxNewTokens: sample.maxNewTokens, temperature: suite.generation.temperature, stopIds: sample.stopIds, minNewTokens: sample.minNewTokens, seed: suite.seed, repeats: suite.repeats },
  );
}

/**
 * The second pass of a two-pass sample (LongBench v2 0shot_cot): its prompt from the first output, run in fresh
 * sessions of the same method; null for every other sample.
 */
async function runFollowUp(suite: Suite, sample: EvalSample, first: Measurement, method: PreparedMethod, ctx: RunContext): Promise<{ cotText: string; sample: EvalSample; m: Measurement } | null> {
  if (sample.followUp === undefined) return null;
  const cotText = ctx.backbone.tokenizer.decode(first.ids);
  const second = cotAnswerSample(suite, sample, cotText, ctx.backbone.tokenizer);
  // Positions the first pass did not reach grow here, not inside the measured run (leakedTensors).
  growRope(ctx.model, second.promptIds.length + second.maxNewTokens);
  return { cotText, sample: second, m: await measureSample(suite, second, method, ctx) };
}

/**
 * One sample under one method: generate, decode, score, measure. A two-pass sample (followUp) is done only after its
 * second pass: the row's prediction, outputIds and newTokens are the second output's (the scored answer), its prompt,
 * timing and KV fields the first pass's (the one that reads the document); cotPrediction and answerPass hold the rest.
 */
export async function runSample(suite: Suite, sample: EvalSample, method: PreparedMethod, ctx: RunContext): Promise<SampleRow> {
  const promptTokens = sample.promptIds.length;
  const first = await measureSample(suite, sample, method, ctx);
  const answer = await runFollowUp(suite, sample, first, method, ctx);
  const m = answer === null ? first : { ...first, ids: answer.m.ids, maxRssKb: answer.m.maxRssKb, rssBytes: Math.max(first.rssBytes, answer.m.rssBytes), leakedTensors: first.leakedTensors + answer.m.leakedTensors };
  const prediction = ctx.backbone.tokenizer.decode(m.ids);
  const task = taskOfSample(suite, sample);
  return {
    task: sample.task,
    dataset: sample.dataset,
    source: sample.source,
    length: sample.length,
    sampleId: sample.sampleId,
    depth: sample.depth,
    method: method.spec.label,
    methodName: method.spec.name,
    promptTokens,
    truncated: sample.truncated,
    outputIds: m.ids,
    prediction,
    answers: sample.answers,
    score: scoreSample(task, sample, prediction),
    ...(sample.groups !== null ? { groups: sample.groups } : {}),
    ...(answer !== null ? { cotPrediction: answer.cotText, cotOutputIds: first.ids, answerPass: answerPassOf(answer.sample, answer.m, ctx) } : {}),
    ttftMs: m.ttftMs,
    ttftMsRuns: m.ttftMsRuns,
    decodeTokensPerSecond: m.decodeTokensPerSecond,
    prefillTokensPerSecond: m.prefillTokensPerSecond,
    newTokens: m.ids.length,
    kvBytesAfterPrefill: m.kvBytesAfterPrefill,
    peakKvBytes: m.peakKvBytes,
    kvBytesFull: kvBytesFullFor(ctx.model.config, promptTokens),
    maxRssKb: m.maxRssKb,
    rssBytes: m.rssBytes,
    leakedTensors: m.leakedTensors,
    repeats: suite.repeats,
    backend: ctx.backend,
    taskHash: ctx.taskHash,
    methodHash: ctx.methodHash,
    finishedAt: new Date().toISOString(),
  };
}

/** The second pass's own prompt, timing and KV numbers (SampleRow.answerPass). */
function answerPassOf(sample: EvalSample, m: Measurement, ctx: RunContext): AnswerPass {
  return {
    promptTokens: sample.promptIds.length,
    truncated: sample.truncated,
    newTokens: m.ids.length,
    ttftMs: m.ttftMs,
    ttftMsRuns: m.ttftMsRuns,
    decodeTokensPerSecond: m.decodeTokensPerSecond,
    prefillTokensPerSecond: m.prefillTokensPerSecond,
    kvBytesAfterPrefill: m.kvBytesAfterPrefill,
    peakKvBytes: m.peakKvBytes,
    kvBytesFull: kvBytesFullFor(ctx.model.config, sample.promptIds.length),
    leakedTensors: m.leakedTensors,
  };
}
