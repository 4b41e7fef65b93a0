import * as tf from "../tf.js";
import { featureMap, type FeatureMap } from "./feature-map.js";
import type { MemoryState } from "./write-memory.js";
import { fusedMemoryRead, webgpuFusedActive } from "../backend/webgpu-fused.js";

/**
 * Reads memory (Infini-attention eq. 3): A_mem = φ(Q)M / (φ(Q)z + ε), and the memory's mass φ(Q)z (the
 * linear-attention normaliser, what the "shared" read mode weighs against the local softmax's Σ exp).
 * q [Hkv, g·T, dk]: the memory-projected queries of the g query heads that share each KV head's memory (GQA).
 * ε keeps an empty memory (z = 0) from dividing by zero: it then returns 0.
 */
export function readMemory(state: MemoryState, q: tf.Tensor3D, eps: number, phi: FeatureMap = "elu"): { out: tf.Tensor3D; mass: tf.Tensor3D } {
  // On WebGPU: two kernels forward instead of six, and a gradient in five (src/backend/webgpu-fused.ts); the
  // Hedgehog map runs first as its own kernel (it normalises whole rows), and the read takes its features as they are.
  if (webgpuFusedActive()) {
    if (phi === "elu") return fusedMemoryRead(q, state.M, state.z, eps);
    return tf.tidy(() => fusedMemoryRead(featureMap(q, phi) as tf.Tensor3D, state.M, state.z, eps, "identity"));
  }
  return tf.tidy(() => {
    const sq = featureMap(q, phi) as tf.Tensor3D;
    const num = tf.matMul(sq, state.M); // [Hkv, g·T, dv]
    const mass = tf.matMul(sq, state.z.expandDims(2)) as tf.Tensor3D; // [Hkv, g·T, 1]
    return { out: tf.div(num, tf.add(mass, eps)) as tf.Tensor3D, mass };
  });
}
