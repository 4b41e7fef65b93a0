import * as tf from "../tf.js";
import { sigma } from "./sigma.js";
import type { MemoryState } from "./compress.js";

/**
 * Reads memory (Infini-attention eq. 3): A_mem = σ(Q)M / (σ(Q)z + ε).
 * q [Hkv, g·T, dk]: the memory-projected queries of the g query heads that share each KV head's memory (GQA).
 * ε keeps an empty memory (z = 0) from dividing by zero: it then returns 0.
 */
export function decompress(state: MemoryState, q: tf.Tensor3D, eps: number): tf.Tensor3D {
  return tf.tidy(() => {
    const sq = sigma(q) as tf.Tensor3D;
    const num = tf.matMul(sq, state.M); // [Hkv, g·T, dv]
    const den = tf.add(tf.matMul(sq, state.z.expandDims(2)), eps); // [Hkv, g·T, 1]
    return tf.div(num, den) as tf.Tensor3D;
  });
}
