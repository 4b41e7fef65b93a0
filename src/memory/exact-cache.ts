import * as tf from "../tf.js";
import type { FeatureMap } from "./feature-map.js";
import { readMemory } from "./read-memory.js";
import type { MemoryState } from "./write-memory.js";

/**
 * A sparse exact cache (LoLA, arXiv 2505.23666): per KV head, the E tokens that the memory reconstructs worst are
 * kept as ordinary KV beside sink and window; the others are written into memory. Sliding window + linear memory
 * collide on exact recall (a needle's digits come back blurred); keeping the tokens memory cannot hold exact is
 * LoLA's fix, usable without training. Keys are pre-RoPE, like the window's.
 */
export interface ExactCache {
  k: tf.Tensor3D;
  v: tf.Tensor3D;
}

/**
 * Self-recall error of each candidate: ‖v − A_mem(k)‖² with A_mem read by the candidate's own (memory-mapped)
 * key, per KV head. km/vm [Hkv, C, d]. Returns [Hkv, C].
 */
export function selfRecallError(memory: MemoryState, km: tf.Tensor3D, vm: tf.Tensor3D, eps: number, phi: FeatureMap): tf.Tensor2D {
  return tf.tidy(() => tf.sum(tf.square(tf.sub(vm, readMemory(memory, km, eps, phi).out)), 2) as tf.Tensor2D);
}

/**
 * Per KV head, candidate indices ordered worst-reconstructed first [Hkv, C] (int32). The choice is discrete: it
 * carries no gradient (computed inside customGrad, so the ordering ops stay off the tape).
 */
function recallOrder(memory: MemoryState, km: tf.Tensor3D, vm: tf.Tensor3D, eps: number, phi: FeatureMap): tf.Tensor2D {
  const order = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [k, v, M, z] = args as tf.Tensor[];
    const err = selfRecallError({ M: M as tf.Tensor3D, z: z as tf.Tensor2D }, k as tf.Tensor3D, v as tf.Tensor3D, eps, phi);
    return {
      value: tf.topk(err, err.shape[1]).indices,
      gradFunc: () => [k, v, M, z].map((t) => tf.zerosLike(t!)),
    };
  });
  return order(km, vm, memory.M, memory.z) as tf.Tensor2D;
}

/**
 * Rows idx [Hkv, m] of x [Hkv, C, d] per head → [Hkv, m, d], as a product with one-hot rows (differentiable in x on
 * every backend: gather's gradient needs UnsortedSegmentSum, which wasm lacks).
 */
export function gatherRows(x: tf.Tensor3D, idx: tf.Tensor2D): tf.Tensor3D {
  return tf.tidy(() => tf.matMul(tf.oneHot(idx, x.shape[1]).toFloat(), x) as tf.Tensor3D);
}

/**
 * Splits candidates into the E kept exactly (worst self-recall first) and the rest. k/v are the raw candidates
 * (what the cache keeps), km/vm their memory projections (what memory stores). Returns the kept raw k/v and the
 * mapped k/v to write (n − E rows per head).
 */
export function splitByRecall(
  memory: MemoryState,
  cand: { k: tf.Tensor3D; v: tf.Tensor3D; km: tf.Tensor3D; vm: tf.Tensor3D },
  keep: number,
  eps: number,
  phi: FeatureMap,
): { exact: ExactCache; write: { k: tf.Tensor3D; v: tf.Tensor3D } } {
  return tf.tidy(() => {
    const [Hkv, C] = cand.k.shape;
    const order = recallOrder(memory, cand.km, cand.vm, eps, phi);
    const kept = tf.slice(order, [0, 0], [Hkv, keep]);
    const written = tf.slice(order, [0, keep], [Hkv, C - keep]);
    return {
      exact: { k: gatherRows(cand.k, kept), v: gatherRows(cand.v, kept) },
      write: { k: gatherRows(cand.km, written), v: gatherRows(cand.vm, written) },
    };
  });
}
