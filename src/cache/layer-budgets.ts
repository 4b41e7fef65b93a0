import { wrapPolicy, type CachePolicy } from "./policy.js";

/** A layer's token budget given the layer and the number of layers. */
export type LayerBudget = (layer: number, numLayers: number) => number;

/**
 * Per-layer budgets that depend on the prompt (kvpress per_layer_compression_press.py, PyramidKV): `budgets`
 * turns the prompt length into a layer budget; `inner` builds the policy that evicts to it. Before any prefill
 * the budgets are those of an unbounded prompt (promptTokens = Infinity). Layer 0 records the prompt length at
 * prefill, before anything of the call is evicted (every layer sees the whole prompt then).
 */
export function withLayerBudgets(budgets: (promptTokens: number) => LayerBudget, inner: (budgetFor: LayerBudget) => CachePolicy): CachePolicy {
  let promptTokens = Infinity;
  const budgetFor: LayerBudget = (layer, numLayers) => budgets(promptTokens)(layer, numLayers);
  const policy = inner(budgetFor);
  return wrapPolicy(policy, {
    compress(layer, cache, ctx) {
      if (ctx.phase === "prefill" && layer === 0) promptTokens = cache.length(0);
      return policy.compress(layer, cache, ctx);
    },
    budgetFor,
  });
}
