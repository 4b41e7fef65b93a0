/**
 * Backend selection: pick the fastest tfjs backend this machine can actually start.
 *
 * Auto order: tfjs-node-gpu → webgpu (Dawn) → tfjs-node → wasm → cpu.
 * The native and WebGPU packages are optional dependencies, so each is loaded with a
 * dynamic import and every skip is recorded with its reason.
 */
import { existsSync } from "node:fs";
import os from "node:os";
import { createRequire } from "node:module";
import path from "node:path";
import * as tf from "../tf.js";
import { EdgeInfError, fail } from "../util/errors.js";
import { installWasmMatMul, uninstallWasmMatMul } from "./wasm-matmul.js";
import { watchWebGpuErrors } from "./webgpu-errors.js";
import { applyTfjsFlags, parseTfjsFlags, TFJS_FLAGS_ENV } from "./tfjs-flags.js";
import { limitWebGpuBufferPool } from "./webgpu-pool.js";
import { installWebGpuFused } from "./webgpu-fused.js";
import { installSharingIdentity } from "./wasm-identity.js";
import { installHeapCopies } from "./wasm-copies.js";
import { installAbortGuard, withHeapFullErrors } from "./wasm-abort.js";
import { installReduceGrads, reduceGradsModeFromEnv, REDUCE_GRADS_ENV } from "./reduce-grads.js";
import { installThreadPoolPolicy, threadPoolIsSelective, WASM_THREADS_ENV, wasmThreadsFromEnv, withWasmThreads } from "./wasm-threads.js";

const WEBGPU_CPU_FORWARD = "WEBGPU_CPU_FORWARD";

export type BackendName = "tensorflow" | "webgpu" | "wasm" | "cpu";

export interface BackendAttempt {
  name: string;
  ok: boolean;
  why: string;
}

export interface BackendInfo {
  name: BackendName;
  /** Why this backend: e.g. "auto: tfjs-node-gpu not installed; webgpu: no adapter; tfjs-node not installed". */
  reason: string;
  tried: BackendAttempt[];
  /** Only for wasm: which BatchMatMul kernel runs ("project" = src/backend/wasm-matmul.ts). */
  wasmMatMul?: WasmMatMulMode;
  /** Only for wasm: threads XNNPACK's products run on (1 = tfjs' single-threaded build). */
  wasmThreads?: number;
}

/** project: the project kernel (default); project-gemm: the same without the SIMD few-rows loops; native: wasm's own. */
export type WasmMatMulMode = "project" | "project-gemm" | "native";

export interface InitBackendOptions {
  /** Receives the one-line summary; defaults to stderr. */
  log?: (line: string) => void;
  /**
   * wasm only: threads for XNNPACK's products. Defaults to EDGEINF_WASM_THREADS, else one per core. Pool workers
   * pass 1: each is one of several processes' worth of work already.
   */
  wasmThreads?: number;
}

const BACKEND_NAMES: readonly BackendName[] = ["tensorflow", "webgpu", "wasm", "cpu"];
const ADAPTER_TIMEOUT_MS = 10_000;

/** What a probe found: ok, or the reason it was skipped. `notInstalled` phrases the log differently. */
interface Probe {
  ok: boolean;
  why: string;
  notInstalled?: boolean;
}

interface Candidate {
  /** Name shown in logs and `tried`. */
  label: string;
  backend: BackendName;
  probe: () => Promise<Probe>;
}

let current: { request: BackendName | "auto"; info: Promise<BackendInfo> } | null = null;

/**
 * Start a tfjs backend. `requested` defaults to env EDGEINF_BACKEND, then "auto".
 * A second call returns the first call's info, unless it explicitly names a different backend
 * than the one running.
 */
export async function initBackend(requested?: BackendName | "auto", opts: InitBackendOptions = {}): Promise<BackendInfo> {
  const request = requested ?? requestFromEnv(process.env["EDGEINF_BACKEND"]);
  if (current !== null) {
    const previous = current;
    if (request === "auto" || request === previous.request) return previous.info;
    // An explicit name that is what is already running (e.g. "wasm" after auto chose wasm).
    const running = await previous.info.catch(() => null);
    if (running !== null && running.name === request && tf.getBackend() === request) return running;
  }
  const wasmThreads = opts.wasmThreads ?? wasmThreadsFromEnv(process.env[WASM_THREADS_ENV], os.cpus().length);
  const info = start(request, opts.log ?? ((line) => process.stderr.write(`${line}\n`)), wasmThreads);
  current = { request, info };
  // A failed start must not poison later calls.
  info.catch(() => {
    if (current?.info === info) current = null;
  });
  return info;
}

/** Name of the backend tfjs is using right now. */
export function backendName(): string {
  return tf.getBackend();
}

