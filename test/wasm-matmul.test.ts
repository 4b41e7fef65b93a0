import { beforeAll, describe, expect, it } from "vitest";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { installWasmMatMul, isWasmMatMulInstalled, SWAPPED_MAX_ROWS, SWAPPED_MIN_KEYS, uninstallWasmMatMul } from "../src/backend/wasm-matmul.js";
import { broadcastBatchPairs } from "../src/backend/batch-pairs.js";
import { matMulCost } from "../src/backend/matmul-cost.js";
import { Rng } from "../src/util/rng.js";

const FLAGS: Array<[boolean, boolean]> = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

/** Batch shapes of a and b; the matrices are M=7, K=13, N=5 (odd on purpose). */
const BATCHES: Array<[number[], number[]]> = [
  [[], []],
  [[1], [1]],
  [[3], [3]],
  [[2, 3], [2, 3]],
  [[1], [4]],
  [[4], [1]],
  [[2, 3], [3]],
  [[4], []],
];

const M = 7;
const K = 13;
const N = 5;

function operandShape(batch: number[], rows: number, cols: number, transposed: boolean): number[] {
  return [...batch, ...(transposed ? [cols, rows] : [rows, cols])];
}

function randomArray(rng: Rng, size: number): Float32Array {
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = rng.next() * 2 - 1;
  return out;
}

/** max |x - y| / max(1, max |y|): relative to the scale of the reference. */
function relError(x: ArrayLike<number>, y: ArrayLike<number>): number {
  expect(x.length).toBe(y.length);
  let maxDiff = 0;
  let scale = 1;
  for (let i = 0; i < x.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return maxDiff / scale;
}

interface Case {
  aShape: number[];
  bShape: number[];
  aData: Float32Array;
  bData: Float32Array;
  wData: Float32Array;
  outShape: number[];
  tA: boolean;
  tB: boolean;
}

function makeCase(rng: Rng, batchA: number[], batchB: number[], tA: boolean, tB: boolean): Case {
  const aShape = operandShape(batchA, M, K, tA);
  const bShape = operandShape(batchB, K, N, tB);
  const outBatch = broadcastBatchPairs(batchA, batchB).outBatchShape;
  const outShape = [...outBatch, M, N];
  const size = (s: number[]): number => s.reduce((p, d) => p * d, 1);
  return {
    aShape,
    bShape,
    aData: randomArray(rng, size(aShape)),
    bData: randomArray(rng, size(bShape)),
    wData: randomArray(rng, size(outShape)),
    outShape,
    tA,
    tB,
  };
}

interface Result {
  value: Float32Array;
  shape: number[];
  gradA?: Float32Array;
  gradB?: Float32Array;
}

/**
 * matMul, and the gradients of sum(matMul(a,b) * w), on whatever backend is current.
 * tfjs-core's BatchMatMul gradient does not sum over broadcast batch dims (it fails on
 * every backend), so gradients are only taken when both operands have the same batch shape.
 */
function run(c: Case): Result {
  const sameBatch = c.aShape.slice(0, -2).join(",") === c.bShape.slice(0, -2).join(",");
  const result: Result = { value: new Float32Array(0), shape: [] };
  // tidy returns nothing: it would walk returned typed arrays element by element.
  tf.tidy(() => {
    const a = tf.tensor(c.aData, c.aShape);
    const b = tf.tensor(c.bData, c.bShape);
    const product = tf.matMul(a, b, c.tA, c.tB);
    result.value = product.dataSync() as Float32Array;
    result.shape = product.shape;
    if (sameBatch) {
      const w = tf.tensor(c.wData, c.outShape);
      const [gA, gB] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y, c.tA, c.tB), w)))([a, b]);
      result.gradA = gA.dataSync() as Float32Array;
      result.gradB = gB.dataSync() as Float32Array;
    }
  });
  return result;
}

async function onBackend<T>(name: string, fn: () => T): Promise<T> {
  await tf.setBackend(name);
  return fn();
}

/** Float64 reference with explicit broadcasting, independent of tfjs. */
function referenceMatMul(c: Case): Float64Array {
  const batchA = c.aShape.slice(0, -2);
  const batchB = c.bShape.slice(0, -2);
  const { pairs } = broadcastBatchPairs(batchA, batchB);
  const out = new Float64Array(pairs.length * M * N);
  const aAt = (bi: number, i: number, k: number): number => (c.tA ? c.aData[bi * M * K + k * M + i] : c.aData[bi * M * K + i * K + k]);
  const bAt = (bi: number, k: number, j: number): number => (c.tB ? c.bData[bi * K * N + j * K + k] : c.bData[bi * K * N + k * N + j]);
  pairs.forEach(([ia, ib], o) => {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += aAt(ia, i, k) * bAt(ib, k, j);
        out[o * M * N + i * N + j] = s;
      }
    }
  });
  return out;
}

