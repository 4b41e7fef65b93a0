import * as tf from "../tf.js";
import { fusedHedgehog, webgpuFusedActive } from "../backend/webgpu-fused.js";

/**
 * Positive feature maps φ of linear attention: memory is written with φ(k) and read with φ(q).
 *  - "elu":      φ(x) = ELU(x) + 1 (Katharopoulos et al. 2020; Infini-attention, arXiv 2404.07143). Feature dim d.
 *  - "hedgehog": φ(x) = [softmax(x), softmax(−x)] over the feature axis (Hedgehog, arXiv 2402.04347: softmax-like,
 *                "spiky" features that keep linear attention's weights concentrated). Feature dim 2d. Its learned
 *                linear map xW is the module's query/key map, applied before φ.
 */
export type FeatureMap = "elu" | "hedgehog";

export const FEATURE_MAPS: readonly FeatureMap[] = ["elu", "hedgehog"];

/** Feature dimension of φ for head dimension d. */
export function featureDim(kind: FeatureMap, d: number): number {
  return kind === "hedgehog" ? 2 * d : d;
}

/** φ(x) over the last axis; x [..., d] → [..., featureDim(kind, d)]. */
export function featureMap(x: tf.Tensor, kind: FeatureMap): tf.Tensor {
  return tf.tidy(() => {
    if (kind === "elu") return tf.add(tf.elu(x), 1);
    const axis = x.rank - 1;
    // On WebGPU: one kernel each way (src/backend/webgpu-fused.ts).
    if (webgpuFusedActive()) {
      const d = x.shape[axis]!;
      return fusedHedgehog(x.reshape([-1, d]) as tf.Tensor2D).reshape([...x.shape.slice(0, axis), 2 * d]);
    }
    return tf.concat([tf.softmax(x, axis), tf.softmax(tf.neg(x), axis)], axis);
  });
}

/** σ(x) = ELU(x) + 1, Infini-attention's feature map (the "elu" φ). */
export function sigma(x: tf.Tensor): tf.Tensor {
  return featureMap(x, "elu");
}