/** Parses EDGEINF_BACKEND. */
export function requestFromEnv(value: string | undefined): BackendName | "auto" {
  if (value === undefined || value === "" || value === "auto") return "auto";
  if ((BACKEND_NAMES as readonly string[]).includes(value)) return value as BackendName;
  fail(`EDGEINF_BACKEND=${value} is not a backend`, `use one of auto, ${BACKEND_NAMES.join(", ")}`);
}

/**
 * Parses EDGEINF_WASM_MATMUL: "project" (default), "project-gemm" (the project kernel without its SIMD few-rows
 * loops, src/backend/wasm-few-rows.ts) or "native" (wasm's own kernel); the last two are for comparison.
 */
export function wasmMatMulModeFromEnv(value: string | undefined): WasmMatMulMode {
  if (value === undefined || value === "" || value === "project") return "project";
  if (value === "native" || value === "project-gemm") return value;
  fail(`EDGEINF_WASM_MATMUL=${value} is not a mode`, "use project (default), project-gemm or native");
}

async function start(request: BackendName | "auto", log: (line: string) => void, wasmThreads: number): Promise<BackendInfo> {
  const candidates = request === "auto" ? autoCandidates(wasmThreads) : candidatesFor(request, wasmThreads);
  const tried: BackendAttempt[] = [];
  const skipped: string[] = [];
  for (const candidate of candidates) {
    const probe = await safeProbe(candidate.probe);
    tried.push({ name: candidate.label, ok: probe.ok, why: probe.why });
    if (!probe.ok) {
      skipped.push(probe.notInstalled ? `${candidate.label} ${probe.why}` : `${candidate.label}: ${probe.why}`);
      continue;
    }
    const info: BackendInfo = { name: candidate.backend, reason: "", tried };
    const notes: string[] = [];
    if (request === "auto") notes.push(skipped.length > 0 ? `auto: ${skipped.join("; ")}` : "auto: first choice");
    else notes.push(requested(request));
    if (candidate.backend === "wasm") {
      info.wasmMatMul = wasmMatMulModeFromEnv(process.env["EDGEINF_WASM_MATMUL"]);
      if (info.wasmMatMul !== "native") installWasmMatMul({ fewRows: info.wasmMatMul === "project" });
      else uninstallWasmMatMul();
      notes.push(`matmul: ${info.wasmMatMul}`);
      installSharingIdentity();
      installHeapCopies();
      info.wasmThreads = await wasmThreadCount();
      installThreadPoolPolicy([tf.BatchMatMul, tf._FusedMatMul]);
      // Outermost: sees every kernel's abort, including those of the wrappers above.
      installAbortGuard([tf.BatchMatMul, tf._FusedMatMul]);
      notes.push(info.wasmThreads > 1 && !threadPoolIsSelective() ? `threads: ${info.wasmThreads} (every XNNPACK kernel)` : `threads: ${info.wasmThreads}`);
    }
    const reduceGrads = reduceGradsModeFromEnv(process.env[REDUCE_GRADS_ENV]);
    installReduceGrads(reduceGrads);
    if (reduceGrads !== "broadcast") notes.push(`${REDUCE_GRADS_ENV}=${reduceGrads}`);
    const flags = parseTfjsFlags(process.env[TFJS_FLAGS_ENV]);
    // webgpu: small kernels whose inputs are still on the host ran on the CPU and uploaded their (often large)
    // outputs, e.g. each attention block's causal-mask comparison. Off, edge-lm training at seq 2048 went from 4380 to
    // 4780 tok/s at 32 sequences per forward (H100, same call; docs/performance.md). EDGEINF_TFJS_FLAGS overrides it.
    if (candidate.backend === "webgpu") applyTfjsFlags([[WEBGPU_CPU_FORWARD, false]]);
    applyTfjsFlags(flags);
    if (flags.length > 0) notes.push(`${TFJS_FLAGS_ENV}: ${flags.map(([k, v]) => `${k}=${String(v)}`).join(",")}`);
    info.reason = notes.join("; ");
    log(`backend: ${info.name} (${info.reason})`);
    return info;
  }
  if (request === "auto") {
    throw new EdgeInfError(`no tfjs backend could start (${skipped.join("; ")})`, "reinstall @tensorflow/tfjs-backend-cpu");
  }
  throw new EdgeInfError(`backend ${request} cannot start (${skipped.join("; ")})`, installHint(request));
}

function requested(request: BackendName): string {
  return process.env["EDGEINF_BACKEND"] === request ? `EDGEINF_BACKEND=${request}` : "requested";
}