describe("project wasm BatchMatMul", () => {
  beforeAll(async () => {
    await import("@tensorflow/tfjs-backend-cpu");
    const info = await initBackend("wasm", { log: () => {} });
    expect(info.name).toBe("wasm");
    // Products this small would stay on the native kernel by cost; force the rewrite to test it.
    installWasmMatMul({ routing: "always" });
  });

  it("is installed by initBackend and install/uninstall are idempotent", () => {
    expect(isWasmMatMulInstalled()).toBe(true);
    const ours = tf.getKernel(tf.BatchMatMul, "wasm").kernelFunc;
    installWasmMatMul({ routing: "always" });
    expect(tf.getKernel(tf.BatchMatMul, "wasm").kernelFunc).toBe(ours);
    uninstallWasmMatMul();
    expect(isWasmMatMulInstalled()).toBe(false);
    const native = tf.getKernel(tf.BatchMatMul, "wasm").kernelFunc;
    expect(native).not.toBe(ours);
    uninstallWasmMatMul();
    expect(tf.getKernel(tf.BatchMatMul, "wasm").kernelFunc).toBe(native);
    installWasmMatMul({ routing: "always" });
    expect(isWasmMatMulInstalled()).toBe(true);
  });

  const rng = new Rng(1234);
  for (const [batchA, batchB] of BATCHES) {
    for (const [tA, tB] of FLAGS) {
      const label = `a batch [${batchA}] b batch [${batchB}] transposeA=${tA} transposeB=${tB}`;
      const c = makeCase(rng, batchA, batchB, tA, tB);
      it(`values (and gradients without broadcasting) match cpu and a float64 reference: ${label}`, async () => {
        const wasm = await onBackend("wasm", () => run(c));
        const cpu = await onBackend("cpu", () => run(c));
        await tf.setBackend("wasm");
        expect(wasm.shape).toEqual(c.outShape);
        expect(cpu.shape).toEqual(c.outShape);
        expect(relError(wasm.value, cpu.value)).toBeLessThan(1e-5);
        expect(relError(wasm.value, referenceMatMul(c))).toBeLessThan(1e-5);
        if (batchA.join(",") === batchB.join(",")) {
          expect(relError(wasm.gradA!, cpu.gradA!)).toBeLessThan(1e-5);
          expect(relError(wasm.gradB!, cpu.gradB!)).toBeLessThan(1e-5);
        }
      });
    }
  }

  it("broadcasts batch dims [2,1] x [1,3] like numpy (cpu and native wasm flatten batch dims and get this wrong)", async () => {
    await tf.setBackend("wasm");
    for (const [tA, tB] of FLAGS) {
      const c = makeCase(rng, [2, 1], [1, 3], tA, tB);
      const got = run(c);
      expect(got.shape).toEqual([2, 3, M, N]);
      expect(relError(got.value, referenceMatMul(c))).toBeLessThan(1e-5);
    }
  });

  it("fused matMul with bias and relu matches cpu for transposed and batched operands", async () => {
    for (const [tA, tB] of FLAGS) {
      for (const [batchA, batchB] of [
        [[3], [3]],
        [[2], [1]],
      ] as Array<[number[], number[]]>) {
        const c = makeCase(rng, batchA, batchB, tA, tB);
        const bias = randomArray(rng, N);
        const fused = (): Float32Array => {
          let values = new Float32Array(0);
          tf.tidy(() => {
            const out = tf.fused.matMul({
              a: tf.tensor3d(c.aData, c.aShape as [number, number, number]),
              b: tf.tensor3d(c.bData, c.bShape as [number, number, number]),
              transposeA: tA,
              transposeB: tB,
              bias: tf.tensor1d(bias),
              activation: "relu",
            });
            values = out.dataSync() as Float32Array;
          });
          return values;
        };
        const wasm = await onBackend("wasm", fused);
        const cpu = await onBackend("cpu", fused);
        expect(relError(wasm, cpu)).toBeLessThan(1e-5);
        // relu must have zeroed something, or this case would not test the epilogue
        expect(cpu.some((v) => v === 0)).toBe(true);
      }
    }
    await tf.setBackend("wasm");
  });

  it("a larger attention-shaped product and its gradient match cpu", async () => {
    // [heads, T, d] x [heads, T, d]^T like q·kᵀ, big enough to hit XNNPACK's blocked kernels.
    const c: Case = {
      aShape: [4, 96, 64],
      bShape: [4, 80, 64],
      aData: randomArray(rng, 4 * 96 * 64),
      bData: randomArray(rng, 4 * 80 * 64),
      wData: randomArray(rng, 4 * 96 * 80),
      outShape: [4, 96, 80],
      tA: false,
      tB: true,
    };
    const wasm = await onBackend("wasm", () => run(c));
    const cpu = await onBackend("cpu", () => run(c));
    await tf.setBackend("wasm");
    expect(relError(wasm.value, cpu.value)).toBeLessThan(1e-5);
    expect(relError(wasm.gradA!, cpu.gradA!)).toBeLessThan(1e-5);
    expect(relError(wasm.gradB!, cpu.gradB!)).toBeLessThan(1e-5);
  });

  it("cost routing: tiny products stay native, large and non-flattenable ones are rewritten, all correct", async () => {
    await tf.setBackend("wasm");
    try {
      installWasmMatMul({ routing: "cost" });
      for (const [batchA, batchB] of [[[3], [3]], [[2, 1], [1, 3]]] as Array<[number[], number[]]>) {
        for (const [tA, tB] of FLAGS) {
          const c = makeCase(rng, batchA, batchB, tA, tB);
          expect(relError(run(c).value, referenceMatMul(c))).toBeLessThan(1e-5);
        }
      }
    } finally {
      installWasmMatMul({ routing: "always" });
    }
  });

  it("leaks no tensors or wasm buffers", async () => {
    await tf.setBackend("wasm");
    const c = makeCase(rng, [2, 3], [2, 3], true, true);
    const broadcast = makeCase(rng, [2, 3], [3], true, true);
    run(c); // warm up (first calls may allocate caches)
    run(c); // a second use: wasm-matmul keeps transposes of operands used again, freed on the next product
    const tensorsBefore = tf.memory().numTensors;
    const dataBefore = tf.engine().backend.numDataIds();
    run(broadcast);
    for (let i = 0; i < 3; i++) run(c);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(tf.engine().backend.numDataIds()).toBe(dataBefore);
  });

  it("keeps the transpose of a right operand used again (same bits as a fresh copy) and frees it with its source", async () => {
    await tf.setBackend("wasm");
    const backend = tf.engine().backend;
    const c = makeCase(rng, [], [], false, true);
    const a = tf.tensor(c.aData, c.aShape);
    const b = tf.tensor(c.bData, c.bShape);
    // A product with a transposed operand used once: it sweeps (frees kept transposes whose source is gone).
    const sweep = (): void => tf.tidy(() => void tf.matMul(tf.ones([2, 3]), tf.ones([4, 3]), false, true));
    sweep(); // what earlier tests left kept
    const before = backend.numDataIds();
    const first = tf.matMul(a, b, false, true); // first use of b: transposed into a temporary
    expect(backend.numDataIds()).toBe(before + 1);
    const second = tf.matMul(a, b, false, true); // second use: the transpose is kept
    expect(backend.numDataIds()).toBe(before + 3);
    const third = tf.matMul(a, b, false, true); // reused: only the output is new
    expect(backend.numDataIds()).toBe(before + 4);
    const values = [first, second, third].map((t) => Array.from(t.dataSync()));
    expect(values[1]).toEqual(values[0]);
    expect(values[2]).toEqual(values[0]);
    expect(relError(values[0]!, referenceMatMul(c))).toBeLessThan(1e-5);
    tf.dispose([first, second, third, b]);
    expect(backend.numDataIds()).toBe(before); // a + the kept transpose (b itself is gone)
    sweep(); // the next product frees the transpose of the disposed b
    expect(backend.numDataIds()).toBe(before - 1);
    a.dispose();
  });

  it("few query rows times many transposed keys (a decode step's q·Kᵀ) runs as (K·qᵀ)ᵀ and equals float64", async () => {
    await tf.setBackend("wasm");
    installWasmMatMul({ routing: "cost" });
    try {
      const shapes: Array<[number[], number[]]> = [
        [[2, 3, 64], [2, SWAPPED_MIN_KEYS + 5, 64]], // per batch
        [[2, 1, 16], [1, SWAPPED_MIN_KEYS, 16]], // b broadcast
        [[SWAPPED_MAX_ROWS, 8], [SWAPPED_MIN_KEYS + 1, 8]], // rank 2
      ];
      for (const [aShape, bShape] of shapes) {
        const size = (s: number[]): number => s.reduce((p, d) => p * d, 1);
        const c: Case = {
          aShape,
          bShape,
          aData: randomArray(rng, size(aShape)),
          bData: randomArray(rng, size(bShape)),
          wData: new Float32Array(0),
          outShape: [...broadcastBatchPairs(aShape.slice(0, -2), bShape.slice(0, -2)).outBatchShape, aShape.at(-2)!, bShape.at(-2)!],
          tA: false,
          tB: true,
        };
        const tensors = tf.memory().numTensors;
        const dataIds = tf.engine().backend.numDataIds();
        const out = tf.tidy(() => tf.matMul(tf.tensor(c.aData, aShape), tf.tensor(c.bData, bShape), false, true));
        expect(out.shape).toEqual(c.outShape);
        // float64 a·bᵀ per broadcast batch pair
        const [m, k] = aShape.slice(-2) as [number, number];
        const n = bShape.at(-2)!;
        const ref = new Float64Array(size(c.outShape));
        broadcastBatchPairs(aShape.slice(0, -2), bShape.slice(0, -2)).pairs.forEach(([ia, ib], o) => {
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < n; j++) {
              let sum = 0;
              for (let t = 0; t < k; t++) sum += c.aData[ia * m * k + i * k + t]! * c.bData[ib * n * k + j * k + t]!;
              ref[o * m * n + i * n + j] = sum;
            }
          }
        });
        expect(relError(out.dataSync(), ref)).toBeLessThan(1e-5);
        out.dispose();
        expect(tf.memory().numTensors).toBe(tensors);
        expect(tf.engine().backend.numDataIds()).toBe(dataIds);
      }
    } finally {
      installWasmMatMul({ routing: "always" });
    }
  });

  it("rejects mismatched inner dims", async () => {
    await tf.setBackend("wasm");
    const a = tf.zeros([2, 3, 4]);
    const b = tf.zeros([2, 5, 6]);
    expect(() => tf.matMul(a, b)).toThrow(/inner/);
    tf.dispose([a, b]);
  });
});

