import { join } from "node:path";
import { fail } from "../util/errors.js";
import type { LlamaConfig } from "../backbone/config.js";

/**
 * Checks config.json's layer count against the tensor names the weight files hold, before anything is built from the
 * config: a `num_hidden_layers: 10000000` would otherwise make a map of 90 million expected tensors (seconds, gigabytes,
 * then a RangeError). Cost is one pass over the names; the per-tensor shape check follows in the loader.
 */
export function checkConfigAgainstTensorNames(config: LlamaConfig, tensorNames: Iterable<string>, dir: string): void {
  let count = 0;
  let layers = 0;
  for (const name of tensorNames) {
    count++;
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m) layers = Math.max(layers, Number(m[1]) + 1);
  }
  // Layer indices in the tensor names (families fuse projections differently, so only the indices are compared).
  if (config.numLayers > layers || config.numLayers > count) {
    fail(
      `${join(dir, "config.json")} says num_hidden_layers ${config.numLayers}, but the weights hold ${layers} layer(s) (${count} tensors)`,
      "the config does not belong to these weights; restore the model's own config.json",
    );
  }
}
