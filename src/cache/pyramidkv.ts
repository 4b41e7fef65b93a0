import { prefillOnly, type CachePolicy } from "./policy.js";
import { scorerPolicy } from "./scorer.js";
import { snapkvOptionShape, snapkvScorer, snapkvSettings, type SnapKVOptions } from "./snapkv.js";
import { withLayerBudgets } from "./layer-budgets.js";
import { requireCount } from "./options.js";
import { fail } from "../util/errors.js";
import { z } from "zod";
import { evictionMethod } from "./method.js";

export interface PyramidKVOptions extends SnapKVOptions {
  /** Pyramid steepness: the top layer keeps about budget/beta tokens (default 20). */
  beta?: number;
}

export const DEFAULT_BETA = 20;

/** Python's round(): halves go to the even neighbour (kvpress rounds layer budgets with it). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * PyramidKV's budget for `layer` (kvpress pyramidkv_press.py get_layer_budget, after KVCache-Factory): budgets fall
 * linearly from maxNum at the bottom layer to minNum at the top with (maxNum + minNum)/2 = budgetTokens, where
 * minNum = budget/β and maxNum = 2·budget − minNum; maxNum is capped at promptTokens − window (minNum raised to
 * keep the mean). When that pyramid is not promptTokens ≥ maxNum ≥ minNum ≥ window, every layer gets budgetTokens
 * (kvpress falls back to SnapKV). promptTokens = Infinity gives the uncapped pyramid.
 */
export function pyramidBudget(layer: number, numLayers: number, promptTokens: number, budgetTokens: number, window: number, beta: number): number {
  let minNum = budgetTokens / beta;
  let maxNum = budgetTokens * 2 - minNum;
  if (maxNum >= promptTokens - window) {
    maxNum = promptTokens - window;
    minNum = budgetTokens * 2 - maxNum;
  }
  if (numLayers < 2 || !(promptTokens >= maxNum && maxNum >= minNum && minNum >= window)) return roundHalfEven(budgetTokens);
  const step = (maxNum - minNum) / (numLayers - 1);
  return roundHalfEven(maxNum - layer * step);
}

/**
 * PyramidKV (Cai et al., arXiv 2406.02069; kvpress pyramidkv_press.py): SnapKV's scorer with more tokens in lower
 * layers and fewer in upper ones, same average. Original positions; evicts only after prefill. Layer budgets
 * depend on the prompt length, so budgetFor reports the uncapped pyramid until a prefill has been seen.
 */
export function pyramidkvPolicy(options: PyramidKVOptions): CachePolicy {
  const budget = requireCount("pyramidkv", "budgetTokens", options.budgetTokens, 1);
  const settings = snapkvSettings("pyramidkv", options);
  const beta = options.beta ?? DEFAULT_BETA;
  if (typeof beta !== "number" || !(beta >= 1)) fail(`method pyramidkv: beta must be a number ≥ 1, got ${JSON.stringify(beta)}`, "use e.g. beta 20");
  return withLayerBudgets(
    (promptTokens) => (layer, numLayers) => pyramidBudget(layer, numLayers, promptTokens, budget, settings.observationWindow, beta),
    (budgetFor) =>
      prefillOnly(scorerPolicy(snapkvScorer(settings), { name: "pyramidkv", budgetFor })),
  );
}

export const pyramidkvMethod = evictionMethod({
  name: "pyramidkv",
  summary: "PyramidKV: SnapKV's scores with budgets falling linearly from the lowest layer to the top",
  paper: "Cai et al., PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information Funneling, arXiv 2406.02069",
  budget: "required",
  options: { ...snapkvOptionShape, beta: z.number().optional() },
  makePolicy: (o) => pyramidkvPolicy(o as PyramidKVOptions),
});
