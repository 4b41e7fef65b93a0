import type { CachePolicy } from "./policy.js";
import { keepTokens, sameForAllHeads } from "./keep-tokens.js";
import { indexRange } from "./top-k.js";
import { countOr, requireCount } from "./options.js";
import { withKeyRerotation } from "./key-rerotation.js";
import { fail } from "../util/errors.js";
import { z } from "zod";
import { evictionMethod } from "./method.js";

export interface StreamingOptions {
  /** Attention sinks: the first tokens, kept forever. */
  sinkTokens: number;
  /** The most recent tokens kept. */
  windowTokens: number;
}

/** StreamingLLM's default sink count (4 initial tokens, Xiao et al. 2023). */
export const DEFAULT_SINK_TOKENS = 4;

/** Cache indices StreamingLLM keeps out of `length` cached tokens: [0, sink) ∪ [length − window, length). */
export function streamingKeptIndices(length: number, sinkTokens: number, windowTokens: number): number[] {
  if (length <= sinkTokens + windowTokens) return indexRange(0, length);
  return [...indexRange(0, sinkTokens), ...indexRange(length - windowTokens, windowTokens)];
}

/**
 * StreamingLLM (Xiao et al., arXiv 2309.17453; kvpress streaming_llm_press.py + KeyRerotationPress): attention
 * sinks plus a sliding window, evicted after prefill and after every decode step. Kept tokens move to their index
 * in the cache (withKeyRerotation), so RoPE never sees a position beyond sinkTokens + windowTokens.
 */
export function streamingPolicy(options: StreamingOptions): CachePolicy {
  const sinkTokens = requireCount("streaming", "sinkTokens", options.sinkTokens, 0);
  const windowTokens = requireCount("streaming", "windowTokens", options.windowTokens, 1);
  const budget = sinkTokens + windowTokens;
  return withKeyRerotation({
    name: "streaming",
    compress(layer, cache) {
      const length = cache.length(layer);
      if (length <= budget) return;
      keepTokens(cache, layer, sameForAllHeads(streamingKeptIndices(length, sinkTokens, windowTokens), cache.numKvHeads), budget);
    },
    budgetFor: () => budget,
  });
}

/**
 * Sink and window from registry options: both given, or derived from budgetTokens (window = budget − sinks).
 */
export function streamingOptionsFrom(options: { budgetTokens?: number; sinkTokens?: number; windowTokens?: number }): StreamingOptions {
  const sinkTokens = countOr("streaming", "sinkTokens", options.sinkTokens, DEFAULT_SINK_TOKENS, 0);
  if (options.budgetTokens === undefined) {
    if (options.windowTokens === undefined) fail("method streaming: needs budgetTokens or windowTokens", "set a budget, or sinkTokens and windowTokens");
    return { sinkTokens, windowTokens: requireCount("streaming", "windowTokens", options.windowTokens, 1) };
  }
  const budget = requireCount("streaming", "budgetTokens", options.budgetTokens, 1);
  if (options.windowTokens !== undefined) {
    const windowTokens = requireCount("streaming", "windowTokens", options.windowTokens, 1);
    if (sinkTokens + windowTokens !== budget) {
      fail(
        `method streaming: sinkTokens ${sinkTokens} + windowTokens ${windowTokens} ≠ budget ${budget}`,
        "give either a budget or sinkTokens and windowTokens, not conflicting both",
      );
    }
    return { sinkTokens, windowTokens };
  }
  if (budget <= sinkTokens) {
    fail(`method streaming: budget ${budget} tokens leaves no window after ${sinkTokens} sink tokens`, `use a budget > ${sinkTokens} or fewer sinkTokens`);
  }
  return { sinkTokens, windowTokens: budget - sinkTokens };
}

export const streamingMethod = evictionMethod({
  evictsWhileDecoding: true,
  name: "streaming",
  summary: "StreamingLLM: attention sinks + a sliding window, kept tokens re-positioned inside the cache",
  paper: "Xiao et al., Efficient Streaming Language Models with Attention Sinks, arXiv 2309.17453",
  budget: "optional",
  options: { sinkTokens: z.number().int().nonnegative().optional(), windowTokens: z.number().int().positive().optional() },
  makePolicy: (o) => streamingPolicy(streamingOptionsFrom(o)),
});
