/**
 * Starts tfjs-backend-wasm's threaded SIMD build in Node, so XNNPACK's products use every core of one process.
 *
 * Why this file exists: tfjs turns wasm threads off in Node (flag WASM_HAS_MULTITHREAD_SUPPORT answers false under
 * IS_NODE, tensorflow/tfjs#3830), although the Emscripten glue it ships runs pthreads on Node's worker_threads.
 * Three things stand in the way, and each is bridged here for the duration of one backend start:
 *   1. the flag: set to true;
 *   2. the pthread worker script: tfjs hands Emscripten a `blob:` URL and a Blob of the main script, which Node's
 *      Worker cannot load. A Worker subclass replaces exactly that URL with an inline script that defines the factory
 *      from the package's own files and then runs tfjs' own worker source;
 *   3. the thread cap: tfjs' C++ caps threads at logical cores / 2 (it assumes two hyperthreads per core), which on a
 *      2-core machine is 1. `os.cpus()` is reported twice over while the module starts, so the cap is the core count.
 * Threads only split XNNPACK operators (matmuls and a few others); every other kernel stays on the calling thread.
 * A product split over threads computes each output element with the same micro-kernel over the same k order, so
 * results equal the single-threaded ones (test/wasm-threads.test.ts).
 */
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { Worker as NodeWorker, type WorkerOptions } from "node:worker_threads";
import * as tf from "../tf.js";
import { fail } from "../util/errors.js";
import { wrapWasmKernel } from "./wasm-kernels.js";

/** Environment variable for the wasm thread count ("auto" = cores; 1 = tfjs' single-threaded build). */
export const WASM_THREADS_ENV = "EDGEINF_WASM_THREADS";

/** The parts of @tensorflow/tfjs-backend-wasm used here. */
export interface WasmPackage {
  setThreadsCount(n: number): void;
  getThreadsCount(): number;
}

/** Thread count from EDGEINF_WASM_THREADS: unset or "auto" → `auto`; else a whole number ≥ 1. */
export function wasmThreadsFromEnv(value: string | undefined, auto: number): number {
  if (value === undefined || value === "" || value === "auto") return auto;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) fail(`${WASM_THREADS_ENV}=${value} is not a thread count`, "use a whole number ≥ 1, or auto (one per core)");
  return n;
}

/** Script each pthread worker runs: the factory from the package's glue, then tfjs' own worker source. */
function pthreadWorkerSource(wasmOutDir: string): string {
  const glue = JSON.stringify(path.join(wasmOutDir, "tfjs-backend-wasm-threaded-simd.js"));
  const worker = JSON.stringify(path.join(wasmOutDir, "tfjs-backend-wasm-threaded-simd.worker.js"));
  // tfjs escapes the newlines of its worker source before making a Blob of it; the same is done here.
  return [
    `global.WasmBackendModuleThreadedSimd = require(${glue});`,
    `global.require = require; global.__filename = ${glue};`,
    `(0, eval)(require(${worker}).wasmWorkerContents.replace(/\\n/g, "\\\\n"));`,
    // The factory is already global: the main thread's `load` message names a Blob Node cannot import.
    `global.importScripts = () => {};`,
  ].join("\n");
}

let workerClassInstalled = false;

/** Makes the Emscripten glue's `new Worker(blobUrl)` start the inline pthread script; other workers are untouched. */
function installPthreadWorkerClass(wasmOutDir: string): void {
  if (workerClassInstalled) return;
  const source = pthreadWorkerSource(wasmOutDir);
  class PthreadWorker extends NodeWorker {
    constructor(url: string | URL, options?: WorkerOptions) {
      if (typeof url === "string" && url.startsWith("blob:")) super(source, { ...options, eval: true });
      else super(url, options);
    }
  }
  // The glue assigns global.Worker = worker_threads.Worker when it starts; that assignment is ignored so the
  // subclass stays in place for the pthreads it creates later.
  Object.defineProperty(globalThis, "Worker", { get: () => PthreadWorker, set: () => {}, configurable: true });
  workerClassInstalled = true;
}

/**
 * True in Node itself. Deno and Bun emulate worker_threads, but the Emscripten worker source assigns globals their
 * worker scopes forbid (Deno: "Cannot set property location"), so they keep one thread.
 */
export function runtimeRunsWasmThreads(): boolean {
  const versions = process.versions as Record<string, string | undefined>;
  return versions["deno"] === undefined && versions["bun"] === undefined;
}

/**
 * Prepares the next `tf.setBackend("wasm")` to start `threads` threads, runs `start`, and puts `os.cpus` back.
 * threads = 1 (or a runtime other than Node) keeps tfjs' single-threaded SIMD build.
 */
