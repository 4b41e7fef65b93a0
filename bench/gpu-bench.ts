// node dist/bench/gpu-bench.js --models DIR_OR_BIN,... [--backends webgpu,wasm] [--lengths 4096,16384,65536]
//   [--tasks limits,parity,ttft,train,matmul,no-cpu-ttft] [--budget-s 420] [--json FILE]
//   [--repeat 2] [--sink 64 --window 1024 --segment 256]   (the EdgeInfinite settings of the TTFT table)
// The GPU run of bench/gpu.sh: WebGPU (Dawn) against a CPU backend on the same weights in the same process.
// Every read is `await tensor.data()`: tfjs-backend-webgpu cannot read synchronously in Node (its readSync needs
// OffscreenCanvas). The project's own paths (generate, sequenceGradients, the sessions) read asynchronously too,
// and are what this bench runs.
import { readFileSync, existsSync } from "node:fs";
import { resolve, basename } from "node:path";
import * as tf from "../src/tf.js";
import { initBackend, type BackendName } from "../src/backend/select.js";
import { maxTensorBytes, storageBindingLimit } from "../src/backend/tensor-limits.js";
import { takeWebGpuErrors, webGpuErrorCount } from "../src/backend/webgpu-errors.js";
import { assertFiniteAsync } from "../src/util/finite.js";
import { groupedAttention } from "../src/backbone/attention.js";
import { loadBackbone, type LoadedBackbone } from "../src/loaders/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import { CachedSession } from "../src/cache/cached-session.js";
import { fullPolicy } from "../src/cache/full.js";
import type { InferenceSession } from "../src/backbone/session.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig, validateEdgeInfiniteConfig, type EdgeInfiniteConfig } from "../src/memory/config.js";
import { EdgeInfiniteSession } from "../src/memory/edgeinfinite.js";
import { AdamW } from "../src/training/adamw.js";
import { sequenceGradients } from "../src/training/tbptt.js";
import { generate } from "../src/backbone/generate.js";
import { arg, machineLine, table } from "./common.js";
import { writeFileAtomic } from "../src/util/atomic.js";

const models = arg("models", "").split(",").filter(Boolean);
const [gpu, cpu] = arg("backends", "webgpu,wasm").split(",") as [BackendName, BackendName];
const lengths = arg("lengths", "4096,16384,65536").split(",").map(Number);
const tasks = new Set(arg("tasks", "limits,parity,ttft,train,matmul").split(","));
const budgetS = Number(arg("budget-s", "420"));
const jsonOut = arg("json", "");
/** TTFT runs per measurement: 2 = cold then warm (the warm one is reported), 1 = cold only. */
const repeat = Number(arg("repeat", "2"));
/** EdgeInfinite settings of the TTFT table (defaults as bench/prefill.ts). */
const ttftSink = arg("sink", "64");
const ttftWindow = arg("window", "");
const ttftSegment = arg("segment", "");
const started = performance.now();
const elapsedS = () => (performance.now() - started) / 1000;
const results: Record<string, unknown> = { machine: machineLine(), gpu, cpu };
const log = (line: string) => process.stderr.write(`[${elapsedS().toFixed(0)}s] ${line}\n`);
const overBudget = (what: string) => {
  if (elapsedS() < budgetS) return false;
  log(`skipped ${what}: time budget of ${budgetS}s spent`);
  return true;
};

async function use(backend: BackendName): Promise<void> {
  await initBackend(backend, { log });
}

