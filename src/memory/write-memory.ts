import * as tf from "../tf.js";
import { featureMap, type FeatureMap } from "./feature-map.js";
import { fusedMemoryWrite, webgpuFusedActive } from "../backend/webgpu-fused.js";

/** Memory of one layer: per KV head M [Hkv, dφ, dv] and normaliser z [Hkv, dφ] (dφ: the feature map's dim). */
export interface MemoryState {
  M: tf.Tensor3D;
  z: tf.Tensor2D;
}

export type MemoryRule = "linear" | "delta";

export function emptyMemory(numKvHeads: number, dk: number, dv: number): MemoryState {
  return { M: tf.zeros([numKvHeads, dk, dv]) as tf.Tensor3D, z: tf.zeros([numKvHeads, dk]) as tf.Tensor2D };
}

/**
 * Writes n tokens into memory (Infini-attention, arXiv 2404.07143, eq. 4 and 5), with φ the feature map:
 *   linear: M ← M + φ(K)ᵀ V
 *   delta:  M ← M + φ(K)ᵀ (V − φ(K)M / (φ(K)z + ε))   (only what memory does not already return is added)
 *   both:   z ← z + Σ_t φ(K_t)
 * k [Hkv, n, dk], v [Hkv, n, dv] are the memory-projected keys and values of the tokens leaving the window.
 */
export function writeMemory(state: MemoryState, k: tf.Tensor3D, v: tf.Tensor3D, rule: MemoryRule, eps: number, phi: FeatureMap = "elu"): MemoryState {
  // On WebGPU (linear): one kernel each for M and z instead of six in all (src/backend/webgpu-fused.ts); the Hedgehog
  // map runs first as its own kernel, and the write takes its features as they are.
  if (rule === "linear" && webgpuFusedActive()) {
    if (phi === "elu") return fusedMemoryWrite(state.M, state.z, k, v);
    return tf.tidy(() => fusedMemoryWrite(state.M, state.z, featureMap(k, phi) as tf.Tensor3D, v, "identity"));
  }
  return tf.tidy(() => {
    const sk = featureMap(k, phi) as tf.Tensor3D;
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
