import type { z } from "zod";
import type { LlamaModel } from "../../backbone/model.js";
import type { MemoryGatingModule } from "../../memory/module.js";
import type { TrainingSequence } from "../data.js";
import type { BatchGradients, SequenceGradients } from "../tbptt.js";
import { nextToken } from "./next-token.js";
import { attentionTransfer } from "./attention-transfer.js";
import { mixed } from "./mixed.js";

/** What an objective gets for one training sequence. */
export interface ObjectiveInputs<Options> {
  /** The frozen backbone. */
  model: LlamaModel;
  /** The memory-gating module being trained (its trainableVariables are what the gradients are for). */
  module: MemoryGatingModule;
  /** ids (sequenceLength + 1: inputs and shifted targets) and the loss mask (1 = the target counts). */
  sequence: TrainingSequence;
  /** k of segment-wise truncated backprop through time (`training.tbpttSegments`, `all` = MAX_SAFE_INTEGER). */
  tbpttSegments: number;
  /** `training.objectiveOptions`, parsed by the objective's optionsSchema. */
  options: Options;
}

/**
 * A training objective: how one sequence's loss and its gradients with respect to the module's trainable variables
 * are computed. The trainer sums them over a step's micro-batches, averages, clips and applies them. An objective is
 * added by one file exporting an Objective and one line in OBJECTIVES.
 */
export interface Objective<Options = unknown> {
  /** One line for docs and errors. */
  summary: string;
  /** Validates `training.objectiveOptions` (defaults applied); a strict object, so unknown keys are errors. */
  optionsSchema: z.ZodType<Options>;
  /** Loss (a mean over the sequence's counted targets) and gradients, one per trainable variable; caller disposes. */
  gradients(inputs: ObjectiveInputs<Options>): Promise<SequenceGradients>;
  /**
   * The same for several equal-length sequences in one forward/backward (`training.batchSize`): Σ of their losses
   * and of their gradients. Objectives without it get their sequences one by one.
   */
  batchGradients?(inputs: Omit<ObjectiveInputs<Options>, "sequence"> & { sequences: readonly TrainingSequence[] }): Promise<BatchGradients>;
}

/** Every objective by its recipe name (`training.objective`). */
export const OBJECTIVES = {
  "next-token": nextToken,
  "attention-transfer": attentionTransfer,
  mixed,
} as const satisfies Record<string, Objective<unknown>>;

export type ObjectiveName = keyof typeof OBJECTIVES;

export const OBJECTIVE_NAMES = Object.keys(OBJECTIVES) as [ObjectiveName, ...ObjectiveName[]];

/** The objective named `name` with its options typed loosely (the trainer passes what optionsSchema parsed). */
export function objectiveByName(name: ObjectiveName): Objective<unknown> {
  return OBJECTIVES[name];
}