export async function withWasmThreads<T>(wasm: WasmPackage, threads: number, start: () => Promise<T>): Promise<T> {
  if (threads <= 1 || !runtimeRunsWasmThreads()) {
    wasm.setThreadsCount(1);
    return start();
  }
  const require = createRequire(import.meta.url);
  const wasmOutDir = path.join(path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json")), "wasm-out");
  installPthreadWorkerClass(wasmOutDir);
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
  wasm.setThreadsCount(threads);
  const cpus = os.cpus;
  os.cpus = () => {
    const real = cpus();
    return Array.from({ length: 2 * Math.max(threads, real.length) }, (_, i) => real[i % real.length]!);
  };
  try {
    const started = await start();
    unrefPthreads();
    poolSlot = locatePoolSlot();
    if (poolSlot !== null) poolSlot.heap()[poolSlot.index] = 0;
    return started;
  } finally {
    os.cpus = cpus;
  }
}

/**
 * Where tfjs' C++ keeps its `threadpool` pointer (a word in wasm memory), and the pool it points to.
 * Kernels run single-threaded while the word is 0 (pthreadpool's "no pool"); products worth splitting set it to
 * the pool for their duration (see onThreadPool). Small kernels lose more to waking a thread than they gain:
 * with every kernel on the pool a decode step of edge-lm took 16.3 ms against 12.5 ms on one thread.
 */
interface PoolSlot {
  heap: () => Uint32Array;
  index: number;
  pool: number;
}

let poolSlot: PoolSlot | null = null;

/** Runs fn with XNNPACK's thread pool on (when threads were started and the pool word was found). */
export function onThreadPool<T>(fn: () => T): T {
  const slot = poolSlot;
  if (slot === null) return fn();
  slot.heap()[slot.index] = slot.pool;
  try {
    return fn();
  } finally {
    slot.heap()[slot.index] = 0;
  }
}

/** Elements from which a non-matmul kernel's largest input runs with the pool on (4 MiB of float32). */
export const THREADED_MIN_ELEMENTS = 1 << 20;

/**
 * Every wasm kernel except the products (which decide by multiply-adds, in wasm-matmul.ts) runs with the pool on
 * when its largest input has at least THREADED_MIN_ELEMENTS elements. Kernels that are not XNNPACK operators ignore
 * the pool. Idempotent.
 */
export function installThreadPoolPolicy(skip: readonly string[]): void {
  if (poolSlot === null) return;
  for (const { kernelName } of tf.getKernelsForBackend("wasm")) {
    if (skip.includes(kernelName)) continue;
    wrapWasmKernel(kernelName, "threadPool", (inner) => (args) => {
      let largest = 0;
      for (const input of Object.values(args.inputs)) {
        if (input !== undefined && input !== null) largest = Math.max(largest, tf.util.sizeFromShape((input as tf.TensorInfo).shape));
      }
      return largest >= THREADED_MIN_ELEMENTS ? onThreadPool(() => inner(args)) : inner(args);
    });
  }
}

/** True when kernels default to one thread and products opt into the pool. */
export function threadPoolIsSelective(): boolean {
  return poolSlot !== null;
}

/** The parts of the Emscripten module used to find the pool word. */
interface PoolModule {
  HEAPU32: Uint32Array;
  _init_with_threads_count(n: number): void;
  tfjs: { getThreadsCount(): number };
}

/**
 * Finds the pool word without symbols: `init_with_threads_count(1)` stores a new (one-thread) pool into it, so the
 * word is among those that change; the one whose old value, written back, makes get_threads_count() answer the
 * thread count again is it. The one-thread pool stays allocated (a few hundred bytes). null when not found.
 */
function locatePoolSlot(): PoolSlot | null {
  if (tf.getBackend() !== "wasm") return null;
  const module = (tf.backend() as unknown as { wasm?: PoolModule }).wasm;
  if (module === undefined || typeof module._init_with_threads_count !== "function") return null;
  const threads = module.tfjs.getThreadsCount();
  if (threads <= 1) return null;
  const heap = (): Uint32Array => new Uint32Array(module.HEAPU32.buffer);
  const before = heap().slice();
  module._init_with_threads_count(1);
  const after = heap();
  for (let i = 0; i < before.length; i++) {
    const old = before[i]!;
    const now = after[i]!;
    if (old === now || old === 0 || now === 0) continue;
    after[i] = old;
    if (module.tfjs.getThreadsCount() === threads) {
      after[i] = 0;
      const off = module.tfjs.getThreadsCount() === -1;
      after[i] = old;
      if (off) return { heap, index: i, pool: old };
    }
    after[i] = now;
  }
  return null;
}

/** The Emscripten runtime's thread table (on the wasm backend's module). */
interface PthreadTable {
  runningWorkers: { unref(): void }[];
  unusedWorkers: { unref(): void }[];
}

/**
 * The pool's threads live as long as the process; unreferenced, they no longer keep Node from exiting when the main
 * thread is done (the glue references a worker while its thread runs, and pool threads never finish).
 */
function unrefPthreads(): void {
  if (tf.getBackend() !== "wasm") return;
  const table = (tf.backend() as unknown as { wasm?: { PThread?: PthreadTable } }).wasm?.PThread;
  if (table === undefined) return;
  for (const worker of [...table.runningWorkers, ...table.unusedWorkers]) worker.unref();
}
