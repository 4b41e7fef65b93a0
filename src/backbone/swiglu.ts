import * as tf from "../tf.js";
import { fusedGatedActivation, webgpuFusedActive } from "../backend/webgpu-fused.js";

/** Gate activations of gated MLPs: silu (SwiGLU: Llama, Qwen, Phi-3) and tanh-approximated gelu (GeGLU: Gemma). */
export type GateActivation = "silu" | "gelu_tanh";

/** gelu(x) ≈ ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (torch's gelu(approximate="tanh"), transformers' gelu_pytorch_tanh). */
function geluTanh(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}

/**
 * Gated feed-forward: down( act(x·gate) ⊙ (x·up) ), weights stored [in, out], gate and up side by side in
 * wGateUp [in, 2·F] (one product). Default act: silu (SwiGLU).
 */
export function swiglu(x: tf.Tensor2D, wGateUp: tf.Tensor2D, wDown: tf.Tensor2D, act: GateActivation = "silu"): tf.Tensor2D {
  return tf.tidy(() => {
    const gu = tf.matMul(x, wGateUp) as tf.Tensor2D;
    // On WebGPU act(g)·u is one kernel each way instead of four or more forward and eight backward (src/backend/webgpu-fused.ts).
    if (webgpuFusedActive()) return tf.matMul(fusedGatedActivation(gu, act), wDown) as tf.Tensor2D;
    const [g, up] = tf.split(gu, 2, 1) as tf.Tensor2D[];
    const gated = act === "silu" ? tf.mul(g!, tf.sigmoid(g!)) : geluTanh(g!);
    return tf.matMul(tf.mul(gated, up!), wDown) as tf.Tensor2D;
  });
}
