/**
 * Data-parallel module gradients: the micro-batches of one optimiser step spread over a WorkerPool, each worker
 * computing its micro-batch's gradients with the module's current weights — one sequence, or several of equal length
 * in one batched forward/backward (workers × batch) — and the parent summing the results in micro-batch order, never
 * arrival order, with the same float32 adds and the same final division as train()'s in-process loop. So the result
 * is bit-identical to that loop, whatever the timing.
 */
import * as tf from "../tf.js";
import type { LlamaModel } from "../backbone/model.js";
import type { MemoryGatingModule } from "../memory/module.js";
import { sequenceGradients } from "../training/tbptt.js";
import { addGradient, addGradients, divideGradients } from "../training/gradient-sums.js";
import type { ObjectiveName } from "../training/objectives/index.js";
import type { SegmentOptions } from "../memory/edgeinfinite-attention.js";
import { runInOrder, type WorkerPool } from "./pool.js";
import type { GradientsResult, WireSequence, WireTensor } from "./protocol.js";

/** The loss settings of a step (as train() passes them to sequenceGradients). */
export interface GradientObjective {
  /** Segments per TBPTT block (Number.MAX_SAFE_INTEGER for full BPTT). */
  tbpttSegments: number;
  options?: SegmentOptions;
  /** A training objective by name (src/training/objectives) with its parsed options; default next-token TBPTT. */
  objective?: ObjectiveName;
  objectiveOptions?: unknown;
}

export interface StepGradients {
  /** Mean over micro-batches of each sequence's mean loss (train()'s lossSum / micro). */
  loss: number;
  /** Input tokens processed, Σ (ids.length − 1), as train() counts them for tokens/s. */
  tokens: number;
  /** Mean over micro-batches of the gradients (Σ in micro-batch order, then ÷ count); caller disposes. */
  grads: Map<string, tf.Tensor>;
}

/**
 * The same step in this process, one micro-batch after another (what train() does today, and what a 1-worker run
 * should call): the reference parallelGradients is bit-identical to.
 */
export async function stepGradients(
  model: LlamaModel,
  module: MemoryGatingModule,
  sequences: readonly WireSequence[],
  objective: GradientObjective,
): Promise<StepGradients> {
  if (sequences.length === 0) throw new Error("stepGradients: no sequences");
  const grads = new Map<string, tf.Tensor>();
  let lossSum = 0;
  let tokens = 0;
  try {
    for (const s of sequences) {
      const r = await sequenceGradients(model, module, s.ids, objective.tbpttSegments, s.lossMask, objective.options ?? {});
      lossSum += r.loss;
      tokens += s.ids.length - 1;
      addGradients(grads, r.grads);
    }
    divideGradients(grads, sequences.length);
  } catch (e) {
    tf.dispose([...grads.values()]);
    throw e;
  }
  return { loss: lossSum / sequences.length, tokens, grads };
}

/** The module's trainable weights, read once, as a fresh set of buffers per worker (transferred, not copied). */
async function weightCopies(module: MemoryGatingModule, copies: number): Promise<WireTensor[][]> {
  const read: { name: string; shape: number[]; data: Float32Array }[] = [];
  for (const [name, v] of module.trainableVariables()) read.push({ name, shape: v.shape, data: (await v.data()) as Float32Array });
  return Array.from({ length: copies }, () => read.map((t) => ({ name: t.name, shape: t.shape, data: Float32Array.from(t.data) })));
}

/**
 * Gradients of one step for `module`, computed on the pool's workers. `batches` are the step's micro-batches in
 * order, each a list of equal-length sequences that one worker runs in one forward/backward (a list of one: one
 * sequence, as train() runs with batchSize 1). The pool must have been made for the module's backbone. Micro-batch
 * i's gradient sum is added to the running sum only after those of 0..i−1, as `acc = acc + g_i` in float32 on this
 * process's backend, then divided by the number of sequences: exactly the operations of train()'s in-process
 * accumulation.
 */
export async function parallelGradients(
  pool: WorkerPool,
  module: MemoryGatingModule,
  batches: readonly (readonly WireSequence[])[],
  objective: GradientObjective,
): Promise<StepGradients> {
  const count = batches.reduce((n, b) => n + b.length, 0);
  if (batches.length === 0 || batches.some((b) => b.length === 0)) throw new Error("parallelGradients: no sequences, or an empty micro-batch");
  const copies = await weightCopies(module, pool.size);
  await pool.broadcast((i) => ({ task: { kind: "setModule", config: module.config, weights: copies[i]! }, transfer: copies[i]!.map((w) => w.data.buffer as ArrayBuffer) }));
  const grads = new Map<string, tf.Tensor>();
  let lossSum = 0;
  let tokens = 0;
  try {
    await runInOrder(
      pool,
      batches.length,
      (i, worker) => {
        const wire = batches[i]!.map((s): WireSequence => ({ ids: s.ids, ...(s.lossMask !== undefined ? { lossMask: s.lossMask } : {}) }));
        return pool.call<GradientsResult>(worker, {
          kind: "gradients",
          sequences: wire,
          tbpttSegments: objective.tbpttSegments,
          options: objective.options ?? {},
          ...(objective.objective ? { objective: objective.objective, objectiveOptions: objective.objectiveOptions } : {}),
        });
      },
      (r) => {
        lossSum += r.lossSum;
        tokens += r.tokens;
        for (const w of r.grads) addGradient(grads, w.name, tf.tensor(w.data, w.shape));
      },
    );
    divideGradients(grads, count);
  } catch (e) {
    tf.dispose([...grads.values()]);
    throw e;
  }
  return { loss: lossSum / count, tokens, grads };
}
