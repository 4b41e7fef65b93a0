/**
 * src/backend/wasm-copies.ts: Slice, SplitV, Reverse, Tile, GatherV2 and Transpose as heap copies on wasm, checked value for value
 * against the cpu backend's own kernels (an independent implementation) over random shapes, dtypes and gradients.
 */
import { beforeAll, describe, expect, it } from "vitest";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { Rng } from "../src/util/rng.js";

const rng = new Rng(2503);
const int = (lo: number, hi: number): number => lo + Math.floor(rng.next() * (hi - lo + 1));
const randomShape = (rank: number): number[] => Array.from({ length: rank }, () => int(1, 5));

/** fn on both backends with the same inputs: [wasm values, cpu values], and shapes. */
async function onBoth(make: () => tf.Tensor | tf.Tensor[]): Promise<{ wasm: number[][]; cpu: number[][]; shapes: number[][][] }> {
  const run = async (backend: string): Promise<{ values: number[][]; shapes: number[][] }> => {
    await tf.setBackend(backend);
    const out = tf.tidy(make);
    const list = Array.isArray(out) ? out : [out];
    const values = list.map((t) => Array.from(t.dataSync()));
    const shapes = list.map((t) => t.shape);
    tf.dispose(list);
    return { values, shapes };
  };
  const w = await run("wasm");
  const c = await run("cpu");
  return { wasm: w.values, cpu: c.values, shapes: [w.shapes, c.shapes] };
}

function data(shape: number[], dtype: "float32" | "int32" | "bool"): number[] {
  const n = shape.reduce((a, b) => a * b, 1);
  return Array.from({ length: n }, () => (dtype === "float32" ? rng.next() * 2 - 1 : dtype === "int32" ? int(-50, 50) : int(0, 1)));
}

