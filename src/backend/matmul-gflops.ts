/**
 * Matrix-product throughput of the current tfjs backend: the machine's ceiling line in benchmarks.
 * GFLOP/s = 2·batch·M·K·N / median seconds per product (after warm-up), read back included
 * so asynchronous backends are timed to completion.
 */
import * as tf from "../tf.js";
import { fail } from "../util/errors.js";

export interface ProductSpec {
  /** Shape of a as passed to tf.matMul (already transposed if transposeA). */
  aShape: number[];
  bShape: number[];
  transposeA?: boolean;
  transposeB?: boolean;
}

const WARMUP_RUNS = 2;

/** GFLOP/s of a plain n×n×n float32 matMul on the current backend (median of `repeats`). */
export async function measureMatmulGflops(n = 512, repeats = 5): Promise<number> {
  return measureProductGflops({ aShape: [n, n], bShape: [n, n] }, repeats);
}

/**
 * GFLOP/s of one tf.matMul product shape on the current backend (median of `repeats`). Each product is read back
 * with `await data()`, so asynchronous backends (webgpu) are timed to completion and the read works on all.
 */
export async function measureProductGflops(spec: ProductSpec, repeats = 5): Promise<number> {
  if (!Number.isInteger(repeats) || repeats < 1) fail(`matmul benchmark repeats=${repeats} is invalid`, "use an integer >= 1");
  const flops = productFlops(spec);
  const a = tf.randomUniform(spec.aShape, -1, 1, "float32", 1);
  const b = tf.randomUniform(spec.bShape, -1, 1, "float32", 2);
  try {
    const once = async (): Promise<number> => {
      const t0 = performance.now();
      const product = tf.matMul(a, b, spec.transposeA, spec.transposeB);
      try {
        await product.data();
      } finally {
        product.dispose();
      }
      return performance.now() - t0;
    };
    for (let i = 0; i < WARMUP_RUNS; i++) await once();
    const ms: number[] = [];
    for (let i = 0; i < repeats; i++) ms.push(await once());
    return flops / (median(ms) * 1e6);
  } finally {
    tf.dispose([a, b]);
  }
}

/** 2·batch·M·K·N for tf.matMul(a, b, transposeA, transposeB) with numpy batch broadcasting. */
export function productFlops(spec: ProductSpec): number {
  const { aShape, bShape } = spec;
  if (aShape.length < 2 || bShape.length < 2) fail(`matmul shapes [${aShape}] x [${bShape}] need rank >= 2`, "pass matrices or batches of matrices");
  const ra = aShape.length;
  const rb = bShape.length;
  const m = spec.transposeA ? aShape[ra - 1] : aShape[ra - 2];
  const k = spec.transposeA ? aShape[ra - 2] : aShape[ra - 1];
  const kb = spec.transposeB ? bShape[rb - 1] : bShape[rb - 2];
  const n = spec.transposeB ? bShape[rb - 2] : bShape[rb - 1];
  if (k !== kb) fail(`matmul shapes [${aShape}] x [${bShape}] have inner dims ${k} and ${kb}`, "make the inner dims equal");
  const batchA = aShape.slice(0, -2);
  const batchB = bShape.slice(0, -2);
  const rank = Math.max(batchA.length, batchB.length);
  let batch = 1;
  for (let d = 0; d < rank; d++) {
    const da = batchA[batchA.length - rank + d] ?? 1;
    const db = batchB[batchB.length - rank + d] ?? 1;
    batch *= Math.max(da, db);
  }
  return 2 * batch * m * k * n;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
