import * as tf from "../tf.js";
import { fusedGateMix, webgpuFusedActive } from "../backend/webgpu-fused.js";

/**
 * The memory-gating module: out = g ⊙ A_mem + (1 − g) ⊙ A_local per query head.
 *  - "scalar": g_h = sigmoid(β_h), one learned logit per head (Infini-attention).
 *  - "learned": g_{h,t} = sigmoid(q_{h,t} · w_h + b_h), computed from the head's query by a per-head projection
 *    (EdgeInfinite-style input-dependent gate; the paper does not give its exact form, see docs/edgeinfinite.md).
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

/**
 * The "shared" read mode's gate: the shared-normalizer hybrid of LoLCATs (arXiv 2410.10254) written as a gate.
 * With one normalizer over local softmax and memory, out = (Σ_local e^s·v + γ·φ(q)M) / (Σ_local e^s + γ·φ(q)z)
 *   = (1 − g)·A_local + g·A_mem  with  g = sigmoid(log γ + log φ(q)ᵀz − logsumexp(local logits)).
 * A query-dependent term q·w_h (gateKind "learned") is added to the logit: without it the memory path gets
 * gradients scaled by a small g and never trains (issue 10's study). So g stays closed while the local window
 * holds a sharp match (large logsumexp) and opens when the memory holds more mass than the window.
 *   logit = b_h [+ q_{h,t}·w_h] + log(φ(q)ᵀz + ε) − lse_{h,t},  b_h = log γ_h.
 * mass [H, T, 1] = φ(q)ᵀz, lse [H, T, 1]; q pre-RoPE [H, T, d]. Returns g [H, T, 1].
 */
export function sharedGateValues(params: GateParams, q: tf.Tensor3D, mass: tf.Tensor3D, lse: tf.Tensor3D, eps: number): tf.Tensor3D {
  return tf.tidy(() => {
    const H = q.shape[0];
    let logit: tf.Tensor = tf.add(params.bias.reshape([H, 1, 1]), tf.sub(tf.log(tf.add(mass, eps)), lse));
    if (params.weight) logit = tf.add(logit, tf.matMul(q, params.weight.expandDims(2)));
    return tf.sigmoid(logit) as tf.Tensor3D;
  });
}

/** out = g ⊙ aMem + (1 − g) ⊙ aLocal, all [H, T, d]. */
export function mixGate(g: tf.Tensor3D, aMem: tf.Tensor3D, aLocal: tf.Tensor3D): tf.Tensor3D {
  // On WebGPU one kernel forward instead of three (src/backend/webgpu-fused.ts).
  if (webgpuFusedActive() && g.shape[2] === 1 && aMem.shape.every((n, i) => n === aLocal.shape[i])) return fusedGateMix(g, aMem, aLocal);
  return tf.tidy(() => tf.add(aLocal, tf.mul(g, tf.sub(aMem, aLocal))) as tf.Tensor3D);
}
