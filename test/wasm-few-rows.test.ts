/**
 * The SIMD few-rows products (src/backend/wasm-few-rows.ts): the committed module is the build of the .wat; both
 * modules (shared and plain memory) compute a·bᵀ and a·b to float32 rounding of a float64 reference, on their own
 * memory and through tf.matMul on the wasm backend; products outside their domain go elsewhere.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import * as tf from "../src/tf.js";
import type { TensorInfo } from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { fewRowsKernels, fewRowsProduct, type FewRowsBackend } from "../src/backend/wasm-few-rows.js";
import { FEW_ROWS_PLAIN_WASM, FEW_ROWS_SHARED_WASM } from "../src/backend/wasm-few-rows.bytes.js";
import { Rng } from "../src/util/rng.js";
// @ts-expect-error: a plain .mjs build script without types
import { bytesFile } from "../scripts/build-wasm-kernels.mjs";
import { maxRelError } from "./reference/rel-error.js";

function randomArray(rng: Rng, size: number): Float32Array {
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = rng.next() * 2 - 1;
  return out;
}

/** float64 batched product: a [T, M, K] times b [T, N, K]ᵀ (transposeB) or b [T, K, N]. */
function reference(a: Float32Array, b: Float32Array, T: number, M: number, K: number, N: number, transposeB: boolean): Float64Array {
  const out = new Float64Array(T * M * N);
  for (let t = 0; t < T; t++)
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[(t * M + i) * K + k]! * (transposeB ? b[(t * N + j) * K + k]! : b[(t * K + k) * N + j]!);
        out[(t * M + i) * N + j] = s;
      }
  return out;
}

/** [T, M, K, N]: decode attention shapes (edge-lm: 2 KV heads × 3 query rows, head dim 64), odd sizes, tails. */
const SHAPES: Array<[number, number, number, number]> = [
  [2, 3, 64, 538],
  [2, 1, 64, 7],
  [3, 8, 12, 20],
  [1, 5, 36, 9],
  [4, 2, 4, 4],
  [2, 3, 96, 68],
];

describe("the committed module", () => {
  it("is the build of src/backend/wasm-few-rows.wat (npm run build:wasm-kernels)", async () => {
    const wat = readFileSync(resolve(__dirname, "../src/backend/wasm-few-rows.wat"), "utf8");
    const committed = readFileSync(resolve(__dirname, "../src/backend/wasm-few-rows.bytes.ts"), "utf8");
    expect(await bytesFile(wat)).toBe(committed);
    expect(FEW_ROWS_SHARED_WASM).not.toBe(FEW_ROWS_PLAIN_WASM);
  });
});

describe.each([
  ["shared", true],
  ["plain", false],
])("the %s-memory module on its own memory", (_name, shared) => {
  it.each(SHAPES)("a·bᵀ and a·b for T=%i M=%i K=%i N=%i equal float64 to float32 rounding", (T, M, K, N) => {
    const memory = shared ? new WebAssembly.Memory({ initial: 16, maximum: 65536, shared: true }) : new WebAssembly.Memory({ initial: 16 });
    const kernels = fewRowsKernels(memory);
    const rng = new Rng(T * 1000 + M * 100 + K + N);
    const heap = new Float32Array(memory.buffer);
    // a at float 16 (a 64-byte offset: alignment is not assumed but is what tfjs' malloc gives), then b, then out.
    const aAt = 16;
    const a = randomArray(rng, T * M * K);
    const b = randomArray(rng, T * N * K);
    const bAt = aAt + a.length + 4;
    const outAt = bAt + b.length + 4;
    heap.set(a, aAt);
    heap.set(b, bAt);
    for (const transposeB of [true, false]) {
      // a·b needs b as [T, K, N]: the same numbers read with the other layout.
      if (!transposeB && N % 4 !== 0) continue;
      if (transposeB && K % 4 !== 0) continue;
      heap.fill(Number.NaN, outAt, outAt + T * M * N + 8);
      if (transposeB) kernels.abt(aAt * 4, bAt * 4, outAt * 4, T, M, N, K);
      else kernels.ab(aAt * 4, bAt * 4, outAt * 4, T, M, K, N);
      const got = heap.slice(outAt, outAt + T * M * N);
      expect(maxRelError(got, reference(a, b, T, M, K, N, transposeB))).toBeLessThan(1e-6 * Math.sqrt(K) + 1e-7);
      // nothing written past the output
      expect(Number.isNaN(heap[outAt + T * M * N]!)).toBe(true);
    }
  });
});

describe("on the wasm backend", () => {
  beforeAll(async () => {
    await initBackend("wasm", { log: () => {} });
  });

  const info = (t: tf.Tensor): TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype }) as TensorInfo;

  it("tf.matMul of decode-attention shapes equals float64, with no tensor left behind", () => {
    const rng = new Rng(7);
    const before = tf.memory().numTensors;
    for (const [T, M, K, N] of SHAPES) {
      const a = randomArray(rng, T * M * K);
      const bt = randomArray(rng, T * N * K);
      const scores = tf.tidy(() => tf.matMul(tf.tensor3d(a, [T, M, K]), tf.tensor3d(bt, [T, N, K]), false, true).dataSync());
      expect(maxRelError(scores, reference(a, bt, T, M, K, N, true))).toBeLessThan(1e-6 * Math.sqrt(K) + 1e-7);
      const p = randomArray(rng, T * M * N);
      const v = randomArray(rng, T * N * K);
      const mixed = tf.tidy(() => tf.matMul(tf.tensor3d(p, [T, M, N]), tf.tensor3d(v, [T, N, K])).dataSync());
      expect(maxRelError(mixed, reference(p, v, T, M, N, K, false))).toBeLessThan(1e-6 * Math.sqrt(N) + 1e-7);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it("takes exactly the products it is for; the others are left to the other routes", () => {
    const backend = tf.backend() as unknown as FewRowsBackend;
    const cases: Array<[number[], number[], boolean, boolean, boolean]> = [
      // [a shape, b shape, transposeA, transposeB, taken]
      [[2, 3, 64], [2, 512, 64], false, true, true],
      [[2, 3, 512], [2, 512, 64], false, false, true],
      [[1, 384], [8192, 384], false, true, true], // one batch, b transposed: a·bᵀ reads each row once
      [[1, 384], [384, 1152], false, false, false], // one batch, plain: XNNPACK's GEMM
      [[2, 9, 64], [2, 512, 64], false, true, false], // more than 8 rows
      [[2, 64, 3], [2, 512, 64], true, true, false], // a transposed
      [[2, 3, 62], [2, 512, 62], false, true, false], // shared dim not a multiple of 4
      [[2, 3, 512], [2, 512, 62], false, false, false], // columns not a multiple of 4
      [[2, 3, 64], [1, 512, 64], false, true, false], // broadcast batch
      [[2, 1, 3, 64], [2, 2, 512, 64], false, true, false], // broadcast batch, rank 4
    ];
    for (const [as, bs, ta, tb, taken] of cases) {
      const a = tf.zeros(as);
      const b = tf.zeros(bs);
      const out = fewRowsProduct(info(a), info(b), ta, tb, backend);
      expect(out !== null, `${JSON.stringify([as, bs, ta, tb])}`).toBe(taken);
      if (out !== null) tf.engine().disposeTensor(tf.engine().makeTensorFromTensorInfo(out));
      tf.dispose([a, b]);
    }
  });
});
