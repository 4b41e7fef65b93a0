import { z } from "zod";
import type { CachePolicy } from "./policy.js";
import type { TokenScorer, TokenScores } from "./scorer.js";
import { countOr } from "./options.js";
import { prefillScoringMethod } from "./method.js";
import { promptScorer, promptScorerOptionShape, type PromptScorerOptions } from "./prompt-scorers.js";

/**
 * ChunkKV's selection order over S tokens, one row shared by all heads (Liu et al., "ChunkKV: Semantic-Preserving
 * KV Cache Compression for Efficient Long-Context LLM Inference", arXiv 2502.00299; kvpress chunkkv_press.py): the
 * inner scores summed over KV heads; chunks of chunkLength tokens (the last may be shorter) ranked by their mean;
 * every token of a better chunk outranks every token of a worse one, and inside a chunk tokens rank by their own
 * summed score. Keeping the top `budget` tokens thus keeps whole chunks, and the best tokens of the next chunk when
 * the budget is not a multiple of chunkLength (kvpress keeps whole chunks only, so its count varies).
 * `protect` newest tokens count as the best of all (the inner method keeps them whatever their score).
 */
export function chunkOrder(inner: TokenScores, numKvHeads: number, length: number, chunkLength: number, protect: number): Float64Array {
  const summed = new Float64Array(length);
  for (let h = 0; h < numKvHeads; h++) {
    for (let i = 0; i < length; i++) summed[i]! += inner.shared ? inner.scores[i]! : inner.scores[h * length + i]!;
  }
  let top = -Infinity;
  for (const x of summed) top = Math.max(top, x);
  for (let i = length - protect; i < length; i++) summed[i] = top;
  const chunks = Math.ceil(length / chunkLength);
  const mean = Array.from({ length: chunks }, (_, c) => {
    const part = summed.subarray(c * chunkLength, Math.min(length, (c + 1) * chunkLength));
    return part.reduce((a, b) => a + b, 0) / part.length;
  });
  // Chunk rank 0 = best (ties: earlier chunk), token rank inside its chunk likewise.
  const chunkRank = new Array<number>(chunks);
  Array.from({ length: chunks }, (_, c) => c)
    .sort((a, b) => mean[b]! - mean[a]! || a - b)
    .forEach((c, r) => (chunkRank[c] = r));
  const order = new Float64Array(length);
  for (let c = 0; c < chunks; c++) {
    const start = c * chunkLength;
    const idx = Array.from({ length: Math.min(length, start + chunkLength) - start }, (_, j) => start + j);
    idx.sort((a, b) => summed[b]! - summed[a]! || a - b);
    idx.forEach((i, r) => (order[i] = chunks - chunkRank[c]! - r / (chunkLength + 1)));
  }
  return order;
}

/** ChunkKV as a wrapper over any token scorer: whole chunks by the inner scores, the same chunks in every head. */
export function chunked(inner: TokenScorer, chunkLength: number): TokenScorer {
  return {
    async score(layer, cache, ctx, protect) {
      const S = cache.length(layer);
      const scores = await inner.score(layer, cache, ctx, protect);
      return { scores: chunkOrder(scores, cache.numKvHeads, S, chunkLength, protect), shared: true };
    },
    ...(inner.protectRecent ? { protectRecent: inner.protectRecent } : {}),
    ...(inner.observe ? { observe: inner.observe } : {}),
    ...(inner.dispose ? { dispose: inner.dispose } : {}),
    ...(inner.contextOnly ? { contextOnly: true } : {}),
  };
}

export interface ChunkKVOptions extends PromptScorerOptions {
  budgetTokens: number;
  /** Tokens per chunk (default 10, the paper's; kvpress defaults to 20). */
  chunkLength?: number;
}

/** ChunkKV after prefill over the chosen scorer. Original positions. */
export const chunkkvMethod = prefillScoringMethod({
  name: "chunkkv",
  summary: "ChunkKV: keeps whole chunks of tokens ranked by a scorer's mean (snapkv, knorm or keydiff), after prefill",
  paper: "Liu et al., ChunkKV: Semantic-Preserving KV Cache Compression, arXiv 2502.00299",
  options: { ...promptScorerOptionShape, chunkLength: z.number().int().positive().optional() },
  scorer: (o) => chunked(promptScorer("chunkkv", o), countOr("chunkkv", "chunkLength", o.chunkLength, 10, 1)),
});

export const chunkkvPolicy = (options: ChunkKVOptions): CachePolicy => chunkkvMethod.makePolicy!({ ...options });
