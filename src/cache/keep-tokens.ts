import * as tf from "../tf.js";
import type { KVCache } from "../backbone/kv-cache.js";

/**
 * Evicts through `cache.keep` and pins the gathered k/v, so they also survive when a caller evicts inside a
 * tf.tidy (CachedSession calls compress outside any tidy; tests and other callers may not).
 * keep[h * n + j]: the j-th kept cache index of KV head h; masked (aligned): slots that only pad a head keeping
 * fewer than n tokens (see KVCache.keep).
 */
export function keepTokens(cache: KVCache, layer: number, keep: Int32Array, n: number, masked?: Uint8Array): void {
  cache.keep(layer, keep, n, masked);
  const L = cache.layers[layer]!;
  if (L.k) tf.keep(L.k);
  if (L.v) tf.keep(L.v);
}

/** The same kept indices for every KV head, in KVCache.keep's flat layout. */
export function sameForAllHeads(indices: readonly number[], numKvHeads: number): Int32Array {
  const flat = new Int32Array(numKvHeads * indices.length);
  for (let h = 0; h < numKvHeads; h++) flat.set(indices, h * indices.length);
  return flat;
}
