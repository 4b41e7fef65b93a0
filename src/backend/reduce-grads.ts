/**
 * Gradients of Sum and Mean that broadcast dy on the device instead of multiplying it by a ones tensor.
 *
 * Why: tfjs-core's own gradients compute `dy · ones(x.shape)` (Mean: then `/ n`), and `tf.ones` fills a host array
 * of x's full size and uploads it. On WebGPU that was 1.3 s of a 5.8 s training step (edge-lm, seq 2048, B = 8;
 * docs/performance.md): every RMSNorm's mean and every loss's sum over [B·T, vocab] logits made one per backward
 * pass, and the array grows with the batch. `tf.broadcastTo` (tfjs' Tile kernel) makes the same values on the device.
 *
 * The values are the same bit for bit: `dy · 1 = dy`, and Mean's `dy / n` is the same division of the same numbers
 * whether it runs before the broadcast (here, on the small tensor) or after (tfjs). EDGEINF_REDUCE_GRADS=tfjs keeps
 * tfjs' own, for comparison in benchmarks.
 */
import * as tf from "../tf.js";
import type { NamedAttrMap } from "../tf.js";
import { fail } from "../util/errors.js";

export const REDUCE_GRADS_ENV = "EDGEINF_REDUCE_GRADS";

export type ReduceGradsMode = "broadcast" | "tfjs";

/** Parses EDGEINF_REDUCE_GRADS: "broadcast" (default) or "tfjs" (tfjs-core's gradients, which upload ones). */
export function reduceGradsModeFromEnv(value: string | undefined): ReduceGradsMode {
  if (value === undefined || value === "" || value === "broadcast") return "broadcast";
  if (value === "tfjs") return "tfjs";
  fail(`${REDUCE_GRADS_ENV}=${value} is not a mode`, "use broadcast (default) or tfjs");
}

/** x's shape with size-1 axes where it was reduced (the shape dy broadcasts back from), and the reduced count. */
function reduction(xShape: readonly number[], axis: number | number[] | undefined): { keptShape: number[]; count: number } {
  const keptShape = [...xShape];
  let count = 1;
  for (const a of tf.util.parseAxisParam(axis ?? [...xShape.keys()], [...xShape])) {
    count *= xShape[a]!;
    keptShape[a] = 1;
  }
  return { keptShape, count };
}

/** Sum's gradient broadcasts dy; Mean's broadcasts dy / n (the division on the small tensor). */
function broadcastingGrad(kernelName: typeof tf.Sum | typeof tf.Mean): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ["x"],
    gradFunc: (dy, saved, attrs: NamedAttrMap) => {
      const [x] = saved as [tf.Tensor];
      const axis = (attrs["axis"] ?? undefined) as number | number[] | undefined;
      const { keptShape, count } = reduction(x.shape, axis);
      const expanded = tf.reshape(dy as tf.Tensor, keptShape);
      const perElement = kernelName === tf.Mean ? tf.div(expanded, count) : expanded;
      return { x: () => tf.broadcastTo(perElement, x.shape) };
    },
  };
}

const sumGrad = broadcastingGrad(tf.Sum);
const meanGrad = broadcastingGrad(tf.Mean);

let tfjsGrads: { sum: tf.GradConfig; mean: tf.GradConfig } | undefined;

/** Registers the broadcasting gradients ("broadcast") or puts tfjs-core's back ("tfjs"). Idempotent. */
export function installReduceGrads(mode: ReduceGradsMode = "broadcast"): void {
  if (tfjsGrads === undefined) {
    const sum = tf.getGradient(tf.Sum);
    const mean = tf.getGradient(tf.Mean);
    if (sum === undefined || mean === undefined) throw new Error("tfjs-core registered no gradient for Sum or Mean");
    tfjsGrads = { sum, mean };
  }
  tf.registerGradient(mode === "broadcast" ? sumGrad : tfjsGrads.sum);
  tf.registerGradient(mode === "broadcast" ? meanGrad : tfjsGrads.mean);
}
