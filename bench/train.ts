// npm run bench:train [-- --model PATH --seq 1024,2048 --batch 1,4,16 --workers 1,2 --backends wasm,cpu
//                        --segment 128 --window 252 --sink 4 --tbptt 2 --steps 1
//                        --torch-device cpu|cuda --torch-timeout-s 300 --baseline TOK_S --budget-s S --json FILE
//                        --profile --per-forward N --torch-threads 1,2 --edgeinfinite KEY=VALUE …]
// Module training tokens/s: one optimiser step = `batch` sequences + AdamW, for each sequence length, batch and
// worker count on each backend.
// 1 worker is train()'s in-process step with training.batchSize = batch (src/training/step.ts): the `batch`
// sequences go through ONE batched forward/backward per TBPTT block (the next-token objective's batchGradients,
// sequenceGradientsBatch; gradients ÷ batch). More workers run parallelGradients on a WorkerPool (src/parallel),
// each worker with its own backend, as train() does with training.workers > 1: there each worker takes the step's
// sequences one per forward (workers and a batch dimension do not combine yet; the "per forward" column says which).
// The pure-JS cpu backend is slow: it gets one short row (first sequence length, batch 1, 1 worker).
// PyTorch eager (bench/torch_llama.py, the same step with the same batch dimension, ids and module init) runs for
// every sequence length and batch in the same run where a Python with torch is found (EDGEINF_TORCH_PYTHON, default
// /usr/bin/python3): on the CPU, or on CUDA with --torch-device cuda (the default when webgpu is among the backends).
// On the CPU it runs at each --torch-threads count (default 1,2) and the fastest is the comparison: on the 2-core
// machine its intra-op threads oversubscribe the cores next to OpenBLAS' own pthreads at 2, so 1 is usually faster.
// Every read is asynchronous, so it runs on webgpu. A row that fails (out of memory, a device limit) records its
// error line and the next row runs; --budget-s skips rows whose estimate (from the row before) would pass it.
// --per-forward N: at most N sequences in one forward/backward (the rest as train()'s gradAccumulation: the step's
// micro-batches one after another in one process, or spread over the pool's workers); wasm's 4 GiB heap holds about
// 8 edge-lm sequences of a 2-segment TBPTT block of 128-token segments.
// --edgeinfinite KEY=VALUE (repeatable): module settings beyond the default module, keys and values as a recipe's
// `edgeinfinite:` section writes them (e.g. featureMap=hedgehog readMode=shared gateKind=learned exactTokens=152, the
// shipped recipes' read). PyTorch's step (bench/torch_llama.py) is the default module's only: with any of these its
// column is left out, and the rows compare with each other (and with --baseline) alone.
// --profile: one more step of each 1-worker row under tf.profile, its kernels summed by name and by name + input
// shapes (on webgpu the per-kernel times need Dawn's timestamp queries: EDGEINF_DAWN_FLAGS=enable-dawn-features=allow_unsafe_apis).
import { writeFileSync } from "node:fs";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { loadBackbone } from "../src/loaders/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import { equalLengthBatches } from "../src/backbone/nll.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { DEFAULT_EDGEINFINITE, makeEdgeInfiniteConfig, validateEdgeInfiniteConfig, type EdgeInfiniteConfig } from "../src/memory/config.js";
import { methodOptionFlags } from "../src/cli/commands/generate.js";
import { AdamW } from "../src/training/adamw.js";
import { objectiveByName } from "../src/training/objectives/index.js";
import { batchesGradientsInto } from "../src/training/step.js";
import { divideGradients } from "../src/training/gradient-sums.js";
import type { TrainingSequence } from "../src/training/data.js";
import { assertFiniteAsync } from "../src/util/finite.js";
import { defaultWorkerCount, checkWorkerCount, WorkerPool } from "../src/parallel/pool.js";
import { parallelGradients, type StepGradients } from "../src/parallel/gradients.js";
import { fail } from "../src/util/errors.js";
import { wasmAbortError } from "../src/backend/wasm-abort.js";
import { arg, backendsToRun, defaultModel, intList, machineLine, oneLineErrors, ratio, table, torchRun } from "./common.js";

