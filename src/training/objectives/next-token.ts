import { z } from "zod";
import { sequenceGradients, sequenceGradientsBatch } from "../tbptt.js";
import type { Objective } from "./index.js";

/** No options: `training.objectiveOptions` must be empty. */
export const nextTokenOptionsSchema = z.strictObject({});

/**
 * The language-modelling objective: mean negative log-likelihood of the sequence's (masked) next tokens through
 * EdgeInfinite, with segment-wise truncated backprop (src/training/tbptt.ts).
 */
export const nextToken: Objective<z.infer<typeof nextTokenOptionsSchema>> = {
  summary: "mean NLL of the next tokens (loss-masked), segment-wise TBPTT",
  optionsSchema: nextTokenOptionsSchema,
  gradients: ({ model, module, sequence, tbpttSegments }) => sequenceGradients(model, module, sequence.ids, tbpttSegments, sequence.lossMask),
  batchGradients: ({ model, module, sequences, tbpttSegments }) => sequenceGradientsBatch(model, module, sequences, tbpttSegments),
};
