import * as tf from "../tf.js";
import { causalMask } from "../backbone/attention.js";
import { prefillOnly, type CachePolicy, type CompressContext } from "./policy.js";
import { scorerPolicy, type TokenScorer } from "./scorer.js";
import { countOr, requireCount } from "./options.js";
import { fail } from "../util/errors.js";
import { z } from "zod";
import { evictionMethod } from "./method.js";

export interface SnapKVOptions extends SnapKVSettingsOptions {
  /** Tokens per layer after prefill, the observation window included. */
  budgetTokens: number;
}

export const DEFAULT_OBSERVATION_WINDOW = 32;
export const DEFAULT_KERNEL_SIZE = 5;

/**
 * SnapKV's vote of the observation window for the earlier keys, [Hkv · (S − w)] head-major:
 * softmax(q_w · kᵀ/√d) over all S keys (causal inside the window), the first S − w columns averaged over the w
 * window queries, max-pooled over key positions (width kernelSize, same padding) per query head, then averaged
 * over each KV head's group (kvpress order: pool per query head, then group mean).
 * q: rotated queries [H, T, d] whose last w rows are the window; kRot: rotated keys [Hkv, S, d], the last T being
 * the queries' own tokens.
 */
export async function snapkvScores(q: tf.Tensor3D, kRot: tf.Tensor3D, window: number, kernelSize: number): Promise<Float64Array> {
  const [H, T, d] = q.shape;
  const [Hkv, S] = kRot.shape;
  const g = H / Hkv;
  const w = window;
  if (w < 1 || w > T || w >= S) throw new Error(`snapkv: window ${w} needs 1 ≤ w ≤ ${T} queries and < ${S} keys`);
  const earlier = S - w;
  const meanProbs = tf.tidy(() => {
    const qw = tf.slice(q, [0, T - w, 0], [H, w, d]).reshape([Hkv, g * w, d]);
    const logits = tf.mul(tf.matMul(qw, kRot, false, true), 1 / Math.sqrt(d)).reshape([Hkv, g, w, S]);
    const probs = tf.softmax(tf.add(logits, causalMask(0, w, S - w, S)));
    return tf.mean(tf.slice(probs, [0, 0, 0, 0], [Hkv, g, w, earlier]), 2); // [Hkv, g, earlier]
  });
  let mean: Float32Array;
  try {
    mean = (await meanProbs.data()) as Float32Array;
  } finally {
    meanProbs.dispose();
  }
  const half = Math.floor(kernelSize / 2);
  const scores = new Float64Array(Hkv * earlier);
  for (let kv = 0; kv < Hkv; kv++) {
    for (let j = 0; j < g; j++) {
      const row = (kv * g + j) * earlier;
      for (let i = 0; i < earlier; i++) {
        // Padding never wins: probabilities are ≥ 0, so max over the in-range part equals torch's -inf padding.
        let m = -Infinity;
        for (let t = Math.max(0, i - half); t <= Math.min(earlier - 1, i + half); t++) m = Math.max(m, mean[row + t]!);
        scores[kv * earlier + i]! += m / g;
      }
    }
  }
  return scores;
}

/**
 * Which queries vote: "question", the last prompt tokens, question included (SnapKV's paper, the default);
 * "context", the last tokens before the question, which the method then never sees (kvpress compresses the
 * context alone; see CachePolicy.contextOnly).
 */
export type SnapKVObservation = "question" | "context";

/** Parsed SnapKV settings shared with PyramidKV. */
export interface SnapKVSettings {
  observationWindow: number;
  kernelSize: number;
  observation: SnapKVObservation;
}

/** SnapKV's own options as a method entry gives them (SnapKV, PyramidKV, and wrappers over SnapKV's scorer). */
export interface SnapKVSettingsOptions {
  /** The last prompt queries whose attention votes (default 32); shrinks to the budget when the budget is smaller. */
  observationWindow?: number;
  /** Odd width of the 1-D max pooling over key positions (default 5). */
  kernelSize?: number;
  /** Which queries vote (default "question"; see SnapKVObservation). */
  observation?: SnapKVObservation;
}

/** The schema of SnapKVSettingsOptions, for the methods that take them. */
export const snapkvOptionShape = {
  observationWindow: z.number().int().positive().optional(),
  kernelSize: z.number().int().positive().optional(),
  observation: z.enum(["question", "context"]).optional(),
};

export function snapkvSettings(method: string, options: SnapKVSettingsOptions): SnapKVSettings {
  const observationWindow = countOr(method, "observationWindow", options.observationWindow, DEFAULT_OBSERVATION_WINDOW, 1);
  const kernelSize = countOr(method, "kernelSize", options.kernelSize, DEFAULT_KERNEL_SIZE, 1);
  if (kernelSize % 2 === 0) fail(`method ${method}: kernelSize ${kernelSize} must be odd (same padding)`, `use ${kernelSize + 1}`);
  const observation = options.observation ?? "question";
  if (observation !== "question" && observation !== "context") {
    fail(`method ${method}: observation must be "question" or "context", got ${JSON.stringify(observation)}`, 'use observation "context" to compress without the question');
  }
  return { observationWindow, kernelSize, observation };
}

/** SnapKV's observation window at this step: the last min(observationWindow, budget, T) queries. */
export function snapkvWindow(settings: SnapKVSettings, budget: number, ctx: CompressContext): number {
  return Math.min(settings.observationWindow, budget, ctx.q.shape[1]);
}

/**
 * SnapKV's scorer: the window's vote for the earlier tokens (the window itself is what the base protects; its
 * own scores are 0 and never compared).
 */
export function snapkvScorer(settings: SnapKVSettings): TokenScorer {
  return {
    ...(settings.observation === "context" ? { contextOnly: true } : {}),
    protectRecent: (budget, ctx) => snapkvWindow(settings, budget, ctx),
    async score(layer, cache, ctx, window) {
      const length = cache.length(layer);
      if (ctx.kRot.shape[1] !== length) throw new Error(`snapkv: kRot has ${ctx.kRot.shape[1]} keys, cache ${length}`);
      const earlier = length - window;
      const votes = await snapkvScores(ctx.q, ctx.kRot, window, settings.kernelSize);
      const scores = new Float64Array(cache.numKvHeads * length);
      for (let h = 0; h < cache.numKvHeads; h++) scores.set(votes.subarray(h * earlier, (h + 1) * earlier), h * length);
      return { scores };
    },
  };
}

/**
 * SnapKV (Li et al., arXiv 2404.14469; kvpress snapkv_press.py): after prefill, the last prompt queries vote for
 * the earlier tokens; keep the top per KV head plus the window. Original positions; no eviction during decode
 * (prefillOnly), so a layer holds budgetTokens after prefill plus one token per decoded step.
 */
export function snapkvPolicy(options: SnapKVOptions): CachePolicy {
  const budget = requireCount("snapkv", "budgetTokens", options.budgetTokens, 1);
  const settings = snapkvSettings("snapkv", options);
  return prefillOnly(
    scorerPolicy(snapkvScorer(settings), { name: "snapkv", budgetFor: () => budget }),
  );
}

export const snapkvMethod = evictionMethod({
  name: "snapkv",
  summary: "SnapKV: the prompt's last queries vote (max-pooled) for the tokens to keep, once after prefill",
  paper: "Li et al., SnapKV: LLM Knows What You are Looking for Before Generation, arXiv 2404.14469 (kvpress snapkv_press.py)",
  budget: "required",
  options: snapkvOptionShape,
  makePolicy: (o) => snapkvPolicy(o as SnapKVOptions),
});
