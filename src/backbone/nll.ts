import * as tf from "../tf.js";
import type { LlamaModel } from "./model.js";

/**
 * Per-token negative log-likelihood −log p(targets[t] | ·) from hidden states [T, D], computed in row chunks so the
 * [T, vocab] logits never exist at once for long inputs.
 */
export function tokenNll(model: LlamaModel, hidden: tf.Tensor2D, targets: readonly number[], chunkRows = 512): Float32Array {
  const T = targets.length;
  const out = new Float32Array(T);
  for (let r0 = 0; r0 < T; r0 += chunkRows) {
    const n = Math.min(chunkRows, T - r0);
    const values = tf.tidy(() => {
      const logits = model.logits(tf.slice(hidden, [r0, 0], [n, hidden.shape[1]]));
      const logp = tf.logSoftmax(logits);
      const onehot = tf.oneHot(tf.tensor1d(targets.slice(r0, r0 + n) as number[], "int32"), logits.shape[1]);
      return tf.neg(tf.sum(tf.mul(logp, onehot), 1));
    });
    out.set(values.dataSync() as Float32Array, r0);
    values.dispose();
  }
  return out;
}

/** Mean NLL as a differentiable scalar (for training), optionally weighted by a per-token mask. */
export function meanNll(model: LlamaModel, hidden: tf.Tensor2D, targets: readonly number[], mask?: readonly number[]): tf.Scalar {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(model.logits(hidden));
    const onehot = tf.oneHot(tf.tensor1d(Array.from(targets), "int32"), logp.shape[1]);
    const nll = tf.neg(tf.sum(tf.mul(logp, onehot), 1));
    if (!mask) return tf.mean(nll) as tf.Scalar;
    const m = tf.tensor1d(Array.from(mask));
    return tf.div(tf.sum(tf.mul(nll, m)), tf.maximum(tf.sum(m), 1)) as tf.Scalar;
  });
}