async function read(t: tf.Tensor): Promise<Float32Array> {
  const out = (await t.data()) as Float32Array;
  t.dispose();
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Deterministic filler ids (as bench/prefill.ts): BOS then a fixed walk over the vocabulary. */
const fillerIds = (c: LoadedBackbone["config"], n: number) => [c.bosTokenId, ...Array.from({ length: n - 1 }, (_, i) => 3 + ((i * 7919) % (c.vocabSize - 3)))];

// ---------------------------------------------------------------------------------------------------------------
// Device and the binding limit

async function adapterInfo(): Promise<Record<string, unknown>> {
  const g = globalThis as unknown as { navigator?: { gpu?: { requestAdapter(): Promise<{ info?: Record<string, unknown>; limits: Record<string, number> } | null> } } };
  const adapter = await g.navigator?.gpu?.requestAdapter();
  if (!adapter) return {};
  const info = adapter.info ?? {};
  return {
    vendor: info["vendor"],
    architecture: info["architecture"],
    device: info["device"],
    description: info["description"],
    maxStorageBufferBindingSize: adapter.limits["maxStorageBufferBindingSize"],
    maxBufferSize: adapter.limits["maxBufferSize"],
  };
}

/**
 * One attention whose unchunked scores exceed the binding limit: unchunked (maxScoreBytes past the limit) vs chunked
 * at maxTensorBytes(), each against the CPU backend's result on the same inputs.
 */
async function limitsDemo(): Promise<Record<string, unknown>> {
  const [H, Hkv, d] = [6, 2, 64];
  const limit = storageBindingLimit() ?? 2 ** 31;
  const T = Math.ceil(Math.sqrt((1.1 * limit) / (4 * H)) / 64) * 64; // unchunked scores ≈ 1.1 × the binding limit
  const scoreBytes = 4 * H * T * T;
  await use(cpu);
  const [qh, kh, vh] = await Promise.all([[1, H], [2, Hkv], [3, Hkv]].map(([seed, heads]) => read(tf.randomNormal([heads!, T, d], 0, 1, "float32", seed))));
  // The CPU reference only needs the last 64 queries: their outputs see every key.
  const refLast = await lastRows(qh!, kh!, vh!, H, Hkv, T, d, 64 * 4 * H * T);
  await use(gpu);
  const q = tf.tensor3d(qh!, [H, T, d]);
  const k = tf.tensor3d(kh!, [Hkv, T, d]);
  const v = tf.tensor3d(vh!, [Hkv, T, d]);
  const runs: Record<string, unknown>[] = [];
  for (const [name, bytes] of [["unchunked", 4 * scoreBytes], ["chunked", maxTensorBytes()]] as const) {
    takeWebGpuErrors();
    const t0 = performance.now();
    const out = groupedAttention(q, k, v, { maxScoreBytes: bytes });
    const last = tf.slice(out, [T - 64, 0], [64, H * d]);
    const values = await read(last);
    const ms = performance.now() - t0;
    const errors = webGpuErrorCount();
    let assertion = "assertFiniteAsync passed";
    try {
      await assertFiniteAsync(out, `${name} attention output`);
    } catch (e) {
      assertion = (e as Error).message;
    }
    out.dispose();
    const sumAbs = values.reduce((a, x) => a + Math.abs(x), 0);
    runs.push({ name, maxScoreBytes: bytes, ms: Math.round(ms), maxAbsDiffVsCpu: maxAbsDiff(values, refLast), sumAbs, webgpuErrors: errors, assertion });
    log(`limits ${name}: diff ${maxAbsDiff(values, refLast).toExponential(2)}, webgpu errors ${errors}; ${assertion}`);
  }
  tf.dispose([q, k, v]);
  return { T, heads: H, scoreBytes, bindingLimit: limit, maxTensorBytes: maxTensorBytes(), runs };
}

/** Last 64 output rows of causal attention on the current (CPU) backend. */
async function lastRows(qh: Float32Array, kh: Float32Array, vh: Float32Array, H: number, Hkv: number, T: number, d: number, maxScoreBytes: number): Promise<Float32Array> {
  const q = tf.tensor3d(qh, [H, T, d]);
  const qLast = tf.slice(q, [0, T - 64, 0], [H, 64, d]);
  const out = groupedAttention(qLast as tf.Tensor3D, tf.tensor3d(kh, [Hkv, T, d]), tf.tensor3d(vh, [Hkv, T, d]), { maxScoreBytes });
  q.dispose();
  return read(out);
}

// ---------------------------------------------------------------------------------------------------------------
// Parity: logits of webgpu vs the CPU backend (and vs transformers' reference.json for edge-lm)

interface Trace {
  ids: number[];
  logits: Float32Array[];
  ttftMs: number;
  decodeTokS: number;
}

/** Greedy generation through src's generate; with `forced`, feeds those ids instead (teacher forcing, to compare logits). */
async function generateTrace(session: InferenceSession, prompt: readonly number[], newTokens: number, forced?: readonly number[]): Promise<Trace> {
  const logits: Float32Array[] = [];
  try {
    const r = await generate(session, prompt, {
      maxNewTokens: newTokens,
      temperature: 0,
      ...(forced ? { forcedIds: forced } : {}),
      onLogits: (host) => logits.push(host.slice()),
    });
    return { ids: r.ids, logits, ttftMs: r.ttftMs, decodeTokS: r.decodeTokensPerSecond };
  } finally {
    session.dispose();
  }
}

interface RefPrompt {
  name: string;
  input_ids: number[];
  last_logits: number[];
  greedy32_ids: number[];
}

async function parity(modelPath: string): Promise<Record<string, unknown>[]> {
  const b = await loadBackbone(modelPath);
  const refFile = resolve(modelPath, "reference.json");
  const refs: RefPrompt[] = existsSync(refFile) ? (JSON.parse(readFileSync(refFile, "utf8")) as { prompts: RefPrompt[] }).prompts : [];
  const prompts = refs.length > 0
    ? refs.map((p) => ({ name: p.name, ids: p.input_ids, ref: p }))
    : [{ name: "once_upon_a_time", ids: b.tokenizer.encode("Once upon a time", { bos: true }), ref: undefined }];
  const newTokens = 32;
  const traces = new Map<BackendName, Trace[]>();
  for (const backend of [cpu, gpu]) {
    await use(backend);
    const model = LlamaModel.fromHost(b.config, b.weights);
    const out: Trace[] = [];
    for (const [i, p] of prompts.entries()) {
      const forced = backend === gpu ? traces.get(cpu)![i]!.ids : undefined;
      out.push(await generateTrace(new CachedSession(model, fullPolicy()), p.ids, newTokens, forced));
    }
    traces.set(backend, out);
    model.dispose();
    log(`parity ${basename(modelPath)} on ${backend} done`);
  }
  return prompts.map((p, i) => {
    const c = traces.get(cpu)![i]!;
    const g = traces.get(gpu)![i]!;
    const diff = Math.max(...g.logits.map((row, t) => maxAbsDiff(row, c.logits[t]!)));
    return {
      model: b.source.id,
      prompt: p.name,
      promptTokens: p.ids.length,
      steps: g.logits.length,
      maxAbsDiffGpuVsCpu: diff,
      maxAbsDiffGpuVsHf: p.ref ? maxAbsDiff(g.logits[0]!, p.ref.last_logits) : null,
      maxAbsDiffCpuVsHf: p.ref ? maxAbsDiff(c.logits[0]!, p.ref.last_logits) : null,
      greedyEqualCpu: g.ids.every((id, t) => id === c.ids[t]),
      greedyEqualHf: p.ref ? c.ids.every((id, t) => id === p.ref!.greedy32_ids[t]) : null,
      ok: diff <= 1e-3,
      gpuTtftMs: g.ttftMs,
      cpuTtftMs: c.ttftMs,
      gpuDecodeTokS: g.decodeTokS,
      cpuDecodeTokS: c.decodeTokS,
    };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// TTFT: full KV vs EdgeInfinite

async function ttft(make: () => InferenceSession, ids: number[]): Promise<{ ms: number; peakKvBytes: number }> {
  const s = make();
  try {
    const t0 = performance.now();
    const logits = await s.prefill(ids);
    let ms: number;
    try {
      await assertFiniteAsync(logits, `prefill logits (${ids.length} tokens, ${s.method})`);
      ms = performance.now() - t0;
    } finally {
      logits.dispose();
    }
    return { ms, peakKvBytes: s.peakKvBytes() };
  } finally {
    s.dispose();
  }
}

function edgeConfig(b: LoadedBackbone, over: Partial<EdgeInfiniteConfig>): EdgeInfiniteConfig {
  const cfg = makeEdgeInfiniteConfig(over);
  validateEdgeInfiniteConfig(cfg, b.config);
  return cfg;
}

async function ttftTable(modelPath: string, backend: BackendName, lens: number[]): Promise<Record<string, unknown>[]> {
  const b = await loadBackbone(modelPath);
  const c = b.config;
  await use(backend);
  const cfg = edgeConfig(b, {
    sinkTokens: Number(ttftSink),
    windowTokens: Number(ttftWindow || Math.min(1024, c.maxPositions / 2)),
    segmentLength: Number(ttftSegment || Math.min(256, c.maxPositions / 4)),
  });
  const model = LlamaModel.fromHost(c, b.weights);
  const module = new MemoryGatingModule(c, cfg);
  // groupedAttention's block limit defaults to maxTensorBytes() (the binding-limit-safe size on webgpu).
  const full = () => new CachedSession(model, fullPolicy());
  const edge = () => new EdgeInfiniteSession(model, module);
  // Warm-up: shader compilation / allocation for both paths.
  await ttft(full, fillerIds(c, 256));
  await ttft(edge, fillerIds(c, cfg.routingThreshold + 2 * cfg.segmentLength));
  const rows: Record<string, unknown>[] = [];
  let lastFull: { n: number; ms: number } | null = null;
  for (const n of lens) {
    if (overBudget(`TTFT ${n} on ${backend}`)) break;
    const ids = fillerIds(c, n);
    const e1 = await ttft(edge, ids);
    const e2 = repeat > 1 && elapsedS() < budgetS ? await ttft(edge, ids) : null;
    log(`ttft ${backend} ${n} edgeinfinite ${e1.ms.toFixed(0)} / ${e2?.ms.toFixed(0)} ms`);
    // Full attention grows ~quadratically: skip a length whose estimate from the last one would not fit the budget.
    const estimateS: number = lastFull ? (lastFull.ms / 1000) * (n / lastFull.n) ** 2 : 0;
    const fits: boolean = elapsedS() + estimateS < budgetS;
    if (!fits) log(`skipped full TTFT ${n}: estimated ${estimateS.toFixed(0)} s from ${lastFull!.n} tokens, over the budget`);
    const f1: { ms: number; peakKvBytes: number } | null = !fits || overBudget(`full TTFT ${n}`) ? null : await ttft(full, ids);
    if (f1) lastFull = { n, ms: f1.ms };
    const f2 = repeat > 1 && f1 && f1.ms < 60_000 && elapsedS() < budgetS ? await ttft(full, ids) : null;
    log(`ttft ${backend} ${n} full ${f1?.ms.toFixed(0)} / ${f2?.ms.toFixed(0)} ms`);
    const fullMs = f2?.ms ?? f1?.ms ?? null;
    const edgeMs = e2?.ms ?? e1.ms;
    rows.push({
      backend, tokens: n,
      fullFirstMs: f1?.ms ?? null, fullMs, fullPeakKvMiB: f1 ? f1.peakKvBytes / 2 ** 20 : null,
      edgeFirstMs: e1.ms, edgeMs, edgePeakKvMiB: e1.peakKvBytes / 2 ** 20,
      fullOverEdge: fullMs !== null ? fullMs / edgeMs : null,
      fullSkipped: fits ? null : `skipped (est. ${estimateS.toFixed(0)} s)`,
      edgeConfig: `sink ${cfg.sinkTokens}, window ${cfg.windowTokens}, segment ${cfg.segmentLength}; maxTensorBytes ${maxTensorBytes()}`,
    });
  }
  module.dispose();
  model.dispose();
  return rows;
}

// ---------------------------------------------------------------------------------------------------------------
// Training step: src/training/tbptt.ts sequenceGradients (asynchronous loss read) + AdamW.

async function trainStep(model: LlamaModel, module: MemoryGatingModule, opt: AdamW, ids: number[], k: number): Promise<number> {
  const vars = module.trainableVariables();
  const { loss, grads } = await sequenceGradients(model, module, ids, k);
  opt.apply(vars, grads, 1e-3);
  tf.dispose([...grads.values()]);
  // The step is done when the updated variables are: wait for one of them.
  await [...vars.values()][0]!.data();
  return loss;
}

interface TrainSetting {
  seq: number;
  segment: number;
  window: number;
  sink: number;
  tbptt: number;
  steps: number;
}

async function trainRow(modelPath: string, backend: BackendName, s: TrainSetting): Promise<Record<string, unknown>> {
  const b = await loadBackbone(modelPath);
  await use(backend);
  const cfg = edgeConfig(b, { sinkTokens: s.sink, windowTokens: s.window, segmentLength: s.segment });
  const model = LlamaModel.fromHost(b.config, b.weights);
  const module = new MemoryGatingModule(b.config, cfg);
  const opt = new AdamW({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
  const ids = Array.from({ length: s.seq + 1 }, (_, i) => (i * 11 + 5) % b.config.vocabSize);
  const firstLoss = await trainStep(model, module, opt, ids, s.tbptt); // warm-up
  await assertFiniteAsync(firstLoss, `training loss on ${backend}`);
  const t0 = performance.now();
  let loss = firstLoss;
  for (let i = 0; i < s.steps; i++) loss = await trainStep(model, module, opt, ids, s.tbptt);
  const stepS = (performance.now() - t0) / 1000 / s.steps;
  await assertFiniteAsync(loss, `training loss on ${backend}`);
  opt.dispose();
  module.dispose();
  model.dispose();
  log(`train ${backend} seq ${s.seq}: ${stepS.toFixed(3)} s/step, loss ${firstLoss.toFixed(4)} -> ${loss.toFixed(4)}`);
  return { backend, ...s, stepS, tokS: s.seq / stepS, firstLoss, lastLoss: loss };
}

// ---------------------------------------------------------------------------------------------------------------

async function matmulGflops(backend: BackendName, n: number, repeats: number): Promise<number> {
  await use(backend);
  const a = tf.randomNormal([n, n], 0, 1, "float32", 1);
  const bm = tf.randomNormal([n, n], 0, 1, "float32", 2);
  await read(tf.matMul(a, bm)); // warm-up
  const t0 = performance.now();
  const outs = Array.from({ length: repeats }, () => tf.matMul(a, bm));
  await outs[repeats - 1]!.data(); // queued in order: the last one done means all are
  const s = (performance.now() - t0) / 1000;
  tf.dispose([a, bm, ...outs]);
  return (2 * n ** 3 * repeats) / s / 1e9;
}

function n(x: unknown, digits = 2): string | number {
  if (x === null || x === undefined) return "n/a";
  if (typeof x === "boolean") return x ? "yes" : "no";
  if (typeof x !== "number") return String(x);
  if (x !== 0 && Math.abs(x) < 1e-2) return x.toExponential(1);
  return Number(x.toFixed(digits));
}

async function main(): Promise<void> {
  if (models.length === 0) throw new Error("--models DIR_OR_BIN[,...] is required");
  await use(gpu);
  results["adapter"] = await adapterInfo();
  results["maxTensorBytes"] = maxTensorBytes();
  log(`adapter ${JSON.stringify(results["adapter"])}; maxTensorBytes ${maxTensorBytes()}`);
  console.log(`\n${results["machine"]}; adapter ${JSON.stringify(results["adapter"])}; maxTensorBytes ${results["maxTensorBytes"]}`);
  if (tasks.has("matmul")) {
    section("matmul", [
      { backend: gpu, n: 2048, gflops: await matmulGflops(gpu, 2048, 20) },
      { backend: gpu, n: 4096, gflops: await matmulGflops(gpu, 4096, 10) },
      { backend: cpu, n: 512, gflops: await matmulGflops(cpu, 512, 5) },
    ]);
  }
  if (tasks.has("limits") && !overBudget("limits")) section("limits", await limitsDemo());
  if (tasks.has("parity")) {
    const rows: Record<string, unknown>[] = [];
    for (const m of models) if (!overBudget(`parity ${m}`)) rows.push(...(await parity(m)));
    section("parity", rows);
  }
  const longModel = models[models.length - 1]!;
  if (tasks.has("train")) {
    const small: TrainSetting = { seq: 512, segment: 128, window: 252, sink: 4, tbptt: 2, steps: 2 };
    const big: TrainSetting = { seq: 2048, segment: 256, window: 512, sink: 4, tbptt: 2, steps: 2 };
    const rows = [await trainRow(longModel, gpu, small), await trainRow(longModel, cpu, { ...small, steps: 1 })];
    const fits = big.sink + big.window + big.segment <= (await loadBackbone(longModel)).config.maxPositions;
    if (fits && !overBudget("train seq 2048")) rows.push(await trainRow(longModel, gpu, big));
    section("train", rows);
  }
  if (tasks.has("ttft")) {
    const rows = await ttftTable(longModel, gpu, lengths);
    if (!tasks.has("no-cpu-ttft") && !overBudget("cpu TTFT")) rows.push(...(await ttftTable(longModel, cpu, [lengths[0]!])));
    section("ttft", rows);
  }
}

/** Stores a section's results, rewrites the JSON file and prints the section's table (a timeout keeps what is done). */
function section(name: string, value: unknown): void {
  results[name] = value;
  if (jsonOut) writeFileAtomic(jsonOut, JSON.stringify(results, null, 1));
  console.log("\n" + render(name));
}

function render(name: string): string {
  const rows = (results[name] as Record<string, unknown>[] | undefined) ?? [];
  switch (name) {
    case "matmul":
      return table(["backend", "n", "fp32 matmul GFLOP/s"], rows.map((r) => [String(r["backend"]), Number(r["n"]), n(r["gflops"], 0)]));
    case "limits": {
      const lim = results["limits"] as { T: number; scoreBytes: number; bindingLimit: number; runs: Record<string, unknown>[] };
      return [
        `binding limit: attention T=${lim.T}, unchunked scores ${lim.scoreBytes} bytes vs maxStorageBufferBindingSize ${lim.bindingLimit}`,
        table(["run", "maxScoreBytes", "ms", "max |gpu−cpu|", "Σ|out|", "webgpu errors", "check"], lim.runs.map((r) => [String(r["name"]), Number(r["maxScoreBytes"]), n(r["ms"], 0), n(r["maxAbsDiffVsCpu"]), n(r["sumAbs"]), Number(r["webgpuErrors"]), String(r["assertion"]).slice(0, 100)])),
      ].join("\n");
    }
    case "parity":
      return [
        `parity (${gpu} vs ${cpu}, prefill + 31 teacher-forced decode steps; HF = transformers reference.json last-token logits)`,
        table(["model", "prompt", "tokens", "max |gpu−cpu|", "max |gpu−HF|", "max |cpu−HF|", "greedy gpu=cpu", "greedy cpu=HF", "≤1e-3", "gpu TTFT ms", "cpu TTFT ms", "gpu dec tok/s", "cpu dec tok/s"],
          rows.map((r) => [String(r["model"]), String(r["prompt"]), Number(r["promptTokens"]), n(r["maxAbsDiffGpuVsCpu"]), n(r["maxAbsDiffGpuVsHf"]), n(r["maxAbsDiffCpuVsHf"]), n(r["greedyEqualCpu"]), n(r["greedyEqualHf"]), n(r["ok"]), n(r["gpuTtftMs"], 0), n(r["cpuTtftMs"], 0), n(r["gpuDecodeTokS"], 1), n(r["cpuDecodeTokS"], 1)])),
      ].join("\n");
    case "train":
      return [
        "EdgeInfinite training step (forward + backward through TBPTT k segments + AdamW); loss after the timed steps",
        table(["backend", "seq", "segment", "window", "k", "s/step", "train tok/s", "loss"], rows.map((r) => [String(r["backend"]), Number(r["seq"]), Number(r["segment"]), Number(r["window"]), Number(r["tbptt"]), n(r["stepS"], 3), n(r["tokS"], 0), (r["lastLoss"] as number).toFixed(5)])),
      ].join("\n");
    case "ttft":
      return [
        `TTFT, full KV vs EdgeInfinite (${String(rows[0]?.["edgeConfig"] ?? "")}); first = cold run, ms = second run when there was time`,
        table(["backend", "tokens", "full first ms", "full ms", "full peak KV MiB", "edgeinf first ms", "edgeinf ms", "edgeinf peak KV MiB", "full/edgeinf"], rows.map((r) => [String(r["backend"]), Number(r["tokens"]), n(r["fullFirstMs"], 0), n(r["fullMs"], 0), n(r["fullPeakKvMiB"], 1), n(r["edgeFirstMs"], 0), n(r["edgeMs"], 0), n(r["edgePeakKvMiB"], 1), r["fullOverEdge"] ? `${(r["fullOverEdge"] as number).toFixed(2)}x` : String(r["fullSkipped"] ?? "n/a")])),
      ].join("\n");
    default:
      return JSON.stringify(results[name]);
  }
}

await main();
