import * as tf from "../tf.js";

/**
 * logsumexp of the local attention logits s = q·k/√d per query head and token: the log of the local softmax's
 * normaliser Σ_j e^{s_j}, causal over the local span. qRot [H, T, d] are the segment's queries at the span's last
 * T positions, kRot [Hkv, S, d] the span's keys (sink, exact cache, window, segment); query head h reads KV head
 * ⌊h/g⌋. Returns [H, T, 1]. Not differentiated (local attention has no trainable parameter).
 */
export function localLogSumExp(qRot: tf.Tensor3D, kRot: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const [H, T, d] = qRot.shape;
    const [Hkv, S] = kRot.shape;
    const g = H / Hkv;
    const scores = tf.mul(tf.matMul(qRot.reshape([Hkv, g * T, d]), kRot, false, true), 1 / Math.sqrt(d)); // [Hkv, g·T, S]
    const mask = new Float32Array(g * T * S);
    for (let r = 0; r < g * T; r++) {
      const t = r % T;
      for (let j = S - T + t + 1; j < S; j++) mask[r * S + j] = -1e9;
    }
    const masked = tf.add(scores, tf.tensor2d(mask, [g * T, S]));
    return tf.logSumExp(masked, 2, true).reshape([H, T, 1]) as tf.Tensor3D;
  });
}
