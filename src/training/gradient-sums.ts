/**
 * Summing gradients over a step's sequences and averaging them: the float32 adds in call order that train()'s
 * in-process step (step.ts) and the worker pool (src/parallel/gradients.ts) both make, so their results are
 * bit-identical.
 */
import * as tf from "../tf.js";

/** into[name] += g in float32 (g is taken over: kept as the sum, or disposed). */
export function addGradient(into: Map<string, tf.Tensor>, name: string, g: tf.Tensor): void {
  const prev = into.get(name);
  into.set(name, prev ? tf.tidy(() => tf.add(prev, g)) : g);
  if (prev) {
    prev.dispose();
    g.dispose();
  }
}

/** Adds every gradient of `more` into `into`, in `more`'s order; `more`'s tensors are taken over. */
export function addGradients(into: Map<string, tf.Tensor>, more: Map<string, tf.Tensor>): void {
  for (const [name, g] of more) addGradient(into, name, g);
}

/** Σ → mean over `count` sequences, in place. */
export function divideGradients(grads: Map<string, tf.Tensor>, count: number): void {
  for (const [k, g] of grads) {
    grads.set(k, tf.tidy(() => tf.div(g, count)));
    g.dispose();
  }
}
