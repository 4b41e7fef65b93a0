/**
 * wasm on several threads (src/backend/wasm-threads.ts): the threaded build starts in Node, products above the
 * threshold and kernels on large inputs run on the pool, and every result equals the single-threaded build's bit
 * for bit and a float64 product within float32 rounding. Each thread count needs its own process (tfjs starts the
 * wasm module once per process), so a child process runs the kernels.
 * Also: the sharing Identity (src/backend/wasm-identity.ts).
 */
import { describe, expect, it } from "vitest";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { wasmThreadsFromEnv } from "../src/backend/wasm-threads.js";
import { runWasmChild } from "./fixtures/wasm-child.js";

interface Product {
  name: string;
  a: [number, number];
  b: [number, number];
  tB: boolean;
  aData: number[];
  bData: number[];
  runs: number[][];
}

interface ChildResult {
  threads: number;
  selective: boolean;
  products: Product[];
  softmax: number[];
}

function runChild(threads: number): ChildResult {
  // The operands come back as JSON (about 20 MB).
  return runWasmChild<ChildResult>("test/fixtures/wasm-threads-child.mjs", threads, 256 * 1024 * 1024);
}

/** a·b (or a·bᵀ) in float64. */
function reference(p: Product): Float64Array {
  const [m, k] = p.a;
  const n = p.tB ? p.b[0] : p.b[1];
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += p.aData[i * k + t]! * (p.tB ? p.bData[j * k + t]! : p.bData[t * n + j]!);
      out[i * n + j] = s;
    }
  }
  return out;
}

describe("wasm threads", () => {
  it("reads EDGEINF_WASM_THREADS", () => {
    expect(wasmThreadsFromEnv(undefined, 4)).toBe(4);
    expect(wasmThreadsFromEnv("auto", 2)).toBe(2);
    expect(wasmThreadsFromEnv("3", 2)).toBe(3);
    expect(() => wasmThreadsFromEnv("0", 2)).toThrow(/EDGEINF_WASM_THREADS=0 is not a thread count/);
    expect(() => wasmThreadsFromEnv("two", 2)).toThrow(/whole number/);
  });

  it("starts 2 threads, matches one thread bit for bit and float64 within rounding, and lets the process exit", () => {
    const one = runChild(1);
    const two = runChild(2);
    expect(one.threads).toBe(1);
    expect(two.threads).toBe(2);
    expect(two.selective).toBe(true);
    for (const [i, p] of two.products.entries()) {
      const ref = reference(p);
      for (const run of p.runs) {
        expect(run, `${p.name}: a repeated product changed`).toEqual(p.runs[0]);
        let maxRel = 0;
        for (let j = 0; j < ref.length; j++) maxRel = Math.max(maxRel, Math.abs(run[j]! - ref[j]!) / Math.max(1, Math.abs(ref[j]!)));
        // float32 sums of 384 products of size ≤ 1: a few ulps of the largest partial sums.
        expect(maxRel, p.name).toBeLessThan(5e-5);
      }
      expect(p.runs[0], `${p.name}: 2 threads differ from 1`).toEqual(one.products[i]!.runs[0]);
    }
    expect(two.softmax).toEqual(one.softmax);
  });
});

describe("wasm Identity shares data", () => {
  it("clones without copying, stays valid after its source is disposed, and frees the data with the last sharer", async () => {
    await initBackend("wasm", { log: () => {} });
    await tf.setBackend("wasm");
    const backend = tf.engine().backend;
    const before = backend.numDataIds();
    const x = tf.tensor([1, 2, 3, 4], [2, 2]);
    const y = tf.clone(x);
    expect(backend.numDataIds()).toBe(before + 1);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 4]);
    y.dispose();
    expect(backend.numDataIds()).toBe(before);
  });

  it("gives the gradients of a product through saved (shared) inputs as float64 does", async () => {
    await tf.setBackend("wasm");
    const w = tf.tensor([0.5, -1, 2, 0.25, 1.5, -0.75], [2, 3]);
    const x = tf.tensor([1, -2, 3, 0.5], [2, 2]);
    const before = tf.memory().numTensors;
    // d/dx sum(x·w) = 1·wᵀ: each row of the gradient is the row sums of w.
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.matMul(v, w)))(x);
    expect(Array.from(g.dataSync())).toEqual([1.5, 1, 1.5, 1]);
    g.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([w, x]);
  });
});
