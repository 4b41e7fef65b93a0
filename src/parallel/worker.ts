/**
 * A pool worker (started by src/parallel/pool.ts): starts its tfjs backend and loads the backbone once, then answers
 * requests one at a time — module gradients of one micro-batch (training: one sequence, or a batch of equal-length
 * ones in one forward/backward), or one evaluation sample. It never writes
 * files: the parent writes samples.jsonl and applies gradients, so the run-dir lock and resume stay the parent's.
 */
import { parentPort, workerData } from "node:worker_threads";
import * as tf from "../tf.js";
import { initBackend, type BackendName } from "../backend/select.js";
import { loadBackbone, type LoadedBackbone } from "../loaders/index.js";
import { LlamaModel } from "../backbone/model.js";
import { MemoryGatingModule } from "../memory/module.js";
import { objectiveByName } from "../training/objectives/index.js";
import { nextTokenWithSegmentOptions } from "../training/objectives/next-token.js";
import { batchGradientsInto } from "../training/step.js";
import { prepareMethod, type PreparedMethod } from "../eval/methods.js";
import { growRope, runSample, warmUpMethod } from "../eval/harness.js";
import type { Suite } from "../eval/suite.js";
import { EdgeInfError } from "../util/errors.js";
import type { GradientsResult, WireError, WireTensor, WorkerInit, WorkerReply, WorkerRequest, WorkerTask } from "./protocol.js";

interface Loaded {
  backbone: LoadedBackbone;
  model: LlamaModel;
}

interface EvalState {
  suite: Suite;
  prepared: Map<string, PreparedMethod>;
  /** Methods warmed up in this worker (each warms up before its first timed sample here). */
  warmed: Set<string>;
}

const init = workerData as WorkerInit;
let module: MemoryGatingModule | null = null;
let evalState: EvalState | null = null;

const loading: Promise<Loaded> = (async () => {
  // One thread: the pool already runs one worker per core.
  await initBackend(init.backend as BackendName | "auto", { log: () => {}, wasmThreads: 1 });
  const backbone = await loadBackbone(init.backbone);
  return { backbone, model: LlamaModel.fromHost(backbone.config, backbone.weights) };
})();
loading.catch(() => {}); // reported by the first request instead

function wireError(e: unknown): WireError {
  if (e instanceof EdgeInfError) {
    const problem = e.hint !== undefined ? e.message.slice(0, e.message.length - e.hint.length - 3) : e.message;
    return { problem, ...(e.hint !== undefined ? { hint: e.hint } : {}), edgeinf: true };
  }
  const err = e instanceof Error ? e : new Error(String(e));
  return { problem: err.message, edgeinf: false, ...(err.stack !== undefined ? { stack: err.stack } : {}) };
}

/** The module's weights from the parent; a new config (or the first call) builds the module anew. */
function setModule(loaded: Loaded, config: MemoryGatingModule["config"], weights: WireTensor[]): void {
  if (module === null || JSON.stringify(module.config) !== JSON.stringify(config)) {
    module?.dispose();
    module = new MemoryGatingModule(loaded.backbone.config, config);
  }
  module.load(new Map(weights.map((w) => [w.name, { shape: w.shape, data: w.data }])), "weights from the parent");
}

async function gradients(loaded: Loaded, task: Extract<WorkerTask, { kind: "gradients" }>): Promise<{ result: GradientsResult; transfer: ArrayBuffer[] }> {
  if (module === null) throw new Error("gradients requested before setModule");
  const r = await microBatchGradients(loaded.model, module, task);
  const grads: WireTensor[] = [];
  try {
    // A copy: on the cpu backend data() may be the backend's own storage, which transferring would detach.
    for (const [name, g] of r.grads) grads.push({ name, shape: g.shape, data: Float32Array.from((await g.data()) as Float32Array) });
  } finally {
    tf.dispose([...r.grads.values()]);
  }
  return { result: { lossSum: r.lossSum, tokens: r.tokens, grads }, transfer: grads.map((g) => g.data.buffer as ArrayBuffer) };
}

/**
 * Σ loss and Σ gradients of the task's micro-batch through the in-process step's own batchGradientsInto (one batched
 * forward/backward for several sequences): the named objective train() runs, or, without one, next-token TBPTT with
 * the task's segment options (the bench's step).
 */
async function microBatchGradients(
  model: LlamaModel,
  module: MemoryGatingModule,
  task: Extract<WorkerTask, { kind: "gradients" }>,
): Promise<{ lossSum: number; tokens: number; grads: Map<string, tf.Tensor> }> {
  const objective = task.objective ? objectiveByName(task.objective) : nextTokenWithSegmentOptions(task.options);
  const grads = new Map<string, tf.Tensor>();
  const common = { model, module, tbpttSegments: task.tbpttSegments, options: task.objective ? task.objectiveOptions : {} };
  const r = await batchGradientsInto(grads, objective, common, task.sequences.map((s) => ({ ...s, source: "parent" })));
  return { lossSum: r.lossSum, tokens: r.tokens, grads };
}

function endEval(): void {
  for (const p of evalState?.prepared.values() ?? []) p.dispose();
  evalState = null;
}

async function handle(task: WorkerTask): Promise<{ result: unknown; transfer?: ArrayBuffer[] }> {
  const loaded = await loading;
  switch (task.kind) {
    case "ready":
      return { result: null };
    case "setModule":
      setModule(loaded, task.config, task.weights);
      return { result: null };
    case "gradients":
      return gradients(loaded, task);
    case "prepareEval": {
      endEval();
      const prepared = new Map<string, PreparedMethod>();
      evalState = { suite: task.suite, prepared, warmed: new Set() };
      for (const m of task.methods) prepared.set(m.label, prepareMethod(m, loaded.backbone));
      growRope(loaded.model, task.longestTokens);
      return { result: null };
    }
    case "evalSample": {
      if (evalState === null) throw new Error("evalSample requested before prepareEval");
      const method = evalState.prepared.get(task.method)!;
      const ctx = { model: loaded.model, backbone: loaded.backbone, backend: task.backend, taskHash: task.taskHash, methodHash: task.methodHash };
      if (task.warmUp && !evalState.warmed.has(task.method)) {
        await warmUpMethod(evalState.suite, task.sample, method, ctx);
        evalState.warmed.add(task.method);
      }
      return { result: await runSample(evalState.suite, task.sample, method, ctx) };
    }
    case "endEval":
      endEval();
      return { result: null };
  }
}

// Requests are handled strictly one after another (tfjs on one thread; the parent relies on the order).
let queue: Promise<void> = Promise.resolve();
parentPort!.on("message", (request: WorkerRequest) => {
  queue = queue.then(async () => {
    let reply: WorkerReply;
    let transfer: ArrayBuffer[] = [];
    try {
      const r = await handle(request.task);
      reply = { id: request.id, ok: true, result: r.result };
      transfer = r.transfer ?? [];
    } catch (e) {
      reply = { id: request.id, ok: false, error: wireError(e) };
    }
    parentPort!.postMessage(reply, transfer);
  });
});