describe("broadcastBatchPairs", () => {
  it("maps output batches to operand batches with numpy rules", () => {
    expect(broadcastBatchPairs([2, 1], [1, 3])).toEqual({
      outBatchShape: [2, 3],
      pairs: [
        [0, 0],
        [0, 1],
        [0, 2],
        [1, 0],
        [1, 1],
        [1, 2],
      ],
    });
    expect(broadcastBatchPairs([3], [2, 3]).pairs).toEqual([
      [0, 0],
      [1, 1],
      [2, 2],
      [0, 3],
      [1, 4],
      [2, 5],
    ]);
    expect(broadcastBatchPairs([], [])).toEqual({ outBatchShape: [], pairs: [[0, 0]] });
  });

  it("rejects batch dims that do not broadcast", () => {
    expect(() => broadcastBatchPairs([2], [3])).toThrow(/do not broadcast/);
  });
});

describe("matMulCost", () => {
  it("keeps decode-sized products native and sends large transposed/batched ones to the rewrite", () => {
    expect(matMulCost([7, 13], [5, 13], false, true).route).toBe("native");
    expect(matMulCost([6, 1, 64], [6, 1024, 64], false, true).route).toBe("native");
    expect(matMulCost([512, 512], [512, 512], false, true).route).toBe("project");
    expect(matMulCost([8, 256, 64], [8, 64, 256], false, false).route).toBe("project");
    expect(matMulCost([256, 384], [256, 1024], true, false).route).toBe("project");
  });

  it("never routes to native a broadcast that native computes wrongly", () => {
    const cost = matMulCost([2, 1, 7, 13], [1, 3, 13, 5], false, false);
    expect(cost.nativeCorrect).toBe(false);
    expect(cost.route).toBe("project");
    expect(matMulCost([1, 7, 13], [4, 13, 5], false, false).nativeCorrect).toBe(true);
    expect(matMulCost([2, 3, 7, 13], [3, 13, 5], false, false).nativeCorrect).toBe(true);
  });
});
