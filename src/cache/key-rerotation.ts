import * as tf from "../tf.js";
import type { KVCache } from "../backbone/kv-cache.js";
import { positionRange } from "../backbone/rope.js";
import type { Rotation as RopeTable } from "../backbone/model.js";
import { wrapPolicy, type CachePolicy } from "./policy.js";

/**
 * x [heads, T, d] rotated by −amounts (RoPE's inverse; amounts ≥ 0, per head and row as RopeTable.apply takes
 * them). R(−a) = S·R(a)·S with S negating the second half of each head vector (rotate_half pairs i with i + d/2),
 * and negation is exact, so this costs one rotation.
 */
export function rotateBack(rope: RopeTable, x: tf.Tensor3D, amounts: Int32Array): tf.Tensor3D {
  return tf.tidy(() => {
    const half = x.shape[2] / 2;
    const flip = tf.concat([tf.ones([half]), tf.fill([half], -1)]);
    return tf.mul(rope.apply(tf.mul(x, flip) as tf.Tensor3D, amounts), flip) as tf.Tensor3D;
  });
}

/** In-cache positions 0..n-1 of every head, head-major. */
function cachePositions(numKvHeads: number, n: number): Int32Array {
  const out = new Int32Array(numKvHeads * n);
  for (let h = 0; h < numKvHeads; h++) out.set(positionRange(0, n), h * n);
  return out;
}

/**
 * Key re-rotation (kvpress key_rerotation_press.py): the inner policy's kept tokens move to the positions of their
 * index in the cache, so RoPE never sees a position beyond the cache size (StreamingLLM's in-cache positions).
 * New tokens are rotated at the next cache index; after an eviction, each kept key whose index dropped from i to
 * j is rotated by j − i — only the span from the first moved token on is touched, never the tokens before it
 * (StreamingLLM's sinks).
 */
export function withKeyRerotation(inner: CachePolicy): CachePolicy {
  return wrapPolicy(inner, {
    keyPositions: (_layer, lengthBefore, original) => positionRange(lengthBefore, original.length),
    rotatedPositions: (layer, cache) => cachePositions(cache.numKvHeads, cache.length(layer)),
    async compress(layer, cache, ctx) {
      const before = cache.layers[layer]!.positions.slice();
      const lengthBefore = cache.length(layer);
      await inner.compress(layer, cache, ctx);
      if (cache.length(layer) !== lengthBefore) rerotateMoved(cache, layer, before, lengthBefore, ctx.rope);
    },
  });
}

/** Rotates kept keys back by how far their cache index dropped (before: original positions before eviction). */
function rerotateMoved(cache: KVCache, layer: number, before: Int32Array, lengthBefore: number, rope: RopeTable): void {
  const L = cache.layers[layer]!;
  const Hkv = cache.numKvHeads;
  const n = L.length;
  // A token's original position identifies it: its old index is where that position sat before the eviction.
  const shift = new Int32Array(Hkv * n);
  let firstMoved = n;
  for (let h = 0; h < Hkv; h++) {
    const oldIndex = new Map<number, number>();
    for (let i = 0; i < lengthBefore; i++) oldIndex.set(before[h * lengthBefore + i]!, i);
    for (let j = 0; j < n; j++) {
      const moved = oldIndex.get(L.positions[h * n + j]!)! - j;
      shift[h * n + j] = moved;
      if (moved !== 0) firstMoved = Math.min(firstMoved, j);
    }
  }
  if (firstMoved === n) return;
  const span = n - firstMoved;
  const amounts = new Int32Array(Hkv * span);
  for (let h = 0; h < Hkv; h++) amounts.set(shift.subarray(h * n + firstMoved, (h + 1) * n), h * span);
  const d = cache.headDim;
  const k = L.k!;
  const next = tf.tidy(() => {
    const moved = rotateBack(rope, tf.slice(k, [0, firstMoved, 0], [Hkv, span, d]), amounts);
    return firstMoved === 0 ? moved : tf.concat([tf.slice(k, [0, 0, 0], [Hkv, firstMoved, d]), moved], 1);
  });
  k.dispose();
  L.k = tf.keep(next as tf.Tensor3D);
}
