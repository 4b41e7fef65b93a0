import * as tf from "../tf.js";

/** RMSNorm: x / sqrt(mean(x²) + eps) · w (Llama; no mean subtraction, no bias). */
export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  return tf.tidy(() => {
    const meanSquare = tf.mean(tf.square(x), -1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, eps))), weight) as tf.Tensor2D;
  });
}
