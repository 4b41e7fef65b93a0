import type { KVCache } from "../backbone/kv-cache.js";
import type { CachePolicy, CompressContext } from "./policy.js";
import { keepTokens } from "./keep-tokens.js";
import { indexRange, topIndices } from "./top-k.js";

/**
 * Scores of one layer's S cached tokens: per KV head (scores[h * S + i]) or, when `shared`, one row [S] that every
 * head uses (the heads then keep the same tokens). Higher = more worth keeping.
 */
export interface TokenScores {
  scores: ArrayLike<number>;
  shared?: boolean;
}

/**
 * What a scoring method says (kvpress's ScorerPress.score): how much each cached token is worth keeping. The
 * scorer base (scorerPolicy) does the rest — budget, the protected most recent tokens, top-k, eviction.
 */
export interface TokenScorer {
  /**
   * Scores of layer's cached tokens. `protect`: the newest tokens the base keeps whatever their score (a scorer
   * may use them, as SnapKV's observation window does).
   */
  score(layer: number, cache: KVCache, ctx: CompressContext, protect: number): TokenScores | Promise<TokenScores>;
  /** The newest tokens always kept (default none); may depend on the step (SnapKV's window ≤ its queries). */
  protectRecent?(budget: number, ctx: CompressContext): number;
  /** Attention probabilities, when the scorer accumulates them (see CachePolicy.observe). */
  observe?: CachePolicy["observe"];
  /** Told which tokens stayed (KVCache.keep's layout), for scorers whose state follows the tokens (H2O). */
  kept?(layer: number, keep: Int32Array, n: number): void;
  dispose?(): void;
  /** Scores the context before the question is seen (see CachePolicy.contextOnly). */
  contextOnly?: boolean;
}

/**
 * What a layer keeps, in KVCache.keep's layout: n slots per KV head (keep[h * n + j], cache indices), `masked`
 * marking the slots that only pad a head keeping fewer than n tokens.
 */
export interface KeptSlots {
  keep: Int32Array;
  n: number;
  masked?: Uint8Array;
}

/**
 * How a layer's kept tokens follow from its scores: `budget` tokens per KV head on average, the `protect` newest
 * ones always kept.
 */
export type Selection = (s: TokenScores, numKvHeads: number, length: number, budget: number, protect: number) => KeptSlots;

export interface ScorerPolicyOptions {
  name: string;
  /** Tokens a layer keeps. */
  budgetFor(layer: number, numLayers: number): number;
  /** Score even when the layer fits its budget (scorers that accumulate per step, as H2O). */
  scoreAlways?: boolean;
  /** The selection (default: the per-head top-k of keptByScore; AdaKV's spreads the budget over the heads). */
  select?: Selection;
}

/**
 * Per KV head: the top (budget − protect) of the older tokens by score, then the `protect` newest, ascending as the
 * cache stores them. Ties go to the earlier token.
 */
export function keptByScore(s: TokenScores, numKvHeads: number, length: number, budget: number, protect: number): Int32Array {
  const older = length - protect;
  const keep = new Int32Array(numKvHeads * budget);
  const sharedRow = s.shared ? topIndices(s.scores, 0, older, budget - protect) : null;
  for (let h = 0; h < numKvHeads; h++) {
    const top = sharedRow ?? topIndices(s.scores, h * length, older, budget - protect);
    keep.set([...top, ...indexRange(older, protect)], h * budget);
  }
  return keep;
}

/**
 * The scorer base (kvpress ScorerPress): after a layer attended, when it holds more than its budget, keeps per
 * KV head the best-scored tokens plus the protected recent ones (or what options.select picks). Evicts at prefill
 * and at every decode step once over budget; wrap it in prefillOnly for kvpress's prefill-only behaviour.
 */
export function scorerPolicy(scorer: TokenScorer, options: ScorerPolicyOptions): CachePolicy {
  const policy: CachePolicy = {
    name: options.name,
    ...(scorer.contextOnly ? { contextOnly: true } : {}),
    async compress(layer, cache, ctx) {
      const length = cache.length(layer);
      const budget = options.budgetFor(layer, ctx.numLayers);
      if (length <= budget && !options.scoreAlways) return;
      const protect = Math.min(scorer.protectRecent?.(budget, ctx) ?? 0, budget);
      const scores = await scorer.score(layer, cache, ctx, protect);
      if (length <= budget) return;
      const slots = options.select
        ? options.select(scores, cache.numKvHeads, length, budget, protect)
        : { keep: keptByScore(scores, cache.numKvHeads, length, budget, protect), n: budget };
      keepTokens(cache, layer, slots.keep, slots.n, slots.masked);
      scorer.kept?.(layer, slots.keep, slots.n);
    },
    budgetFor: options.budgetFor,
  };
  if (scorer.observe) policy.observe = scorer.observe.bind(scorer);
  if (scorer.dispose) policy.dispose = scorer.dispose.bind(scorer);
  return policy;
}

/** A layer's cached keys or values [Hkv, S, d] on the host (an async read: scorers of keys/values call it). */
export async function layerData(cache: KVCache, layer: number, which: "k" | "v"): Promise<Float32Array> {
  const t = cache.layers[layer]![which];
  if (!t) return new Float32Array(0);
  return (await t.data()) as Float32Array;
}