const log = (l: string) => process.stderr.write(l + "\n");
const cores = defaultWorkerCount();
const settings = oneLineErrors(() => {
  const workers = intList("workers", cores > 1 ? `1,${cores}` : "1");
  for (const w of workers) checkWorkerCount(w, "--workers");
  const positive = (name: string, fallback: string) => {
    const v = Number(arg(name, fallback));
    if (!(v > 0)) fail(`--${name} ${arg(name, fallback)}: must be a positive number`, `e.g. --${name} ${fallback}`);
    return v;
  };
  return {
    seqs: intList("seq", "1024,2048"),
    batches: intList("batch", "1,4,16"),
    workers,
    steps: intList("steps", "1")[0]!,
    budgetS: arg("budget-s", "") === "" ? Infinity : positive("budget-s", "420"),
    torchTimeoutS: positive("torch-timeout-s", "300"),
    baseline: arg("baseline", "") === "" ? null : positive("baseline", "642"),
    profile: process.argv.includes("--profile"),
    perForward: arg("per-forward", "") === "" ? Infinity : intList("per-forward", "4")[0]!,
    torchThreads: intList("torch-threads", "1,2"),
  };
});
const started = performance.now();
const elapsedS = () => (performance.now() - started) / 1000;
const model = arg("model", defaultModel());
const segment = Number(arg("segment", "128"));
const window = Number(arg("window", "252"));
const sink = Number(arg("sink", "4"));
const tbptt = Number(arg("tbptt", "2"));
const jsonPath = arg("json", "");
const backends = await backendsToRun();
const torchDevice = arg("torch-device", backends.includes("webgpu") ? "cuda" : "cpu");
const backbone = await loadBackbone(model);
const c = backbone.config;
/** --edgeinfinite KEY=VALUE flags: settings of the module beyond the default one. */
const moduleSettings = oneLineErrors((): Partial<EdgeInfiniteConfig> => {
  const flags = process.argv.flatMap((a, i) => (a === "--edgeinfinite" && process.argv[i + 1] !== undefined ? [process.argv[i + 1]!] : []));
  const keys = [...Object.keys(DEFAULT_EDGEINFINITE), "routingThreshold"];
  for (const flag of flags) {
    const key = flag.slice(0, Math.max(0, flag.indexOf("=")));
    if (key === "") fail(`--edgeinfinite ${flag} is not KEY=VALUE`, "e.g. --edgeinfinite featureMap=hedgehog");
    if (!keys.includes(key)) fail(`--edgeinfinite ${flag}: ${key} is not an EdgeInfinite setting`, `use one of ${keys.join(", ")} (recipes/README.md)`);
  }
  return methodOptionFlags(flags) as Partial<EdgeInfiniteConfig>;
});
const cfg = makeEdgeInfiniteConfig({ sinkTokens: sink, windowTokens: window, segmentLength: segment, ...moduleSettings });
oneLineErrors(() => validateEdgeInfiniteConfig(cfg, c));
const objective = objectiveByName("next-token");

/** Sequence b of a step: the same ids bench/torch_llama.py trains on. */
const sequencesOf = (seq: number, batch: number): TrainingSequence[] =>
  Array.from({ length: batch }, (_, b) => ({ source: "bench", ids: Array.from({ length: seq + 1 }, (_, i) => (i * 11 + 5 + 97 * b) % c.vocabSize) }));

interface Row {
  backend: string;
  workers: number;
  /** Sequences in one forward/backward: the batch on 1 worker, 1 with a pool. */
  perForward: number;
  seq: number;
  batch: number;
  stepS: number | null;
  tokS: number | null;
  /**
   * Loss of the untimed warm-up step (before any update) when it had the same batch: the same ids and init give the
   * same loss on every backend and in PyTorch. null when the warm-up was smaller (a pool: one sequence per worker).
   */
  firstLoss: number | null;
  loss: number | null;
  error?: string;
  /** --profile: the profiled step's wall time, kernel count and time, and its costliest kernels. */
  profile?: StepProfile;
}

interface KernelTotal {
  key: string;
  count: number;
  ms: number;
}

