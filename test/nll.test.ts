/**
 * nllFromLogits, the token NLL of evaluation and training: −log softmax(x)[target] from the softmax kernel's
 * normaliser, and its gradient softmax − one-hot. Checked against float64, including a row whose largest logit is far
 * above the rest and a target far below it.
 */
import { describe, it, expect, beforeAll } from "vitest";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { nllFromLogits } from "../src/backbone/nll.js";
import { Rng } from "../src/util/rng.js";

const [T, V] = [6, 50];

function reference64(x: Float64Array, targets: number[], w: Float64Array): { nll: Float64Array; grad: Float64Array } {
  const nll = new Float64Array(T);
  const grad = new Float64Array(T * V);
  for (let t = 0; t < T; t++) {
    const row = x.subarray(t * V, (t + 1) * V);
    const m = Math.max(...row);
    const z = row.reduce((a, v) => a + Math.exp(v - m), 0);
    nll[t] = m + Math.log(z) - row[targets[t]!]!;
    for (let j = 0; j < V; j++) grad[t * V + j] = w[t]! * (Math.exp(row[j]! - m) / z - (j === targets[t] ? 1 : 0));
  }
  return { nll, grad };
}

for (const backend of ["cpu", "wasm"] as const) {
  describe(`nllFromLogits on ${backend}`, () => {
    beforeAll(async () => {
      await initBackend(backend, { log: () => {} });
    });
    it("values and gradient equal float64 (random rows, a peaked row, an unlikely target)", () => {
      const rng = new Rng(5);
      const x64 = Float64Array.from({ length: T * V }, () => rng.normal() * 4);
      x64[2 * V + 7] = 80; // peaked row: softmax ≈ one-hot
      const targets = [3, 49, 8, 0, 7, 21];
      x64[4 * V + 7] = -40; // row 4's target 40 below the rest
      const w64 = Float64Array.from({ length: T }, () => rng.normal());
      const want = reference64(x64, targets, w64);
      const before = tf.memory().numTensors;
      const x = tf.tensor2d(Float32Array.from(x64), [T, V]);
      const w = tf.tensor1d(Float32Array.from(w64));
      const nll = nllFromLogits(x, targets);
      const got = nll.dataSync();
      for (let t = 0; t < T; t++) expect(Math.abs(got[t]! - want.nll[t]!), `row ${t}`).toBeLessThan(2e-5 * Math.max(1, want.nll[t]!));
      const grad = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(nllFromLogits(xx as tf.Tensor2D, targets), w)))(x);
      const g = grad.dataSync();
      let err = 0;
      for (let i = 0; i < g.length; i++) err = Math.max(err, Math.abs(g[i]! - want.grad[i]!));
      expect(err).toBeLessThan(1e-6 * Math.max(...Array.from(w64, Math.abs)) + 1e-7);
      tf.dispose([x, w, nll, grad]);
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}
