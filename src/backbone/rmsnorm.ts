import * as tf from "../tf.js";
import { fusedRmsNorm, webgpuFusedActive } from "../backend/webgpu-fused.js";

/** RMSNorm: x / sqrt(mean(x²) + eps) · w (Llama; no mean subtraction, no bias). */
export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  // On WebGPU one kernel each way instead of six forward and a dozen backward (src/backend/webgpu-fused.ts).
  if (webgpuFusedActive()) return fusedRmsNorm(x, weight, eps);
  return tf.tidy(() => {
    const meanSquare = tf.mean(tf.square(x), -1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, eps))), weight) as tf.Tensor2D;
  });
}
