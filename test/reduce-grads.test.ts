/**
 * src/backend/reduce-grads.ts: Sum and Mean gradients that broadcast dy on the device. Checked against plain JS
 * (dy copied into every reduced position; Mean: dy / n rounded to float32) and bit for bit against tfjs-core's own
 * gradients, on wasm and cpu, over random shapes, axes and keepDims.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { installReduceGrads, reduceGradsModeFromEnv } from "../src/backend/reduce-grads.js";
import { Rng } from "../src/util/rng.js";

const rng = new Rng(77);
const int = (lo: number, hi: number): number => lo + Math.floor(rng.next() * (hi - lo + 1));

interface Case {
  shape: number[];
  axis: number | number[] | undefined;
  keepDims: boolean;
  x: number[];
}

function randomCase(trial: number): Case {
  const rank = 1 + (trial % 4);
  const shape = Array.from({ length: rank }, () => int(1, 5));
  const pick = rng.next();
  let axis: number | number[] | undefined;
  if (pick < 0.2) axis = undefined;
  else if (pick < 0.6) axis = int(-rank, rank - 1);
  else axis = [...new Set(Array.from({ length: int(1, rank) }, () => int(0, rank - 1)))];
  const size = shape.reduce((a, b) => a * b, 1);
  return { shape, axis, keepDims: rng.next() < 0.5, x: Array.from({ length: size }, () => rng.next() * 4 - 2) };
}

/** Reduced axes as non-negative indices. */
const axesOf = (c: Case): number[] =>
  c.axis === undefined ? c.shape.map((_, i) => i) : (Array.isArray(c.axis) ? c.axis : [c.axis]).map((a) => (a < 0 ? a + c.shape.length : a));

/** Plain JS: d(Σ or mean)/dx · dy, i.e. dy at x's position with the reduced axes dropped (Mean: / n in float32). */
function expectedGrad(c: Case, dy: number[], mean: boolean): number[] {
  const axes = new Set(axesOf(c));
  const outDims = c.shape.filter((_, i) => !axes.has(i));
  const n = c.shape.filter((_, i) => axes.has(i)).reduce((a, b) => a * b, 1);
  const size = c.shape.reduce((a, b) => a * b, 1);
  const out: number[] = [];
  for (let flat = 0; flat < size; flat++) {
    let rest = flat;
    const index = new Array<number>(c.shape.length);
    for (let d = c.shape.length - 1; d >= 0; d--) {
      index[d] = rest % c.shape[d]!;
      rest = Math.floor(rest / c.shape[d]!);
    }
    let o = 0;
    let k = 0;
    index.forEach((v, d) => {
      if (!axes.has(d)) o = o * outDims[k++]! + v;
    });
    const g = Math.fround(dy[o]!);
    out.push(mean ? Math.fround(g / n) : g);
  }
  return out;
}

function grad(c: Case, dyValues: number[], mean: boolean): { values: number[]; dyShape: number[] } {
  return tf.tidy(() => {
    const x = tf.tensor(c.x, c.shape);
    const f = (t: tf.Tensor) => (mean ? tf.mean(t, c.axis, c.keepDims) : tf.sum(t, c.axis, c.keepDims));
    const dyShape = f(x).shape;
    const g = tf.grad(f)(x, tf.tensor(dyValues, dyShape));
    return { values: Array.from(g.dataSync()), dyShape };
  });
}

describe("Sum and Mean gradients broadcast dy", () => {
  beforeAll(async () => {
    await import("@tensorflow/tfjs-backend-cpu");
    await initBackend("wasm", { log: () => {} });
  });
  afterAll(() => installReduceGrads("broadcast"));

  for (const backend of ["wasm", "cpu"]) {
    it(`${backend}: equal plain JS and tfjs-core's own gradients bit for bit, tensors flat`, async () => {
      await tf.setBackend(backend);
      const before = tf.memory().numTensors;
      for (let trial = 0; trial < 80; trial++) {
        const c = randomCase(trial);
        const mean = trial % 2 === 1;
        installReduceGrads("broadcast");
        const probe = tf.tidy(() => (mean ? tf.mean(tf.zeros(c.shape), c.axis, c.keepDims) : tf.sum(tf.zeros(c.shape), c.axis, c.keepDims)).shape);
        const dy = Array.from({ length: probe.reduce((a, b) => a * b, 1) }, () => rng.next() * 2 - 1);
        const ours = grad(c, dy, mean);
        installReduceGrads("tfjs");
        const theirs = grad(c, dy, mean);
        installReduceGrads("broadcast");
        const label = `${mean ? "mean" : "sum"} shape ${c.shape} axis ${String(c.axis)} keepDims ${c.keepDims}`;
        expect(ours.values, label).toEqual(expectedGrad(c, dy, mean));
        expect(ours.values, label).toEqual(theirs.values);
      }
      expect(tf.memory().numTensors).toBe(before);
      await tf.setBackend("wasm");
    });
  }

  it("EDGEINF_REDUCE_GRADS: broadcast (default) or tfjs; anything else is one error naming the fix", () => {
    expect(reduceGradsModeFromEnv(undefined)).toBe("broadcast");
    expect(reduceGradsModeFromEnv("")).toBe("broadcast");
    expect(reduceGradsModeFromEnv("tfjs")).toBe("tfjs");
    expect(() => reduceGradsModeFromEnv("ones")).toThrow(/EDGEINF_REDUCE_GRADS=ones is not a mode.*broadcast \(default\) or tfjs/s);
  });
});