interface StepProfile {
  wallMs: number;
  kernels: number;
  kernelMs: number;
  byName: KernelTotal[];
  byShape: KernelTotal[];
}

/** Kernel times of one tf.profile summed per key, costliest first (`top` of them). */
function kernelTotals(kernels: readonly { name: string; kernelTimeMs: number; inputShapes: number[][] }[], key: (k: { name: string; inputShapes: number[][] }) => string, top: number): KernelTotal[] {
  const totals = new Map<string, KernelTotal>();
  for (const k of kernels) {
    const name = key(k);
    const t = totals.get(name) ?? { key: name, count: 0, ms: 0 };
    t.count++;
    t.ms += k.kernelTimeMs;
    totals.set(name, t);
  }
  return [...totals.values()].sort((a, b) => b.ms - a.ms).slice(0, top);
}

const lossCell = (x: number | null | undefined) => (x === null || x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(4));

/** One line of an error (Dawn/tfjs messages can be long). */
const oneLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split("\n")[0]!.slice(0, 240);

const torch = new Map<string, { ok: Record<string, number | string> } | { error: string }>();
const torchSameStep = Object.keys(moduleSettings).length === 0;
if (!torchSameStep) log(`torch: left out: its step is the default module's, not this one (--edgeinfinite ${JSON.stringify(moduleSettings)})`);
for (const seq of torchSameStep ? settings.seqs : []) {
  for (const batch of settings.batches) {
    const common = ["--seq", String(seq), "--segment", String(segment), "--sink", String(sink), "--window", String(window), "--tbptt", String(tbptt)];
    // On the CPU PyTorch runs at each --torch-threads count and the fastest counts: its intra-op threads and
    // OpenBLAS' own pthreads oversubscribe the 2-core machine at 2 (512³ matmul 67 GFLOP/s against 150 at 1).
    const counts = torchDevice === "cpu" ? settings.torchThreads : [settings.torchThreads[0]!];
    let best: { ok: Record<string, number | string> } | { error: string } | null = null;
    for (const threads of counts) {
      const r = torchRun([model, "--task", "train", ...common, "--steps", String(settings.steps), "--batch", String(batch), "--device", torchDevice, ...(torchDevice === "cpu" ? ["--threads", String(threads)] : [])], settings.torchTimeoutS);
      if (r === null) break;
      log("ok" in r ? `torch ${torchDevice}${torchDevice === "cpu" ? ` ${threads} thread(s)` : ""} seq ${seq} batch ${batch}: ${Number(r.ok.step_s).toFixed(2)} s/step, first loss ${Number(r.ok.first_loss).toFixed(4)}` : `torch ${torchDevice} seq ${seq} batch ${batch}: ${r.error}`);
      if (best === null || ("error" in best && "ok" in r) || ("ok" in r && "ok" in best && Number(r.ok.train_tok_s) > Number(best.ok.train_tok_s))) best = r;
    }
    if (best !== null) torch.set(`${seq}/${batch}`, best);
  }
}

