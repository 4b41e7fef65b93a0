import * as tf from "../../tf.js";
import { z } from "zod";
import { sequenceGradients, sequenceGradientsBatch, type SequenceGradients } from "../tbptt.js";
import { attentionTransferGradients, attentionTransferGradientsBatch, DEFAULT_ATTENTION_TRANSFER, type AttentionTransferOptions } from "./attention-transfer.js";
import type { Objective } from "./index.js";

/**
 * A weighted mix of the two objectives, for a module that must retrieve (attention transfer) and still model text
 * (next-token loss):
 *
 *   loss = attentionTransfer · L_AT + nextToken · L_NT,   ∇loss = attentionTransfer · ∇L_AT + nextToken · ∇L_NT
 *
 * L_AT is attention-transfer.ts's loss (with its answerWeight and querySpan), L_NT next-token.ts's mean NLL over the
 * sequence's loss-masked targets, each computed by its own objective on the same sequence. A weight of 0 skips that
 * objective's pass.
 */
export interface MixedOptions extends AttentionTransferOptions {
  /** Weight of the attention-transfer loss. */
  attentionTransfer: number;
  /** Weight of the next-token loss. */
  nextToken: number;
}

export const DEFAULT_MIXED: MixedOptions = { attentionTransfer: 1, nextToken: 0.1, ...DEFAULT_ATTENTION_TRANSFER };

/** a·x + b·y over two gradient maps with the same keys; disposes both maps' tensors. */
function weightedSum(a: number, x: Pick<SequenceGradients, "grads"> | null, b: number, y: Pick<SequenceGradients, "grads"> | null): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  const names = new Set([...(x?.grads.keys() ?? []), ...(y?.grads.keys() ?? [])]);
  for (const name of names) {
    const gx = x?.grads.get(name);
    const gy = y?.grads.get(name);
    out.set(name, tf.tidy(() => {
      const parts = [gx ? tf.mul(gx, a) : null, gy ? tf.mul(gy, b) : null].filter((t): t is tf.Tensor => t !== null);
      return parts.length === 1 ? parts[0]! : tf.add(parts[0]!, parts[1]!);
    }));
  }
  for (const g of [...(x?.grads.values() ?? []), ...(y?.grads.values() ?? [])]) g.dispose();
  return out;
}

/** The attention-transfer and next-token parts (a part of weight 0 is skipped); the first's gradients are freed if the second fails. */
async function bothParts<T extends { grads: Map<string, tf.Tensor> }>(
  options: MixedOptions,
  attentionTransferPart: () => Promise<T>,
  nextTokenPart: () => Promise<T>,
): Promise<[T | null, T | null]> {
  const at = options.attentionTransfer > 0 ? await attentionTransferPart() : null;
  try {
    return [at, options.nextToken > 0 ? await nextTokenPart() : null];
  } catch (e) {
    if (at) tf.dispose([...at.grads.values()]);
    throw e;
  }
}

const optionsSchema = z
  .strictObject({
    attentionTransfer: z.number().nonnegative().default(DEFAULT_MIXED.attentionTransfer),
    nextToken: z.number().nonnegative().default(DEFAULT_MIXED.nextToken),
    answerWeight: z.number().positive().default(DEFAULT_MIXED.answerWeight),
    querySpan: z.number().int().nonnegative().default(DEFAULT_MIXED.querySpan),
  })
  .refine((o) => o.attentionTransfer > 0 || o.nextToken > 0, { message: "at least one of attentionTransfer and nextToken must be > 0" });

/** `training.objective: mixed` (options: `attentionTransfer`, `nextToken` weights; `answerWeight`, `querySpan` as attention-transfer's). */
export const mixed: Objective<MixedOptions> = {
  summary: "weighted sum of attention transfer and next-token loss (objectiveOptions.attentionTransfer, .nextToken)",
  optionsSchema,
  gradients: async ({ model, module, sequence, tbpttSegments, options }) => {
    const [at, nt] = await bothParts(
      options,
      () => attentionTransferGradients(model, module, sequence.ids, sequence.lossMask, options),
      () => sequenceGradients(model, module, sequence.ids, tbpttSegments, sequence.lossMask),
    );
    const loss = options.attentionTransfer * (at?.loss ?? 0) + options.nextToken * (nt?.loss ?? 0);
    return { loss, tokens: (at ?? nt)!.tokens, grads: weightedSum(options.attentionTransfer, at, options.nextToken, nt) };
  },
  // B sequences in one forward/backward of each part: Σ_b (a·L_AT,b + b·L_NT,b) and its gradients.
  batchGradients: async ({ model, module, sequences, tbpttSegments, options }) => {
    const [at, nt] = await bothParts(
      options,
      () => attentionTransferGradientsBatch(model, module, sequences, options),
      () => sequenceGradientsBatch(model, module, sequences, tbpttSegments),
    );
    const lossSum = options.attentionTransfer * (at?.lossSum ?? 0) + options.nextToken * (nt?.lossSum ?? 0);
    return { lossSum, tokens: (at ?? nt)!.tokens, grads: weightedSum(options.attentionTransfer, at, options.nextToken, nt) };
  },
};
