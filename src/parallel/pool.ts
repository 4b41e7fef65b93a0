/**
 * A small pool of Node worker threads, each with its own tfjs backend and its own copy of the backbone (loaded once,
 * when the worker starts). tfjs' wasm and cpu backends compute on one thread, so one worker per core is what lets
 * a run use every core. The parent talks to a worker by requests with ids; replies carry results or a serialised
 * error (an EdgeInfError stays one with its hint). Large arrays (gradients, weights) are transferred, not copied.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { EdgeInfError, fail } from "../util/errors.js";
import type { WorkerInit, WorkerReply, WorkerRequest, WorkerTask } from "./protocol.js";

/** Workers when the user names none: one per core. */
export function defaultWorkerCount(): number {
  return availableParallelism();
}

/** Fails with one line unless `n` is a positive integer; `name` is how the user set it (e.g. "--workers"). */
export function checkWorkerCount(n: number, name = "workers"): void {
  if (!Number.isInteger(n) || n < 1) fail(`${name} ${String(n)} must be a positive integer`, `e.g. ${name} ${defaultWorkerCount()} (one per core)`);
}

/**
 * The worker's entry module: worker.js beside this file when built; from the sources (vitest, tsx) worker.ts,
 * started through tsx's loader (a worker thread does not inherit the parent's loader hooks).
 */
function startWorker(init: WorkerInit): Worker {
  const here = import.meta.url;
  if (here.endsWith(".ts")) {
    const entry = new URL("./worker.ts", here).href;
    const boot = `import("tsx/esm/api").then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
    return new Worker(boot, { eval: true, workerData: init });
  }
  return new Worker(new URL("./worker.js", here), { workerData: init });
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/** One worker thread and its open requests. */
class PoolWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  /** Set once the worker has exited or failed: every later request fails with it. */
  private dead: Error | null = null;

  constructor(readonly index: number, init: WorkerInit) {
    this.worker = startWorker(init);
    this.worker.on("message", (reply: WorkerReply) => this.settle(reply));
    this.worker.on("error", (e) => this.die(e));
    this.worker.on("exit", (code) => this.die(new Error(`worker ${index} exited (code ${code})`)));
  }

  private settle(reply: WorkerReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (reply.ok) p.resolve(reply.result);
    else p.reject(reply.error.edgeinf ? new EdgeInfError(reply.error.problem, reply.error.hint) : Object.assign(new Error(reply.error.problem), { stack: reply.error.stack }));
  }

  private die(e: Error): void {
    this.dead ??= e;
    for (const p of this.pending.values()) p.reject(this.dead);
    this.pending.clear();
  }

  call<T>(task: WorkerTask, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      const request: WorkerRequest = { id, task };
      this.worker.postMessage(request, transfer);
    });
  }

  async terminate(): Promise<void> {
    this.dead ??= new Error(`worker ${this.index} was stopped`);
    await this.worker.terminate();
  }
}

export interface PoolOptions {
  /** Number of worker threads (default: one per core). */
  workers?: number;
  /** tfjs backend each worker starts (as initBackend takes it). */
  backend: string;
  /** Backbone every worker loads once (a path or hub id, as loadBackbone takes it). */
  backbone: string;
}

/**
 * N workers, each with a backend and the backbone loaded. `ready()` resolves when all have loaded (and rejects with
 * the first worker's error, e.g. a backend that does not start); `close()` stops them.
 */
export class WorkerPool {
  private readonly workers: PoolWorker[];
  private readonly started: Promise<void>;

  constructor(readonly options: PoolOptions) {
    const n = options.workers ?? defaultWorkerCount();
    checkWorkerCount(n);
    this.workers = Array.from({ length: n }, (_, i) => new PoolWorker(i, { backend: options.backend, backbone: options.backbone }));
    const all = Promise.all(this.workers.map((w) => w.call<null>({ kind: "ready" }))).then(() => {});
    // A pool closed before ready() is awaited must not leave an unhandled rejection behind.
    all.catch(() => {});
    this.started = all;
  }

  get size(): number {
    return this.workers.length;
  }

  ready(): Promise<void> {
    return this.started;
  }

  /** Sends `task` to worker `index`; requests to one worker run in the order sent. */
  call<T>(index: number, task: WorkerTask, transfer: ArrayBuffer[] = []): Promise<T> {
    return this.workers[index]!.call<T>(task, transfer);
  }

  /** Sends `task` to every worker (a fresh task per worker, so each can get its own transferred buffers). */
  broadcast<T>(task: (index: number) => { task: WorkerTask; transfer?: ArrayBuffer[] }): Promise<T[]> {
    return Promise.all(this.workers.map((w, i) => {
      const t = task(i);
      return w.call<T>(t.task, t.transfer ?? []);
    }));
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * Runs items[0..n-1] on the pool, each on whichever worker is free next (so uneven items balance), and hands the
 * results to `consume` in ITEM order, whatever order they finish in: what a parent does with them (append a row,
 * add a gradient) is the same as a one-worker loop would do. Stops handing out items once `stop()` is true; items
 * already running finish and are consumed. Returns how many items were consumed (a prefix, in order). On the first
 * failure, no further items start, running ones are awaited, and the error is thrown.
 */
export async function runInOrder<T>(
  pool: WorkerPool,
  count: number,
  run: (item: number, worker: number) => Promise<T>,
  consume: (result: T, item: number) => void | Promise<void>,
  stop: () => boolean = () => false,
): Promise<number> {
  const finished = new Map<number, T>();
  let next = 0;
  let consumed = 0;
  let failure: { error: unknown } | null = null;
  // Consumption is serialised (a promise chain), so `consume` never runs twice at once.
  let consuming: Promise<void> = Promise.resolve();
  const drain = async (): Promise<void> => {
    while (failure === null && finished.has(consumed)) {
      const r = finished.get(consumed)!;
      finished.delete(consumed);
      try {
        await consume(r, consumed);
      } catch (error) {
        failure ??= { error };
        return;
      }
      consumed++;
    }
  };
  const lane = async (worker: number): Promise<void> => {
    while (failure === null && next < count && !stop()) {
      const item = next++;
      try {
        finished.set(item, await run(item, worker));
      } catch (error) {
        failure ??= { error };
        return;
      }
      consuming = consuming.then(drain);
      await consuming;
    }
  };
  await Promise.all(Array.from({ length: Math.min(pool.size, count) }, (_, w) => lane(w)));
  await consuming;
  if (failure !== null) throw (failure as { error: unknown }).error;
  return consumed;
}