function installHint(name: BackendName): string {
  switch (name) {
    case "tensorflow":
      return "install @tensorflow/tfjs-node@4.22.0 (offline: scripts/provision-libtensorflow.sh <libtensorflow tarball>, see docs/backends.md) or use --backend wasm";
    case "webgpu":
      return "needs the webgpu and @tensorflow/tfjs-backend-webgpu packages and a Vulkan/Metal/D3D12 GPU driver (Linux: libvulkan1 + vendor ICD), or use --backend wasm";
    case "wasm":
      return "reinstall @tensorflow/tfjs-backend-wasm@4.22.0 (its dist/*.wasm files must exist) or use --backend cpu";
    case "cpu":
      return "reinstall @tensorflow/tfjs-backend-cpu@4.22.0";
  }
}

function autoCandidates(wasmThreads: number): Candidate[] {
  return [tfjsNodeCandidate("@tensorflow/tfjs-node-gpu"), webgpuCandidate({ software: false }), tfjsNodeCandidate("@tensorflow/tfjs-node"), wasmCandidate(wasmThreads), cpuCandidate()];
}

function candidatesFor(name: BackendName, wasmThreads: number): Candidate[] {
  switch (name) {
    case "tensorflow":
      return [tfjsNodeCandidate("@tensorflow/tfjs-node-gpu"), tfjsNodeCandidate("@tensorflow/tfjs-node")];
    case "webgpu":
      return [webgpuCandidate({ software: true })];
    case "wasm":
      return [wasmCandidate(wasmThreads)];
    case "cpu":
      return [cpuCandidate()];
  }
}

async function safeProbe(probe: () => Promise<Probe>): Promise<Probe> {
  try {
    return await probe();
  } catch (e) {
    return { ok: false, why: firstLine(e) };
  }
}

/** Threads the running wasm backend's XNNPACK pool has. */
async function wasmThreadCount(): Promise<number> {
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  return wasm.getThreadsCount();
}

/** tfjs-node(-gpu) registers backend "tensorflow" and brings its own @tensorflow/tfjs. */
function tfjsNodeCandidate(pkg: "@tensorflow/tfjs-node" | "@tensorflow/tfjs-node-gpu"): Candidate {
  const label = pkg.slice("@tensorflow/".length);
  return {
    label,
    backend: "tensorflow",
    probe: async () => {
      const loaded = await importOptional(pkg);
      if (!loaded.ok) return loaded;
      // tfjs keeps its engine on globalThis, so a second tfjs-core copy normally shares it;
      // if the backend is invisible to *our* tfjs-core, ops would silently run elsewhere.
      if (tf.findBackendFactory("tensorflow") === null) {
        const theirs = versionOf(loaded.module, "tfjs-core");
        return {
          ok: false,
          why: `loaded, but its backend is not registered with our tfjs-core ${tf.version_core} (its tfjs-core: ${theirs ?? "unknown"}); install ${pkg}@${tf.version_core} so both share one engine`,
        };
      }
      return setBackend("tensorflow");
    },
  };
}

/** Whether libvulkan.so.1 is in LD_LIBRARY_PATH or a standard library folder (Dawn's Vulkan backend needs it on Linux). */
export function hasVulkanLoader(env: NodeJS.ProcessEnv = process.env): boolean {
  const dirs = [
    ...(env.LD_LIBRARY_PATH ?? "").split(":").filter((d) => d !== ""),
    "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
    "/usr/lib64", "/lib64", "/usr/lib", "/lib", "/usr/local/lib",
  ];
  return dirs.some((d) => existsSync(path.join(d, "libvulkan.so.1")));
}

/**
 * Whether a WebGPU adapter is a CPU in disguise (Mesa's lavapipe/llvmpipe, SwiftShader, a fallback adapter): a few
 * GFLOP/s, far slower than wasm on the same cores.
 */
export function isSoftwareAdapter(adapter: unknown): boolean {
  const a = adapter as { info?: { architecture?: string; description?: string; device?: string }; isFallbackAdapter?: boolean } | null;
  if (a === null || typeof a !== "object") return false;
  if (a.isFallbackAdapter === true || a.info?.architecture === "software") return true;
  return /llvmpipe|lavapipe|swiftshader/i.test(`${a.info?.description ?? ""} ${a.info?.device ?? ""}`);
}

/**
 * WebGPU through Dawn (npm package `webgpu`); only when Dawn finds a real adapter. `software: false` (auto) also
 * passes over a software adapter, which `--backend webgpu` still takes (tests on lavapipe, scripts/lavapipe.sh).
 */
