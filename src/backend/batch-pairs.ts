/**
 * Batch broadcasting for batched matrix products: which batch of `a` and which
 * batch of `b` feed each output batch. Dims are right-aligned and a dim of size 1
 * repeats (numpy rules, the same ones `tf.matMul` states for its batch dims).
 */
import { fail } from "../util/errors.js";

export interface BatchPairs {
  /** Broadcast batch shape of the product (without the two matrix dims). */
  outBatchShape: number[];
  /** For output batch i (row-major over outBatchShape): [batch index into a, batch index into b]. */
  pairs: Array<[number, number]>;
}

export function broadcastBatchPairs(batchShapeA: readonly number[], batchShapeB: readonly number[]): BatchPairs {
  const rank = Math.max(batchShapeA.length, batchShapeB.length);
  const padA = leftPadOnes(batchShapeA, rank);
  const padB = leftPadOnes(batchShapeB, rank);
  const outBatchShape: number[] = [];
  for (let d = 0; d < rank; d++) {
    const da = padA[d];
    const db = padB[d];
    if (da !== db && da !== 1 && db !== 1) {
      fail(
        `matMul batch dims [${batchShapeA.join(",")}] and [${batchShapeB.join(",")}] do not broadcast (dim ${d}: ${da} vs ${db})`,
        "make each batch dim equal or 1",
      );
    }
    outBatchShape.push(Math.max(da, db));
  }
  const stridesA = rowMajorStrides(padA);
  const stridesB = rowMajorStrides(padB);
  const outCount = outBatchShape.reduce((p, d) => p * d, 1);
  const pairs: Array<[number, number]> = [];
  const index = new Array<number>(rank).fill(0);
  for (let o = 0; o < outCount; o++) {
    let ia = 0;
    let ib = 0;
    for (let d = 0; d < rank; d++) {
      if (padA[d] !== 1) ia += index[d] * stridesA[d];
      if (padB[d] !== 1) ib += index[d] * stridesB[d];
    }
    pairs.push([ia, ib]);
    // Odometer increment over outBatchShape (last dim fastest).
    for (let d = rank - 1; d >= 0; d--) {
      index[d]++;
      if (index[d] < outBatchShape[d]) break;
      index[d] = 0;
    }
  }
  return { outBatchShape, pairs };
}

function leftPadOnes(shape: readonly number[], rank: number): number[] {
  return [...new Array<number>(rank - shape.length).fill(1), ...shape];
}

function rowMajorStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}
