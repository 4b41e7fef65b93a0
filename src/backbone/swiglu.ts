import * as tf from "../tf.js";

/** SwiGLU feed-forward: down( silu(x·gate) ⊙ (x·up) ), weights stored [in, out]. */
export function swiglu(x: tf.Tensor2D, wGate: tf.Tensor2D, wUp: tf.Tensor2D, wDown: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const g = tf.matMul(x, wGate);
    const silu = tf.mul(g, tf.sigmoid(g));
    return tf.matMul(tf.mul(silu, tf.matMul(x, wUp)), wDown) as tf.Tensor2D;
  });
}
