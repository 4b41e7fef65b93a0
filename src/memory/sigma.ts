import * as tf from "../tf.js";

/** σ(x) = ELU(x) + 1: the positive feature map of linear attention (Katharopoulos et al.; Infini-attention). */
export function sigma(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.add(tf.elu(x), 1));
}
