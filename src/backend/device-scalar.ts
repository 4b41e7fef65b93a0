import * as tf from "../tf.js";
import { currentBackendName } from "./current-backend.js";

/** Kept webgpu scalars, by value. */
const kept = new Map<number, tf.Scalar>();

/**
 * `value` as an operand of a tensor op that runs in a hot loop. On webgpu, a float32 scalar tensor kept for the life
 * of the process (one per value): a JS number in an op is uploaded anew every time, through a freshly created mapped
 * buffer (about 0.6 ms of host time each on a lent H100, where an edge-lm decode step paid it in every layer's
 * attention; docs/performance.md). On other backends the number itself (an upload there is a heap copy). For values a
 * process uses few of, such as a model's attention scale; never for one that changes every step (a learning rate).
 */
export function constantOperand(value: number): number | tf.Scalar {
  if (currentBackendName() !== "webgpu") return value;
  let t = kept.get(value);
  if (t === undefined || t.isDisposed) {
    // tf.keep: callers run inside tf.tidy, which would otherwise dispose it at its end.
    t = tf.keep(tf.scalar(value));
    kept.set(value, t);
  }
  return t;
}