describe("wasm heap-copy kernels match cpu", () => {
  beforeAll(async () => {
    await import("@tensorflow/tfjs-backend-cpu");
    await initBackend("wasm", { log: () => {} });
  });

  it("slice: random begin/size, ranks 1–5, float32/int32/bool", async () => {
    for (let trial = 0; trial < 60; trial++) {
      const rank = 1 + (trial % 5);
      const shape = randomShape(rank);
      const dtype = (["float32", "int32", "bool"] as const)[trial % 3]!;
      const values = data(shape, dtype);
      const begin = shape.map((d) => int(0, d - 1));
      const size = shape.map((d, i) => (rng.next() < 0.3 ? -1 : int(1, d - begin[i]!)));
      const r = await onBoth(() => tf.slice(tf.tensor(values, shape, dtype), begin, size));
      expect(r.shapes[0], `shape ${shape} begin ${begin} size ${size}`).toEqual(r.shapes[1]);
      expect(r.wasm, `shape ${shape} begin ${begin} size ${size}`).toEqual(r.cpu);
    }
  });

  it("split: every axis, even and uneven sizes", async () => {
    for (let trial = 0; trial < 40; trial++) {
      const shape = randomShape(1 + (trial % 4)).map((d) => d + 1);
      const axis = int(0, shape.length - 1);
      const values = data(shape, "float32");
      const first = int(1, shape[axis]! - 1);
      const sizes = [first, shape[axis]! - first];
      const r = await onBoth(() => tf.split(tf.tensor(values, shape), sizes, axis));
      expect(r.shapes[0]).toEqual(r.shapes[1]);
      expect(r.wasm).toEqual(r.cpu);
    }
  });

  it("reverse: each axis (block copies) and several axes (wasm's own kernel)", async () => {
    for (let trial = 0; trial < 40; trial++) {
      const shape = randomShape(1 + (trial % 4));
      const values = data(shape, trial % 2 === 0 ? "float32" : "int32");
      const axes = trial % 5 === 4 ? [0, shape.length - 1] : [int(0, shape.length - 1)];
      const r = await onBoth(() => tf.reverse(tf.tensor(values, shape, trial % 2 === 0 ? "float32" : "int32"), axes));
      expect(r.wasm, `shape ${shape} axes ${axes}`).toEqual(r.cpu);
    }
  });

  it("tile: reps of 1–3 on every axis", async () => {
    for (let trial = 0; trial < 40; trial++) {
      const shape = randomShape(1 + (trial % 4));
      const reps = shape.map(() => int(1, 3));
      const values = data(shape, "float32");
      const r = await onBoth(() => tf.tile(tf.tensor(values, shape), reps));
      expect(r.shapes[0], `shape ${shape} reps ${reps}`).toEqual(r.shapes[1]);
      expect(r.wasm, `shape ${shape} reps ${reps}`).toEqual(r.cpu);
    }
  });

  it("tile: large reps (a reduction's gradient broadcast back: [n, 1] → [n, k], 1 → k), odd and even counts", async () => {
    const cases: [number[], number[]][] = [[[7, 1], [1, 384]], [[5, 1], [1, 1000]], [[3, 2, 1], [2, 1, 37]], [[1], [129]], [[4, 3], [17, 5]], [[2, 1, 3], [1, 64, 1]]];
    for (const [shape, reps] of cases) {
      const values = data(shape, "float32");
      const r = await onBoth(() => tf.tile(tf.tensor(values, shape), reps));
      expect(r.shapes[0], `shape ${shape} reps ${reps}`).toEqual(r.shapes[1]);
      expect(r.wasm, `shape ${shape} reps ${reps}`).toEqual(r.cpu);
    }
  });

  it("transpose: the last two axes swapped (tiles and four-row blocks with remainders), and other permutations", async () => {
    const shapes = [[1, 1], [3, 5], [33, 70], [68, 31], [2, 37, 65], [3, 2, 5, 4], [2, 64, 129]];
    for (const [trial, shape] of shapes.entries()) {
      const rank = shape.length;
      const swap = [...shape.keys()].map((i) => (i === rank - 2 ? rank - 1 : i === rank - 1 ? rank - 2 : i));
      const reversed = [...shape.keys()].reverse();
      for (const dtype of ["float32", "int32", "bool"] as const) {
        const values = data(shape, dtype);
        for (const perm of [swap, reversed]) {
          const r = await onBoth(() => tf.transpose(tf.tensor(values, shape, dtype), perm));
          expect(r.shapes[0], `shape ${shape} perm ${perm} ${dtype} (${trial})`).toEqual(r.shapes[1]);
          expect(r.wasm, `shape ${shape} perm ${perm} ${dtype}`).toEqual(r.cpu);
        }
      }
    }
  });

  it("gather: every axis, repeated indices, index tensors of rank 0–2", async () => {
    for (let trial = 0; trial < 40; trial++) {
      const shape = randomShape(1 + (trial % 4));
      const axis = int(0, shape.length - 1);
      const idxShape = [[], [int(1, 6)], [2, int(1, 3)]][trial % 3]!;
      const count = idxShape.reduce((a, b) => a * b, 1);
      const idx = Array.from({ length: count }, () => int(0, shape[axis]! - 1));
      const dtype = trial % 2 === 0 ? "float32" : "int32";
      const values = data(shape, dtype);
      const r = await onBoth(() => tf.gather(tf.tensor(values, shape, dtype), tf.tensor(idx, idxShape, "int32"), axis));
      expect(r.shapes[0], `shape ${shape} axis ${axis} idx ${idxShape}`).toEqual(r.shapes[1]);
      expect(r.wasm, `shape ${shape} axis ${axis} idx ${idxShape}`).toEqual(r.cpu);
    }
  });

  it("gather with batch dimensions (batchDims 1 and 2, every axis at or after them): the rows of each batch entry", async () => {
    for (let trial = 0; trial < 30; trial++) {
      const batchDims = 1 + (trial % 2);
      const shape = randomShape(batchDims + 1 + (trial % 3));
      const axis = int(batchDims, shape.length - 1);
      const idxShape = [...shape.slice(0, batchDims), ...[[int(1, 6)], [2, int(1, 3)]][trial % 2]!];
      const count = idxShape.reduce((a, b) => a * b, 1);
      const idx = Array.from({ length: count }, () => int(0, shape[axis]! - 1));
      const values = data(shape, "float32");
      const r = await onBoth(() => tf.gather(tf.tensor(values, shape), tf.tensor(idx, idxShape, "int32"), axis, batchDims));
      expect(r.shapes[0], `shape ${shape} axis ${axis} batchDims ${batchDims} idx ${idxShape}`).toEqual(r.shapes[1]);
      expect(r.wasm, `shape ${shape} axis ${axis} batchDims ${batchDims} idx ${idxShape}`).toEqual(r.cpu);
    }
  });

  it("gradients through slice, split, reverse and tile equal cpu's, and nothing leaks", async () => {
    const shape = [3, 4, 5];
    const values = data(shape, "float32");
    const w = data([6, 4, 5], "float32");
    const loss = (x: tf.Tensor): tf.Scalar => {
      const [a, b] = tf.split(tf.reverse(x, 1), [1, 3], 1);
      // (gather is left out: its gradient needs UnsortedSegmentSum, which tfjs-backend-wasm does not have)
      const t = tf.tile(tf.slice(x, [1, 0, 0], [2, 4, 5]), [3, 1, 1]);
      return tf.sum(tf.mul(t, tf.tensor(w, [6, 4, 5]))).add(tf.sum(tf.mul(a!, a!))).add(tf.sum(b!)) as tf.Scalar;
    };
    const r = await onBoth(() => tf.grad(loss)(tf.tensor(values, shape)));
    for (let i = 0; i < r.wasm[0]!.length; i++) expect(r.wasm[0]![i]).toBeCloseTo(r.cpu[0]![i]!, 5);
    await tf.setBackend("wasm");
    const x = tf.tensor(values, shape);
    tf.grad(loss)(x).dispose();
    const tensors = tf.memory().numTensors;
    const dataIds = tf.engine().backend.numDataIds();
    for (let i = 0; i < 3; i++) tf.grad(loss)(x).dispose();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.engine().backend.numDataIds()).toBe(dataIds);
    x.dispose();
  });
});
