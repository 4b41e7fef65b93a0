/**
 * Cost model that decides, per product, between wasm's own BatchMatMul ("native") and the
 * project's rewrite into plain XNNPACK GEMMs ("project", src/backend/wasm-matmul.ts).
 *
 *   native  ≈ SLOW · MACs
 *   project ≈ FAST · MACs + TRANSPOSE · (elements transposed) + COPY · (elements copied)
 *             + PACK · (elements of b packed by XNNPACK) + PER_PRODUCT · (GEMM calls)
 *
 * The rewrite pays O(K·N + M·K) overhead per product to win O(M·K·N), so it loses for
 * decode-sized products (M of 1–8 rows). Constants are ns, measured single-threaded on
 * an AMD EPYC (Node 20, tfjs-backend-wasm 4.22 SIMD build); see docs/backends.md. Only
 * the ratios matter, and the crossover is flat, so they need not be exact.
 */
import { broadcastBatchPairs } from "./batch-pairs.js";

const SLOW_NS_PER_MAC = 0.67; // native triple loop, ~3 GFLOP/s
const FAST_NS_PER_MAC = 0.08; // XNNPACK GEMM, ~25 GFLOP/s
const TRANSPOSE_NS_PER_ELEMENT = 4;
const COPY_NS_PER_ELEMENT = 1;
const PACK_NS_PER_ELEMENT = 3;
const PER_PRODUCT_NS = 15_000;

export type MatMulRoute = "native" | "project";

export interface MatMulCost {
  nativeNs: number;
  projectNs: number;
  /** False when native wasm would compute a wrong broadcast (it flattens batch dims first). */
  nativeCorrect: boolean;
  route: MatMulRoute;
}

/** Estimated time of both routes for tf.matMul(a, b, transposeA, transposeB). */
export function matMulCost(aShape: readonly number[], bShape: readonly number[], transposeA: boolean, transposeB: boolean): MatMulCost {
  const ra = aShape.length;
  const rb = bShape.length;
  const m = transposeA ? aShape[ra - 1] : aShape[ra - 2];
  const k = transposeA ? aShape[ra - 2] : aShape[ra - 1];
  const n = transposeB ? bShape[rb - 2] : bShape[rb - 1];
  const batchA = product(aShape.slice(0, -2));
  const batchB = product(bShape.slice(0, -2));
  const { pairs } = broadcastBatchPairs(aShape.slice(0, -2), bShape.slice(0, -2));
  const outBatch = pairs.length;
  const macs = outBatch * m * k * n;

  const transposed = (transposeA ? product(aShape) : 0) + (transposeB ? product(bShape) : 0);
  // batchB = 1: a's batches fold into rows, one GEMM, b packed once.
  // Otherwise: one GEMM per output batch on copied slices, each b slice packed once.
  const oneGemm = batchB === 1;
  const copied = oneGemm ? 0 : (batchA > 1 ? product(aShape) : 0) + product(bShape) + outBatch * m * n;
  const packed = batchB * k * n;
  const gemms = oneGemm ? 1 : outBatch;

  const nativeNs = SLOW_NS_PER_MAC * macs;
  const projectNs =
    FAST_NS_PER_MAC * macs +
    TRANSPOSE_NS_PER_ELEMENT * transposed +
    COPY_NS_PER_ELEMENT * copied +
    PACK_NS_PER_ELEMENT * packed +
    PER_PRODUCT_NS * gemms;
  // Native (like cpu) pairs output batch o with a batch o % batchA and b batch o % batchB.
  const nativeCorrect = pairs.every(([ia, ib], o) => ia === o % batchA && ib === o % batchB);
  const route: MatMulRoute = !nativeCorrect || projectNs < nativeNs ? "project" : "native";
  return { nativeNs, projectNs, nativeCorrect, route };
}

function product(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}
