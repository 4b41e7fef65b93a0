import * as tf from "../tf.js";

/**
 * The memory-gating module: out = g ⊙ A_mem + (1 − g) ⊙ A_local per query head.
 *  - "scalar": g_h = sigmoid(β_h), one learned logit per head (Infini-attention).
 *  - "learned": g_{h,t} = sigmoid(q_{h,t} · w_h + b_h), computed from the head's query by a per-head projection
 *    (EdgeInfinite-style input-dependent gate; the paper does not give its exact form, see docs/method.md).
 * Logits start at `initLogit` (default −6, g ≈ 0.0025) and w at 0, so an untrained module is the backbone's local attention.
 */
export type GateKind = "scalar" | "learned";

export interface GateParams {
  /** [H]: β_h for "scalar", b_h for "learned". */
  bias: tf.Tensor1D;
  /** [H, d]: w_h for "learned"; null for "scalar". */
  weight: tf.Tensor2D | null;
}

/** Gate values [H, T, 1] (scalar gates broadcast over T as [H, 1, 1]). q: pre-RoPE queries [H, T, d]. */
export function gateValues(params: GateParams, q: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const H = q.shape[0];
    if (!params.weight) return tf.sigmoid(params.bias).reshape([H, 1, 1]) as tf.Tensor3D;
    const logits = tf.add(tf.matMul(q, params.weight.expandDims(2)), params.bias.reshape([H, 1, 1])); // [H, T, 1]
    return tf.sigmoid(logits) as tf.Tensor3D;
  });
}

/** out = g ⊙ aMem + (1 − g) ⊙ aLocal, all [H, T, d]. */
export function mixGate(g: tf.Tensor3D, aMem: tf.Tensor3D, aLocal: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => tf.add(aLocal, tf.mul(g, tf.sub(aMem, aLocal))) as tf.Tensor3D);
}
