import * as tf from "../tf.js";
import { clipByGlobalNorm } from "./adamw.js";
import { learningRate } from "./schedule.js";
import { sequencesPerStep } from "./data.js";
import { checkFinite } from "./step-checks.js";
import type { TrainRun } from "./run.js";
import type { TrainingSequence } from "./data.js";
import { equalLengthBatches } from "../backbone/nll.js";
import { parallelGradients } from "../parallel/gradients.js";
import type { Objective, ObjectiveInputs } from "./objectives/index.js";
import { addGradients, divideGradients } from "./gradient-sums.js";

/** What one optimizer step did. */
export interface StepResult {
  /** Mean of the micro-batches' losses. */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  lr: number;
  /** Input tokens processed. */
  tokens: number;
}

const BAD_STEP_HINT = "lower training.optimizer.lr or training.gradClip";

/**
 * One optimizer step (`step` is 0-based): the objective's gradients for each of the step's `batchSize ×
 * gradAccumulation` sequences, summed and averaged, clipped to the global norm `gradClip`, and applied by AdamW at
 * the scheduled learning rate. A non-finite loss or gradient norm stops it before the optimizer applies anything.
 */
export async function trainStep(run: TrainRun, step: number): Promise<StepResult> {
  const t = run.recipe.training;
  const lr = learningRate(step, t.optimizer.lr, t.schedule.warmupSteps, t.steps, t.schedule.minLrRatio);
  const micro = sequencesPerStep(run.recipe);
  const grads = new Map<string, tf.Tensor>();
  // One try from the first micro-batch on: whatever throws (a later micro-batch, a non-finite loss or norm, the
  // optimiser), the gradients accumulated so far are freed.
  try {
    if (run.pool) {
      // Same batches, same sums in the same order on worker threads (src/parallel/gradients.ts): already averaged.
      const r = await parallelGradients(run.pool, run.module, stepBatches(run, step, micro), {
        tbpttSegments: run.tbpttSegments,
        objective: t.objective,
        objectiveOptions: t.objectiveOptions,
      });
      for (const [k, g] of r.grads) grads.set(k, g);
      return await applyStep(run, grads, r.loss, lr, r.tokens);
    }
    // training.batchSize sequences per forward/backward (equal lengths), gradAccumulation such batches in turn.
    const common = { model: run.model, module: run.module, tbpttSegments: run.tbpttSegments, options: t.objectiveOptions };
    const { lossSum, tokens } = await batchesGradientsInto(grads, run.objective, common, stepBatches(run, step, micro));
    divideGradients(grads, micro);
    return await applyStep(run, grads, lossSum / micro, lr, tokens);
  } finally {
    tf.dispose([...grads.values()]);
  }
}

/**
 * The objective's gradients of one batch of equal-length sequences, added into `grads`: one batched forward/backward
 * when the batch has several sequences and the objective can batch, else one sequence at a time. Returns the sum of
 * the sequences' losses and their input tokens.
 */
export async function batchGradientsInto(
  grads: Map<string, tf.Tensor>,
  objective: Objective<unknown>,
  common: Omit<ObjectiveInputs<unknown>, "sequence">,
  batch: readonly TrainingSequence[],
): Promise<{ lossSum: number; tokens: number }> {
  let lossSum = 0;
  let tokens = 0;
  if (batch.length === 1 || !objective.batchGradients) {
    for (const sequence of batch) {
      const r = await objective.gradients({ ...common, sequence });
      lossSum += r.loss;
      tokens += sequence.ids.length - 1;
      addGradients(grads, r.grads);
    }
  } else {
    const r = await objective.batchGradients({ ...common, sequences: batch });
    lossSum += r.lossSum;
    for (const sequence of batch) tokens += sequence.ids.length - 1;
    addGradients(grads, r.grads);
  }
  return { lossSum, tokens };
}

/** batchGradientsInto for each batch in turn (gradient accumulation): Σ of their losses and input tokens. */
export async function batchesGradientsInto(
  grads: Map<string, tf.Tensor>,
  objective: Objective<unknown>,
  common: Omit<ObjectiveInputs<unknown>, "sequence">,
  batches: readonly (readonly TrainingSequence[])[],
): Promise<{ lossSum: number; tokens: number }> {
  let lossSum = 0;
  let tokens = 0;
  for (const batch of batches) {
    const r = await batchGradientsInto(grads, objective, common, batch);
    lossSum += r.lossSum;
    tokens += r.tokens;
  }
  return { lossSum, tokens };
}

/** Checks, clips and applies the averaged gradients of one step (they stay the caller's to free). */
async function applyStep(run: TrainRun, grads: Map<string, tf.Tensor>, loss: number, lr: number, tokens: number): Promise<StepResult> {
  await checkFinite(loss, "training loss", BAD_STEP_HINT);
  const gradNorm = await clipByGlobalNorm(grads, run.recipe.training.gradClip);
  await checkFinite(gradNorm, "gradient norm", BAD_STEP_HINT);
  run.optimizer.apply(run.module.trainableVariables(), grads, lr);
  return { loss, gradNorm, lr, tokens };
}

/**
 * The step's `micro` sequences in sampling order, cut into batches of training.batchSize; a batch whose sequences
 * differ in length is split further into equal-length ones (the batched forward takes no padding).
 */
function stepBatches(run: TrainRun, step: number, micro: number): TrainingSequence[][] {
  const size = run.recipe.training.batchSize;
  const out: TrainingSequence[][] = [];
  for (let i0 = 0; i0 < micro; i0 += size) {
    const batch = Array.from({ length: Math.min(size, micro - i0) }, (_, j) => run.sample(step, i0 + j));
    out.push(...equalLengthBatches(batch, size));
  }
  return out;
}
