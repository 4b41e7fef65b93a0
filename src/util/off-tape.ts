import * as tf from "../tf.js";

/**
 * f() as a constant of tf.variableGrads / tf.grads: while a gradient tape records, computed through a customGrad
 * whose gradient is zero for `inputs` (so none of f's ops join the tape); otherwise (inference) f() runs directly.
 */
export function offTape<T extends tf.Tensor>(f: () => T, inputs: tf.Tensor[]): T {
  if (!tf.engine().isTapeOn()) return f();
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: f(),
    gradFunc: () => (args.slice(0, inputs.length) as tf.Tensor[]).map((t) => tf.zerosLike(t)),
  }));
  return op(...inputs) as T;
}
