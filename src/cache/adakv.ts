import { z } from "zod";
import type { CachePolicy } from "./policy.js";
import type { KeptSlots, Selection, TokenScores } from "./scorer.js";
import { indexRange, topIndices } from "./top-k.js";
import { prefillScoringMethod } from "./method.js";
import { promptScorer, promptScorerOptionShape, type PromptScorerOptions } from "./prompt-scorers.js";
import { fail } from "../util/errors.js";

/** kvpress's alpha_safeguard: every KV head keeps at least this share of the per-head budget. */
export const DEFAULT_ALPHA_SAFEGUARD = 0.2;

/**
 * AdaKV's kept cache indices of one layer, per KV head, ascending (Feng et al., arXiv 2407.11550; kvpress
 * adakv_press.py). The layer keeps numKvHeads · budget tokens in all: every head keeps its `protect` newest tokens
 * and, as the safeguard, its best ⌊alphaSafeguard · budget⌋ tokens (the protected ones counting first, kvpress
 * scores them highest); the rest go to the best scores of the older tokens across all heads of the layer at once
 * (ties: earlier head, then earlier token). A head whose attention is concentrated thus gives budget to one whose
 * attention is spread.
 */
export function adaptiveKept(s: TokenScores, numKvHeads: number, length: number, budget: number, protect: number, alphaSafeguard: number): number[][] {
  const older = length - protect;
  const safe = Math.min(older, Math.max(0, Math.floor(alphaSafeguard * budget) - protect));
  const rowStart = (h: number): number => (s.shared ? 0 : h * length);
  const kept: number[][] = [];
  const pool: { h: number; i: number; score: number }[] = [];
  for (let h = 0; h < numKvHeads; h++) {
    kept.push(topIndices(s.scores, rowStart(h), older, safe));
    const forced = new Set(kept[h]);
    for (let i = 0; i < older; i++) if (!forced.has(i)) pool.push({ h, i, score: s.scores[rowStart(h) + i]! });
  }
  pool.sort((a, b) => b.score - a.score || a.h - b.h || a.i - b.i);
  for (const c of pool.slice(0, numKvHeads * (budget - protect - safe))) kept[c.h]!.push(c.i);
  return kept.map((k) => [...k.sort((a, b) => a - b), ...indexRange(older, protect)]);
}

/**
 * Per-head kept lists in KVCache.keep's layout: n = the longest list's length slots per head; a shorter head is
 * padded with its earliest evicted tokens, marked masked (attention skips them, kvBytes does not count them).
 */
export function keptSlots(kept: readonly number[][], length: number): KeptSlots {
  const n = Math.max(...kept.map((k) => k.length));
  const keep = new Int32Array(kept.length * n);
  const masked = new Uint8Array(kept.length * n);
  kept.forEach((tokens, h) => {
    keep.set(tokens, h * n);
    const have = new Set(tokens);
    let pad = 0;
    for (let j = tokens.length; j < n; j++) {
      while (have.has(pad) && pad < length) pad++;
      keep[h * n + j] = pad++;
      masked[h * n + j] = 1;
    }
  });
  return masked.includes(1) ? { keep, n, masked } : { keep, n };
}

/** AdaKV's selection (see adaptiveKept). */
export function adaptiveSelection(alphaSafeguard: number): Selection {
  if (typeof alphaSafeguard !== "number" || !(alphaSafeguard >= 0 && alphaSafeguard <= 1)) {
    fail(`method adakv: alphaSafeguard must be a number in [0, 1], got ${JSON.stringify(alphaSafeguard)}`, `use e.g. alphaSafeguard ${DEFAULT_ALPHA_SAFEGUARD}`);
  }
  return (s, numKvHeads, length, budget, protect) => keptSlots(adaptiveKept(s, numKvHeads, length, budget, protect, alphaSafeguard), length);
}

export interface AdaKVOptions extends PromptScorerOptions {
  budgetTokens: number;
  /** The share of the per-head budget every head keeps whatever the other heads' scores (default 0.2). */
  alphaSafeguard?: number;
}

/**
 * AdaKV over a scorer (kvpress AdaKVPress over a ScorerPress): the scorer's per-head scores, the layer's budget
 * allocated across its KV heads. After prefill only, original positions. The tfjs cache holds every head at the
 * widest head's count (the others' extra slots masked); KV bytes count the tokens kept, numKvHeads · budget a layer.
 */
export const adakvMethod = prefillScoringMethod({
  name: "adakv",
  summary: "AdaKV: a scorer's top tokens chosen across all KV heads of a layer at once (per-head safeguard), after prefill",
  paper: "Feng et al., Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation for Efficient LLM Inference, arXiv 2407.11550 (kvpress adakv_press.py)",
  options: { ...promptScorerOptionShape, alphaSafeguard: z.number().min(0).max(1).optional() },
  scorer: (o) => promptScorer("adakv", o),
  select: (o) => adaptiveSelection(o.alphaSafeguard ?? DEFAULT_ALPHA_SAFEGUARD),
});

export const adakvPolicy = (options: AdaKVOptions): CachePolicy => adakvMethod.makePolicy!({ ...options });
