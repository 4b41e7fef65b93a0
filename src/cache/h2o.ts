import * as tf from "../tf.js";
import type { KVCache } from "../backbone/kv-cache.js";
import type { CachePolicy } from "./policy.js";
import { scorerPolicy, type TokenScorer, type TokenScores } from "./scorer.js";
import { countOr, requireCount } from "./options.js";
import { fail } from "../util/errors.js";
import { z } from "zod";
import { evictionMethod } from "./method.js";

export interface H2OOptions {
  /** Tokens per layer after eviction: heavy hitters + recent tokens. */
  budgetTokens: number;
  /** The most recent tokens always kept; default half the budget (H2O's equal heavy/recent split). */
  recentTokens?: number;
}

/** Accumulated attention of one layer: scores[h * length + i] for cached token i of KV head h. */
interface LayerScores {
  scores: Float64Array;
  length: number;
}

/**
 * H2O's score, Heavy-Hitter Oracle (Zhang et al., arXiv 2306.14048): each cached token's score is the sum of the
 * softmax probability it received from every query so far (prefill and decode), per KV head summed over the
 * group's query heads. Scores follow the tokens they belong to through every eviction.
 */
export class H2OScorer implements TokenScorer {
  constructor(readonly recentTokens: number) {}

  protectRecent(): number {
    return this.recentTokens;
  }

  private layers: LayerScores[] = [];
  /** Per layer: attention received [Hkv, keys] per observed block, not yet added to the scores. */
  private observed: tf.Tensor2D[][] = [];

  /**
   * A copy of the accumulated scores of `layer`, [Hkv · length] head-major, aligned with the cache (attention
   * observed in a layer is added by that layer's compress).
   */
  accumulatedScores(layer: number): Float64Array {
    return (this.layers[layer]?.scores ?? new Float64Array(0)).slice();
  }

  private layerScores(layer: number, numKvHeads: number, length: number): LayerScores {
    let L = this.layers[layer];
    if (!L) L = this.layers[layer] = { scores: new Float64Array(0), length: 0 };
    if (length > L.length) {
      // New tokens enter with score 0, each head's row widened in place.
      const grown = new Float64Array(numKvHeads * length);
      for (let h = 0; h < numKvHeads; h++) grown.set(L.scores.subarray(h * L.length, (h + 1) * L.length), h * length);
      L.scores = grown;
      L.length = length;
    }
    return L;
  }

  observe(layer: number, probs: tf.Tensor4D, _phase: "prefill" | "decode"): void {
    // Column sums over the group's query heads and the block's queries: what each key received [Hkv, keys].
    // Kept on the device; score() reads them (asynchronously) before the base evicts.
    const received = tf.keep(tf.sum(probs, [1, 2]) as tf.Tensor2D);
    (this.observed[layer] ??= []).push(received);
  }

  /** Adds the attention observed in `layer` since the last call to its scores (async read, then disposed). */
  private async foldObserved(layer: number, numKvHeads: number): Promise<void> {
    const list = this.observed[layer];
    if (!list || list.length === 0) return;
    this.observed[layer] = [];
    try {
      for (const received of list) {
        const keys = received.shape[1];
        const data = await received.data();
        const L = this.layerScores(layer, numKvHeads, keys);
        for (let h = 0; h < numKvHeads; h++) {
          for (let i = 0; i < keys; i++) L.scores[h * L.length + i]! += data[h * keys + i]!;
        }
      }
    } finally {
      tf.dispose(list);
    }
  }

  async score(layer: number, cache: KVCache): Promise<TokenScores> {
    const length = cache.length(layer);
    await this.foldObserved(layer, cache.numKvHeads);
    const L = this.layerScores(layer, cache.numKvHeads, length);
    if (L.length !== length) throw new Error(`h2o: layer ${layer} has ${L.length} scores for ${length} cached tokens`);
    return { scores: L.scores };
  }

  kept(layer: number, keep: Int32Array, n: number): void {
    const L = this.layers[layer]!;
    const kept = new Float64Array(keep.length);
    for (let j = 0; j < keep.length; j++) kept[j] = L.scores[Math.floor(j / n) * L.length + keep[j]!]!;
    L.scores = kept;
    L.length = n;
  }

  dispose(): void {
    this.layers = [];
    for (const list of this.observed) if (list) tf.dispose(list);
    this.observed = [];
  }
}

export type H2OPolicy = CachePolicy & Pick<H2OScorer, "observe" | "accumulatedScores">;

/**
 * H2O: keeps the recentTokens newest plus the highest-scoring others, per KV head. Original positions.
 * Evicts after prefill and after every decode step once over budget.
 */
export function h2oPolicy(options: H2OOptions): H2OPolicy {
  const budgetTokens = requireCount("h2o", "budgetTokens", options.budgetTokens, 1);
  const recentTokens = countOr("h2o", "recentTokens", options.recentTokens, Math.floor(budgetTokens / 2), 0);
  if (recentTokens > budgetTokens) fail(`method h2o: recentTokens ${recentTokens} > budget ${budgetTokens}`, "use recentTokens ≤ the budget");
  const scorer = new H2OScorer(recentTokens);
  const policy = scorerPolicy(scorer, { name: "h2o", budgetFor: () => budgetTokens, scoreAlways: true });
  return { ...policy, observe: (l, p, ph) => scorer.observe(l, p, ph), accumulatedScores: (l) => scorer.accumulatedScores(l) };
}

export const h2oMethod = evictionMethod({
  evictsWhileDecoding: true,
  name: "h2o",
  summary: "H2O: recent tokens + heavy hitters by accumulated attention, evicted at every step",
  paper: "Zhang et al., H2O: Heavy-Hitter Oracle, arXiv 2306.14048",
  budget: "required",
  options: { recentTokens: z.number().int().nonnegative().optional() },
  makePolicy: (o) => h2oPolicy(o as H2OOptions),
});