function webgpuCandidate({ software }: { software: boolean }): Candidate {
  return {
    label: "webgpu",
    backend: "webgpu",
    probe: async () => {
      // Switching back to webgpu reuses the started backend: a second Dawn instance would replace navigator.gpu and
      // let the first one (which owns the backend's device) be collected — a segfault or hang at the next read.
      if (tf.findBackend("webgpu") !== null) return setBackend("webgpu");
      // Dawn prints a Vulkan warning with a native stack to stderr when the loader is missing: look for it quietly first.
      if (process.platform === "linux" && !hasVulkanLoader()) return { ok: false, why: "no Vulkan loader (libvulkan.so.1)" };
      const dawn = await importOptional("webgpu");
      if (!dawn.ok) return { ok: false, why: dawn.notInstalled ? "webgpu package not installed" : dawn.why };
      const { create, globals } = dawn.module as { create: (flags: string[]) => GpuLike; globals: Record<string, unknown> };
      const gpu = (dawnGpu ??= create(dawnFlags()));
      const adapter = await withTimeout(gpu.requestAdapter(), ADAPTER_TIMEOUT_MS, "requestAdapter timed out");
      if (adapter === null || adapter === undefined) return { ok: false, why: "no adapter" };
      if (!software && isSoftwareAdapter(adapter)) return { ok: false, why: "only a software adapter (slower than wasm; --backend webgpu takes it)" };
      Object.assign(globalThis, globals);
      const g = globalThis as unknown as { navigator?: { gpu?: unknown } };
      g.navigator ??= {};
      g.navigator.gpu = gpu;
      const backend = await importOptional("@tensorflow/tfjs-backend-webgpu");
      if (!backend.ok) {
        return { ok: false, why: backend.notInstalled ? "adapter found but @tensorflow/tfjs-backend-webgpu not installed" : backend.why };
      }
      const started = await setBackend("webgpu");
      // Dawn only logs validation errors (e.g. a tensor past maxStorageBufferBindingSize): record them for assertFinite.
      // tfjs pools every released buffer forever: chunked attention's varying sizes exhaust GPU memory without a cap.
      if (started.ok) {
        watchWebGpuErrors();
        limitWebGpuBufferPool();
        installWebGpuFused();
      }
      return started;
    },
  };
}

/**
 * Dawn's creation flags from EDGEINF_DAWN_FLAGS (comma-separated, e.g. `enable-dawn-features=allow_unsafe_apis`, which
 * exposes the timestamp queries that tf.profile's per-kernel GPU times need).
 */
export function dawnFlags(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.EDGEINF_DAWN_FLAGS ?? "").split(",").map((f) => f.trim()).filter((f) => f !== "");
}

/** The one Dawn instance of this process (kept referenced for as long as the process runs). */
let dawnGpu: GpuLike | null = null;

interface GpuLike {
  requestAdapter(): Promise<unknown>;
}

/** XNNPACK in WebAssembly; with threads > 1 its threaded build (wasm-threads.ts: tfjs leaves it off in Node). */
function wasmCandidate(threads: number): Candidate {
  return {
    label: "wasm",
    backend: "wasm",
    probe: async () => {
      const wasm = await import("@tensorflow/tfjs-backend-wasm");
      const require = createRequire(import.meta.url);
      const distDir = path.join(path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json")), "dist") + path.sep;
      wasm.setWasmPaths(distDir);
      const started = await withHeapFullErrors(() => withWasmThreads(wasm, threads, () => setBackend("wasm")));
      if (!started.ok && threads > 1) return { ok: false, why: `${started.why} (with ${threads} threads; ${WASM_THREADS_ENV}=1 starts the single-threaded build)` };
      return started;
    },
  };
}

function cpuCandidate(): Candidate {
  return {
    label: "cpu",
    backend: "cpu",
    probe: async () => {
      await import("@tensorflow/tfjs-backend-cpu");
      return setBackend("cpu");
    },
  };
}

async function setBackend(name: string): Promise<Probe> {
  // tf.setBackend logs the init error itself and answers false.
  const ok = await tf.setBackend(name);
  if (!ok) return { ok: false, why: `tf.setBackend("${name}") failed` };
  await tf.ready();
  return { ok: true, why: "ok" };
}

type Imported = { ok: true; why: string; module: unknown } | { ok: false; why: string; notInstalled: boolean };

/** Dynamic import of an optional package; "not installed" is told apart from "installed but broken". */
async function importOptional(pkg: string): Promise<Imported> {
  const specifier: string = pkg; // a plain string keeps tsc from resolving packages that may be absent
  try {
    return { ok: true, why: "ok", module: await import(specifier) };
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const message = firstLine(e);
    const missing = (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") && message.includes(pkg);
    if (missing) return { ok: false, why: "not installed", notInstalled: true };
    return { ok: false, why: `failed to load: ${message}`, notInstalled: false };
  }
}

function versionOf(module: unknown, key: string): string | undefined {
  const m = module as { version?: Record<string, unknown>; default?: { version?: Record<string, unknown> } };
  const v = m.version?.[key] ?? m.default?.version?.[key];
  return typeof v === "string" ? v : undefined;
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split("\n")[0].trim();
}
