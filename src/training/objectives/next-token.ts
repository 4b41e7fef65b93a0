import { z } from "zod";
import { sequenceGradients, sequenceGradientsBatch } from "../tbptt.js";
import type { SegmentOptions } from "../../memory/edgeinfinite-attention.js";
import type { Objective } from "./index.js";

/** No options: `training.objectiveOptions` must be empty. */
export const nextTokenOptionsSchema = z.strictObject({});

/**
 * The language-modelling objective: mean negative log-likelihood of the sequence's (masked) next tokens through
 * EdgeInfinite, with segment-wise truncated backprop (src/training/tbptt.ts).
 */
export const nextToken: Objective<z.infer<typeof nextTokenOptionsSchema>> = nextTokenWithSegmentOptions({});

/**
 * Next-token loss with the EdgeInfinite segment step's options fixed (attention switches the benchmarks set); with
 * none it is `nextToken`. Pool workers run the bench's step through it.
 */
export function nextTokenWithSegmentOptions(segment: SegmentOptions): Objective<z.infer<typeof nextTokenOptionsSchema>> {
  return {
    summary: "mean NLL of the next tokens (loss-masked), segment-wise TBPTT",
    optionsSchema: nextTokenOptionsSchema,
    gradients: ({ model, module, sequence, tbpttSegments }) => sequenceGradients(model, module, sequence.ids, tbpttSegments, sequence.lossMask, segment),
    batchGradients: ({ model, module, sequences, tbpttSegments }) => sequenceGradientsBatch(model, module, sequences, tbpttSegments, segment),
  };
}
