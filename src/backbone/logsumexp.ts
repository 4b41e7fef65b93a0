import * as tf from "../tf.js";

/**
 * log Σ_j e^{x_j} over the last axis, given the logits x and p = softmax(x): max_j x_j − log max_j p_j. Exact, since p
 * at the largest logit is e^0 / Σ_j e^{x_j − max}; and it costs a max and a log on top of a softmax the caller takes
 * anyway, where tfjs' logSumExp/logSoftmax run Exp over all of x (a scalar loop on wasm, whose Softmax is XNNPACK's).
 * Not differentiable by itself: callers give it their gradient (attention's logsumexp: p; the token NLL: p − onehot).
 */
export function logSumExpFromSoftmax(x: tf.Tensor, p: tf.Tensor): tf.Tensor {
  return tf.sub(tf.max(x, -1), tf.log(tf.max(p, -1)));
}