const rows: Row[] = [];
for (const b of backends) {
  await initBackend(b, { log: () => {} });
  const m = LlamaModel.fromHost(c, backbone.weights);
  // The cpu backend is pure JS (minutes per step at these sizes): one short row.
  const plan = b === "cpu" ? [{ workers: 1, seq: settings.seqs[0]!, batch: 1 }] : settings.workers.flatMap((workers) => settings.seqs.flatMap((seq) => settings.batches.map((batch) => ({ workers, seq, batch }))));
  const pools = new Map<number, WorkerPool>();
  try {
    for (const { workers, seq, batch } of plan) {
      // N workers: the batch cut into N micro-batches (as train() with training.batchSize = batch / N), one per forward each.
      const perForward = Math.min(Math.ceil(batch / workers), settings.perForward);
      const row: Row = { backend: b, workers, perForward, seq, batch, stepS: null, tokS: null, firstLoss: null, loss: null };
      rows.push(row);
      // Budget: a warm-up and the timed steps at the seconds per token of this backend's last timed row.
      const before = rows.filter((r) => r.backend === b && r.workers === workers && r.stepS !== null).at(-1);
      if (before && Number.isFinite(settings.budgetS)) {
        const estimate = (before.stepS! / (before.seq * before.batch)) * seq * batch * (1 + settings.steps);
        if (elapsedS() + estimate > settings.budgetS) {
          row.error = `skipped: estimated ${estimate.toFixed(0)} s would pass --budget-s ${settings.budgetS} (${elapsedS().toFixed(0)} s used)`;
          log(`${b} ×${workers} seq ${seq} batch ${batch}: ${row.error}`);
          continue;
        }
      }
      let pool = pools.get(workers);
      // A full wasm heap kills this process's wasm module (src/backend/wasm-abort.ts); pool workers have their own.
      if (workers === 1 && wasmAbortError() !== null) {
        row.error = `skipped: this process's wasm module died at an earlier row (${oneLine(wasmAbortError())})`;
        log(`${b} ×${workers} seq ${seq} batch ${batch}: ${row.error}`);
        continue;
      }
      const module = new MemoryGatingModule(c, cfg);
      const opt = new AdamW({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
      /** train()'s step on one process (src/training/step.ts): one objective call per micro-batch of perForward sequences. */
      const batchedGradients = async (seqs: TrainingSequence[]): Promise<StepGradients> => {
        const grads = new Map<string, tf.Tensor>();
        const { lossSum, tokens } = await batchesGradientsInto(grads, objective, { model: m, module, tbpttSegments: tbptt, options: {} }, equalLengthBatches(seqs, perForward));
        divideGradients(grads, seqs.length);
        return { loss: lossSum / seqs.length, tokens, grads };
      };
      const step = async (seqs: TrainingSequence[]): Promise<number> => {
        const r = pool !== undefined ? await parallelGradients(pool, module, equalLengthBatches(seqs, perForward), { tbpttSegments: tbptt }) : await batchedGradients(seqs);
        opt.apply(module.trainableVariables(), r.grads, 1e-3);
        tf.dispose([...r.grads.values()]);
        // The step is done when the updated variables are (asynchronous backends queue the work): wait for one.
        await [...module.trainableVariables().values()][0]!.data();
        await assertFiniteAsync(r.loss, `training loss on ${b}`);
        return r.loss;
      };
      try {
        if (workers > 1 && pool === undefined) {
          pool = new WorkerPool({ workers, backend: b, backbone: model });
          pools.set(workers, pool);
          await pool.ready();
        }
        // Warm-up, untimed: in one process the same batch (every kernel shape and buffer size of the timed step);
        // with a pool one sequence per worker (every worker compiles its kernels).
        const warm = workers === 1 ? Math.min(batch, perForward) : Math.min(batch, workers);
        const warmLoss = await step(sequencesOf(seq, warm));
        if (warm === batch) row.firstLoss = warmLoss;
        const t0 = performance.now();
        let loss = NaN;
        for (let i = 0; i < settings.steps; i++) loss = await step(sequencesOf(seq, batch));
        row.stepS = (performance.now() - t0) / 1000 / settings.steps;
        row.tokS = (seq * batch) / row.stepS;
        row.loss = loss;
        log(`${b} ×${workers} seq ${seq} batch ${batch}: ${row.stepS.toFixed(2)} s/step, ${row.tokS.toFixed(0)} tok/s, first loss ${lossCell(row.firstLoss)}, loss ${loss.toFixed(4)}`);
        if (settings.profile && pool === undefined) {
          const t1 = performance.now();
          const info = await tf.profile(() => step(sequencesOf(seq, batch)));
          // tf.profile has awaited every kernel's time; an error object (no timer) counts as 0.
          const kernels = info.kernels.map((k) => ({ name: k.name, kernelTimeMs: typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0, inputShapes: k.inputShapes }));
          const byName = kernelTotals(kernels, (k) => k.name, 15);
          const byShape = kernelTotals(kernels, (k) => `${k.name} ${JSON.stringify(k.inputShapes)}`, 15);
          const kernelMs = kernels.reduce((sum, k) => sum + k.kernelTimeMs, 0);
          row.profile = { wallMs: performance.now() - t1, kernels: kernels.length, kernelMs, byName, byShape };
          log(`  profiled step: ${(row.profile.wallMs / 1000).toFixed(2)} s wall, ${kernels.length} kernels, ${(kernelMs / 1000).toFixed(2)} s in kernels`);
          for (const t of [...byName, ...byShape]) log(`    ${t.ms.toFixed(1).padStart(9)} ms ${String(t.count).padStart(6)}×  ${t.key}`);
        }
      } catch (e) {
        row.error = oneLine(e);
        log(`${b} ×${workers} seq ${seq} batch ${batch}: FAILED: ${row.error}`);
      } finally {
        opt.dispose();
        module.dispose();
      }
      if (jsonPath) writeJson();
    }
  } finally {
    for (const p of pools.values()) await p.close();
    m.dispose();
  }
}

function torchLabel(t: Record<string, number | string>): string {
  return String(t.device).startsWith("cuda") ? `torch ${t.torch} ${t.device} (${t.device_name})` : `torch ${t.torch} cpu (${t.threads} threads)`;
}

function writeJson(): void {
  const out = {
    settings: { model, backbone: backbone.source.id, segment, window, sink, tbptt, edgeinfinite: cfg, ...settings, budgetS: Number.isFinite(settings.budgetS) ? settings.budgetS : null, torchDevice },
    machine: machineLine(),
    rows,
    torch: Object.fromEntries(torch),
    elapsedS: elapsedS(),
  };
  writeFileSync(jsonPath, JSON.stringify(out, null, 2) + "\n");
}

const torchOf = (seq: number, batch: number) => {
  const t = torch.get(`${seq}/${batch}`);
  return t && "ok" in t ? t.ok : undefined;
};
const oneWorker = (r: Row) => rows.find((x) => x.backend === r.backend && x.workers === 1 && x.seq === r.seq && x.batch === r.batch)?.tokS ?? undefined;
const headers = ["backend", "workers", "per forward", "seq", "batch", "s/step", "train tok/s", "first loss", "vs 1 worker", "vs torch"];
if (settings.baseline !== null) headers.push(`vs ${settings.baseline}`);
const table1: (string | number)[][] = rows.map((r) => {
  const cells: (string | number)[] = [r.backend, r.workers, r.perForward, r.seq, r.batch];
  if (r.tokS === null || r.stepS === null) {
    cells.push(r.error ?? "failed", "-", lossCell(r.firstLoss), "-", "-");
    if (settings.baseline !== null) cells.push("-");
    return cells;
  }
  cells.push(r.stepS, r.tokS, lossCell(r.firstLoss), ratio(r.tokS, oneWorker(r)), ratio(r.tokS, Number(torchOf(r.seq, r.batch)?.train_tok_s)));
  if (settings.baseline !== null) cells.push(ratio(r.tokS, settings.baseline));
  return cells;
});
for (const [key, t] of torch) {
  const [seq, batch] = key.split("/").map(Number);
  if ("error" in t) {
    table1.push([`torch ${torchDevice}`, "-", batch!, seq!, batch!, `FAILED: ${t.error}`, "-", "-", "-", "-", ...(settings.baseline !== null ? ["-"] : [])]);
    continue;
  }
  const tok = Number(t.ok.train_tok_s);
  table1.push([torchLabel(t.ok), "-", batch!, seq!, batch!, Number(t.ok.step_s), tok, lossCell(Number(t.ok.first_loss)), "-", "1.00x", ...(settings.baseline !== null ? [ratio(tok, settings.baseline)] : [])]);
}
if (jsonPath) writeJson();
console.log(
  `\nbackbone ${backbone.source.id}; segment ${segment}, sink ${sink}, window ${window}, TBPTT k=${tbptt}${torchSameStep ? "" : `; module ${JSON.stringify(moduleSettings)} (no PyTorch column: its step is the default module's)`}; ${settings.steps} timed step(s) after a warm-up step; ` +
    `batch = sequences per optimiser step; per forward = sequences in one forward/backward (1 worker: the whole batch, train()'s training.batchSize; a worker pool: the batch cut into one micro-batch of ⌈batch / workers⌉ per worker); ${machineLine()}\n`,
);
console.log(table(headers, table1));

