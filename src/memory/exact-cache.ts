import * as tf from "../tf.js";
import type { FeatureMap } from "./feature-map.js";
import { readMemory } from "./read-memory.js";
import type { MemoryState } from "./write-memory.js";
import { offTape } from "../util/off-tape.js";

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
 * Spread a score to neighbours: out[i] = max(score[i − after … i + before]) along axis 1 of [Hkv, C] (candidates in
 * token order), so the `before` tokens before a badly reconstructed token and the `after` tokens after it score as
 * high as it does: a needle's digits hold each other in the cache.
 */
export function spreadScores(score: tf.Tensor2D, before: number, after: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [H, C] = score.shape;
    const pad = (n: number) => tf.fill([H, n], -Infinity);
    // padded[j] = score[j − after], so out[i] = max over o ∈ [−after, before] of padded[i + after + o]
    const padded = tf.concat([...(after > 0 ? [pad(after)] : []), score, ...(before > 0 ? [pad(before)] : [])], 1);
    let out: tf.Tensor = tf.clone(score); // a new tensor even for [0, 0]: the caller owns the result
    for (let o = -after; o <= before; o++) if (o !== 0) out = tf.maximum(out, tf.slice(padded, [0, after + o], [H, C]));
    return out as tf.Tensor2D;
  });
}

/** Ascending order of int32 indices along axis 1 of [Hkv, m]. */
function ascending(idx: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.neg(tf.topk(tf.neg(idx.toFloat()), idx.shape[1]).values).toInt() as tf.Tensor2D);
}

/**
 * Per KV head, the indices of the `keep` candidates to hold exactly and of the rest [Hkv, keep] / [Hkv, C − keep]
 * (int32). spread [0, 0]: worst-reconstructed first (LoLA). Otherwise by the spread score (ties: the worse token
 * first), both lists in token order. The choice is discrete: it carries no gradient (computed with offTape, so the
 * ordering ops stay off a recording tape).
 */
function recallSplit(
  memory: MemoryState,
  km: tf.Tensor3D,
  vm: tf.Tensor3D,
  keep: number,
  eps: number,
  phi: FeatureMap,
  spread: readonly [number, number],
): { kept: tf.Tensor2D; written: tf.Tensor2D } {
  const [Hkv, C] = km.shape;
  const spreadOut = spread[0] > 0 || spread[1] > 0;
  const order = (): tf.Tensor2D => {
    const err = selfRecallError(memory, km, vm, eps, phi);
    // The spread score decides; a small share of the token's own error breaks ties inside a spread plateau.
    const score = spreadOut ? tf.add(spreadScores(err, spread[0], spread[1]), tf.mul(err, 1e-3)) : err;
    const ranked = tf.topk(score, C).indices;
    let kept = tf.slice(ranked, [0, 0], [Hkv, keep]) as tf.Tensor2D;
    let written = tf.slice(ranked, [0, keep], [Hkv, C - keep]) as tf.Tensor2D;
    if (spreadOut) {
      kept = ascending(kept);
      written = ascending(written);
    }
    return tf.concat([kept, written], 1);
  };
  // The ordering is a constant of any gradient: its ops stay off a recording tape.
  const both = offTape(order, [km, vm, memory.M, memory.z]);
  return { kept: tf.slice(both, [0, 0], [Hkv, keep]), written: tf.slice(both, [0, keep], [Hkv, C - keep]) };
}

/**
 * Rows idx [Hkv, m] of x [Hkv, C, d] per head → [Hkv, m, d]. While a gradient tape records (training), as a product
 * with one-hot rows: differentiable in x on every backend (gather's gradient needs UnsortedSegmentSum, which wasm
 * lacks). Otherwise (inference) as one gather of whole rows: the same values (a one-hot row times x is 1·x plus
 * zeros, exact for finite x), without the [Hkv, m, C]·[Hkv, C, d] products (four per layer in an EdgeInfinite decode
 * step on edge-lm at 296 exact tokens).
 */
export function gatherRows(x: tf.Tensor3D, idx: tf.Tensor2D): tf.Tensor3D {
  return tf.tidy(() => {
    if (tf.engine().isTapeOn()) return tf.matMul(tf.oneHot(idx, x.shape[1]).toFloat(), x) as tf.Tensor3D;
    // Head h's rows idx[h] of x[h]: a gather along axis 1 with the head as batch dimension (one kernel).
    return tf.gather(x, idx, 1, 1) as tf.Tensor3D;
  });
}

/**
 * Splits candidates into the E kept exactly (worst self-recall first, or by spread score in token order) and the rest. k/v are the raw candidates
 * (what the cache keeps), km/vm their memory projections (what memory stores). Returns the kept raw k/v and the
 * mapped k/v to write (n − E rows per head).
 */
export function splitByRecall(
  memory: MemoryState,
  cand: { k: tf.Tensor3D; v: tf.Tensor3D; km: tf.Tensor3D; vm: tf.Tensor3D },
  keep: number,
  eps: number,
  phi: FeatureMap,
  spread: readonly [number, number] = [0, 0],
): { exact: ExactCache; write: { k: tf.Tensor3D; v: tf.Tensor3D } } {
  return tf.tidy(() => {
    const { kept, written } = recallSplit(memory, cand.km, cand.vm, keep, eps, phi, spread);
    return {
      exact: { k: gatherRows(cand.k, kept), v: gatherRows(cand.v, kept) },
      write: { k: gatherRows(cand.km, written), v: gatherRows(cand.vm, written) },
    };
  });
}
