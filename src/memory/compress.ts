import * as tf from "../tf.js";
import { sigma } from "./sigma.js";

/** Compressed memory of one layer: per KV head M [Hkv, dk, dv] and normaliser z [Hkv, dk]. */
export interface MemoryState {
  M: tf.Tensor3D;
  z: tf.Tensor2D;
}

export type MemoryRule = "linear" | "delta";

export function emptyMemory(numKvHeads: number, dk: number, dv: number): MemoryState {
  return { M: tf.zeros([numKvHeads, dk, dv]) as tf.Tensor3D, z: tf.zeros([numKvHeads, dk]) as tf.Tensor2D };
}

/**
 * Writes n tokens into memory (Infini-attention, arXiv 2404.07143, eq. 4 and 5):
 *   linear: M ← M + σ(K)ᵀ V
 *   delta:  M ← M + σ(K)ᵀ (V − σ(K)M / (σ(K)z + ε))   (only what memory does not already return is added)
 *   both:   z ← z + Σ_t σ(K_t)
 * k [Hkv, n, dk], v [Hkv, n, dv] are the memory-projected keys and values of the tokens leaving the window.
 */
export function compress(state: MemoryState, k: tf.Tensor3D, v: tf.Tensor3D, rule: MemoryRule, eps: number): MemoryState {
  return tf.tidy(() => {
    const sk = sigma(k) as tf.Tensor3D;
    let update: tf.Tensor3D = v;
    if (rule === "delta") {
      const num = tf.matMul(sk, state.M); // [Hkv, n, dv]
      const den = tf.add(tf.matMul(sk, state.z.expandDims(2)), eps); // [Hkv, n, 1]
      update = tf.sub(v, tf.div(num, den));
    }
    const M = tf.add(state.M, tf.matMul(sk, update, true, false)) as tf.Tensor3D;
    const z = tf.add(state.z, tf.sum(sk, 1)) as tf.Tensor2D;
    return { M, z };
  });
}
