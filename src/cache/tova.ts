import * as tf from "../tf.js";
import type { CachePolicy } from "./policy.js";
import { scorerPolicy, type TokenScorer } from "./scorer.js";
import { requireCount } from "./options.js";
import { evictionMethod } from "./method.js";

export interface TOVAOptions {
  /** Tokens per layer (all KV heads keep the same tokens). */
  budgetTokens: number;
}

/**
 * TOVA's score [S]: the softmax attention of the step's LAST query over all S cached keys, averaged over every query
 * head (TOVA ranks tokens once per layer, not per head). q [H, T, d] rotated, kRot [Hkv, S, d] rotated; the last
 * query sees every key, so no mask is needed.
 */
export async function tovaScores(q: tf.Tensor3D, kRot: tf.Tensor3D): Promise<Float32Array> {
  const [H, T, d] = q.shape;
  const [Hkv, S] = kRot.shape;
  const mean = tf.tidy(() => {
    const last = tf.slice(q, [0, T - 1, 0], [H, 1, d]).reshape([Hkv, H / Hkv, d]);
    const probs = tf.softmax(tf.mul(tf.matMul(last, kRot, false, true), 1 / Math.sqrt(d))); // [Hkv, g, S]
    return tf.mean(probs.reshape([H, S]), 0);
  });
  try {
    return (await mean.data()) as Float32Array;
  } finally {
    mean.dispose();
  }
}

/**
 * TOVA, Token Omission Via Attention (Oren et al., arXiv 2401.06104; kvpress tova_press.py): keeps the tokens the
 * current query attends to most (averaged over heads, the same tokens in every head). At prefill keeps the top
 * budget by the last prompt query; in decode, once over budget, drops the single lowest-scored token each step (the
 * new token competes too, as in TOVA; kvpress instead always keeps the last token). Original positions.
 */
export function tovaPolicy(options: TOVAOptions): CachePolicy {
  const budget = requireCount("tova", "budgetTokens", options.budgetTokens, 1);
  const scorer: TokenScorer = { score: async (_layer, _cache, ctx) => ({ scores: await tovaScores(ctx.q, ctx.kRot), shared: true }) };
  return scorerPolicy(scorer, { name: "tova", budgetFor: () => budget });
}

export const tovaMethod = evictionMethod({
  evictsWhileDecoding: true,
  name: "tova",
  summary: "TOVA: keeps the tokens the current query attends to most (head-averaged), evicted at every step",
  paper: "Oren et al., Transformers are Multi-State RNNs, arXiv 2401.06104",
  budget: "required",
  options: {},
  makePolicy: (o) => tovaPolicy(o as TOVAOptions),
});
