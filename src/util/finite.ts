/**
 * Loud failure where a value is NaN/±Inf, or where WebGPU failed silently: `assertFinite` also reports any WebGPU
 * validation error recorded since the last check (src/backend/webgpu-errors.ts).
 */
import * as tf from "../tf.js";
import { EdgeInfError } from "./errors.js";
import { currentBackendName } from "../backend/current-backend.js";
import { MAX_TENSOR_BYTES_ENV, maxTensorBytes } from "../backend/tensor-limits.js";
import { failOnWebGpuErrors } from "../backend/webgpu-errors.js";

type Checkable = tf.Tensor | number | ArrayLike<number>;

/**
 * Fails with one line naming `what`, the backend and the first bad value when `x` holds NaN/±Inf, or when the
 * webgpu device reported errors since the last check (its outputs are then zeros or garbage, finite or not).
 * Synchronous: tensors are read with dataSync, which tfjs-backend-webgpu cannot do in Node — use assertFiniteAsync there.
 */
export function assertFinite(x: Checkable, what: string): void {
  failOnWebGpuErrors(what);
  if (x instanceof tf.Tensor) {
    const summary = tf.tidy(() => nonFiniteSummary(x));
    const [count, index, value] = Array.from(summary.dataSync());
    summary.dispose();
    reportNonFinite(what, count!, index!, value!, x.size);
    return;
  }
  checkHost(typeof x === "number" ? [x] : x, what);
}

/** assertFinite for any backend (reads with `await data()`): use it on webgpu. */
export async function assertFiniteAsync(x: Checkable, what: string): Promise<void> {
  if (!(x instanceof tf.Tensor)) return assertFinite(x, what);
  const summary = tf.tidy(() => nonFiniteSummary(x));
  const [count, index, value] = Array.from(await summary.data());
  summary.dispose();
  failOnWebGpuErrors(what);
  reportNonFinite(what, count!, index!, value!, x.size);
}

/** [number of non-finite entries, flat index of the first one, its value] computed on the device: one 3-float read. */
function nonFiniteSummary(x: tf.Tensor): tf.Tensor1D {
  const flat = tf.cast(x.reshape([-1]), "float32");
  const bad = tf.cast(tf.logicalNot(tf.isFinite(flat)), "float32");
  const count = tf.sum(bad).reshape([1]);
  const first = tf.argMax(bad).reshape([1]); // a maximum of the mask: a bad entry (index 0 when there is none)
  const value = tf.gather(flat, first);
  return tf.concat([count, tf.cast(first, "float32"), value]) as tf.Tensor1D;
}

function checkHost(values: ArrayLike<number>, what: string): void {
  let count = 0;
  let index = -1;
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]!)) {
      if (count === 0) index = i;
      count++;
    }
  }
  if (count > 0) reportNonFinite(what, count, index, values[index]!, values.length);
}

function reportNonFinite(what: string, count: number, index: number, value: number, size: number): void {
  if (count === 0) return;
  const where = size === 1 ? "" : ` (${count} of ${size} entries non-finite, e.g. index ${index})`;
  throw new EdgeInfError(
    `${what} is ${String(value)}${where} on backend ${currentBackendName()}`,
    currentBackendName() === "webgpu"
      ? `lower ${MAX_TENSOR_BYTES_ENV} (now ${maxTensorBytes()}) or compare with --backend wasm`
      : "lower the learning rate, check the inputs, or compare with another --backend",
  );
}
