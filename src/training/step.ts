import * as tf from "../tf.js";
import { clipByGlobalNorm } from "./adamw.js";
import { learningRate } from "./schedule.js";
import { sequencesPerStep } from "./data.js";
import { checkFinite } from "./step-checks.js";
import type { TrainRun } from "./run.js";

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
  let lossSum = 0;
  let tokens = 0;
  // One try from the first micro-batch on: whatever throws (a later micro-batch, a non-finite loss or norm, the
  // optimiser), the gradients accumulated so far are freed.
  try {
    for (let i = 0; i < micro; i++) {
      const sequence = run.sample(step, i);
      const r = await run.objective.gradients({
        model: run.model,
        module: run.module,
        sequence,
        tbpttSegments: run.tbpttSegments,
        options: t.objectiveOptions,
      });
      lossSum += r.loss;
      tokens += sequence.ids.length - 1;
      for (const [k, g] of r.grads) {
        const acc = grads.get(k);
        grads.set(k, acc ? tf.tidy(() => tf.add(acc, g)) : g);
        if (acc) {
          acc.dispose();
          g.dispose();
        }
      }
    }
    const loss = lossSum / micro;
    await checkFinite(loss, "training loss", BAD_STEP_HINT);
    for (const [k, g] of grads) {
      grads.set(k, tf.tidy(() => tf.div(g, micro)));
      g.dispose();
    }
    const gradNorm = await clipByGlobalNorm(grads, t.gradClip);
    await checkFinite(gradNorm, "gradient norm", BAD_STEP_HINT);
    run.optimizer.apply(run.module.trainableVariables(), grads, lr);
    return { loss, gradNorm, lr, tokens };
  } finally {
    tf.dispose([...grads.values()]);
  }
}
