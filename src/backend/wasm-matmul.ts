/**
 * A project-owned `BatchMatMul` (and `_FusedMatMul`) kernel for the tfjs `wasm` backend.
 *
 * Why: in Node the wasm backend is single-threaded and its C++ BatchMatMul sends only
 * the plain case (batch 1, no transpose) to XNNPACK's packed GEMM; every transposed or
 * batched product goes to a scalar triple loop that is 10–50x slower. It also flattens
 * batch dims before broadcasting, so [2,1] x [1,3] batches come out wrong (as on cpu).
 * This kernel rewrites every product into plain 2-D products:
 *   1. transposes are materialised as heap copies (wasm-copies.ts transposeLastTwo);
 *   2. if `b` has a single batch, `a`'s batches are folded into rows: one GEMM;
 *   3. otherwise each output batch is a plain [1,M,K]x[1,K,N] GEMM on copied slices,
 *      written into one output buffer.
 * The plain GEMMs run on the original kernel, which is kept and called directly.
 * The rewrite costs O(K·N + M·K) per product, so decode-sized products (a few rows) stay on
 * the original kernel when that is faster: see matmul-cost.ts.
 * Gradients need nothing: tfjs differentiates matMul into matMuls with transpose flags,
 * which land here again.
 */
import * as tf from "../tf.js";
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from "../tf.js";
import { broadcastBatchPairs } from "./batch-pairs.js";
import { matMulCost } from "./matmul-cost.js";
import { fail } from "../util/errors.js";
import { onThreadPool } from "./wasm-threads.js";
import { fewRowsProduct, type FewRowsBackend } from "./wasm-few-rows.js";
import { transposeLastTwo } from "./wasm-copies.js";

const WASM = "wasm";
/** Property on our kernel function that holds the kernel it replaced (survives duplicate module copies). */
const ORIGINAL_KEY = "__edgeinfOriginalKernel";
const ROUTING_KEY = "__edgeinfRouting";

/**
 * "cost": each product takes the faster route by matmul-cost.ts (default).
 * "always": every transposed or batched product is rewritten (tests use it to cover the rewrite).
 */
export type WasmMatMulRouting = "cost" | "always";

export interface InstallWasmMatMulOptions {
  routing?: WasmMatMulRouting;
  /** Products with a few rows on the left run as SIMD loops (wasm-few-rows.ts) under "cost" routing; default true. */
  fewRows?: boolean;
}

interface RoutingState {
  routing: WasmMatMulRouting;
  fewRows: boolean;
}

type MarkedKernelFunc = KernelFunc & { [ORIGINAL_KEY]?: KernelConfig; [ROUTING_KEY]?: RoutingState };

/** The wasm kernels this file composes; resolved once at install time. */
interface WasmKernels {
  reshape: KernelFunc;
}

/** The parts of tfjs-backend-wasm's BackendWasm used here (public methods of that class). */
interface HeapBackend {
  makeOutput(shape: number[], dtype: "float32"): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: object): boolean;
  dataIdMap: { has(dataId: object): boolean };
}

/** A plain product of rank-3 operands [1 or B, M, K] x [1, K, N] on the original kernel. */
type PlainProduct = (a3: TensorInfo, b3: TensorInfo) => TensorInfo;

/** Replaces wasm's BatchMatMul and _FusedMatMul with the project kernels. Idempotent; a repeat call updates the routing. */
export function installWasmMatMul(opts: InstallWasmMatMulOptions = {}): void {
  const routing = opts.routing ?? "cost";
  if (routing !== "cost" && routing !== "always") fail(`wasm matmul routing "${String(routing)}" is unknown`, 'use "cost" or "always"');
  const kernels = wasmKernels();
  const state: RoutingState = { routing, fewRows: opts.fewRows ?? true };
  replaceKernel(tf.BatchMatMul, state, (original) => projectBatchMatMul(original.kernelFunc, kernels, state));
  if (tf.getKernel(tf._FusedMatMul, WASM) !== undefined) {
    replaceKernel(tf._FusedMatMul, state, (original) => projectFusedMatMul(original.kernelFunc, kernels, state));
  }
}

/** Puts wasm's own kernels back (for benchmarks comparing the two). Idempotent. */
export function uninstallWasmMatMul(): void {
  for (const name of [tf.BatchMatMul, tf._FusedMatMul]) {
    const current = tf.getKernel(name, WASM);
    const original = current ? (current.kernelFunc as MarkedKernelFunc)[ORIGINAL_KEY] : undefined;
    if (original === undefined) continue;
    tf.unregisterKernel(name, WASM);
    tf.registerKernel(original);
  }
}

/** True when wasm's BatchMatMul is the project kernel. */
export function isWasmMatMulInstalled(): boolean {
  const current = tf.getKernel(tf.BatchMatMul, WASM);
  return current !== undefined && (current.kernelFunc as MarkedKernelFunc)[ORIGINAL_KEY] !== undefined;
}

function replaceKernel(name: string, state: RoutingState, makeKernel: (original: KernelConfig) => KernelFunc): void {
  const current = tf.getKernel(name, WASM);
  if (current === undefined) {
    fail(`wasm kernel ${name} is not registered`, "import @tensorflow/tfjs-backend-wasm first (initBackend('wasm') does this)");
  }
  const installed = (current.kernelFunc as MarkedKernelFunc)[ROUTING_KEY];
  if (installed !== undefined) {
    installed.routing = state.routing; // already ours
    installed.fewRows = state.fewRows;
    return;
  }
  const kernelFunc: MarkedKernelFunc = makeKernel(current);
  kernelFunc[ORIGINAL_KEY] = current;
  kernelFunc[ROUTING_KEY] = state;
  tf.unregisterKernel(name, WASM);
  // Keep the original setupFunc: it binds the C++ function our kernel reaches through the
  // original kernelFunc, and must run if the wasm backend is (re)initialised later.
  tf.registerKernel({ kernelName: name, backendName: WASM, kernelFunc, setupFunc: current.setupFunc, disposeFunc: current.disposeFunc });
}

function wasmKernels(): WasmKernels {
  const get = (name: string): KernelFunc => {
    const config = tf.getKernel(name, WASM);
    if (config === undefined) {
      fail(`wasm kernel ${name} is not registered`, "import @tensorflow/tfjs-backend-wasm first (initBackend('wasm') does this)");
    }
    return config.kernelFunc;
  };
  return { reshape: get(tf.Reshape) };
}

/**
 * Multiply-adds from which a product runs on XNNPACK's thread pool (when wasm threads are on). Below it, waking a
 * thread costs more than it saves: measured on 2 cores, 1×64×64 took 8 µs threaded against 4.5 µs, 1×384×1152
 * 25 µs against 47 µs.
 */
export const THREADED_MIN_MACS = 1 << 22;

/** The kernel, run on the thread pool when its product is large enough. */
function poolForLarge(kernel: KernelFunc): KernelFunc {
  return (args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const macs = productMacs(a.shape, b.shape, args.attrs?.["transposeA"] === true, args.attrs?.["transposeB"] === true);
    return macs >= THREADED_MIN_MACS ? onThreadPool(() => kernel(args)) : kernel(args);
  };
}

/** batch·M·K·N of a product, its dims read through the transpose flags (0 for shapes no product has). */
function productMacs(a: readonly number[], b: readonly number[], transposeA: boolean, transposeB: boolean): number {
  if (a.length < 2 || b.length < 2) return 0;
  const batch = Math.max(sizeOf(a.slice(0, -2)), sizeOf(b.slice(0, -2)));
  const [aRows, aCols] = a.slice(-2) as [number, number];
  const [bRows, bCols] = b.slice(-2) as [number, number];
  const [m, k] = transposeA ? [aCols, aRows] : [aRows, aCols];
  const n = transposeB ? bRows : bCols;
  return batch * m * k * n;
}

function projectBatchMatMul(original: KernelFunc, kernels: WasmKernels, state: RoutingState): KernelFunc {
  return poolForLarge((args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const transposeA = args.attrs?.["transposeA"] === true;
    const transposeB = args.attrs?.["transposeB"] === true;
    const backend = args.backend as HeapBackend;
    const plain: PlainProduct = (a3, b3) =>
      single(original({ inputs: { a: a3, b: b3 }, backend, attrs: { transposeA: false, transposeB: false } }));
    if (state.routing === "cost") {
      const few = state.fewRows ? fewRowsProduct(a, b, transposeA, transposeB, args.backend as unknown as FewRowsBackend) : null;
      if (few !== null) return few;
      if (fewRowsTimesTransposed(a, b, transposeA, transposeB)) return swappedProduct(a, b, plain, kernels, backend);
    }
    if (!shouldRewrite(a, b, transposeA, transposeB, state)) return original(args);
    return rewrittenProduct(a, b, transposeA, transposeB, plain, kernels, backend);
  });
}

function projectFusedMatMul(original: KernelFunc, kernels: WasmKernels, state: RoutingState): KernelFunc {
  return poolForLarge((args) => {
    const { a, b, bias, preluActivationWeights } = args.inputs as {
      a: TensorInfo;
      b: TensorInfo;
      bias?: TensorInfo;
      preluActivationWeights?: TensorInfo;
    };
    const attrs = args.attrs ?? {};
    const transposeA = attrs["transposeA"] === true;
    const transposeB = attrs["transposeB"] === true;
    const n = transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
    // Per-batch splitting is only exact when the epilogue is per output column:
    // a rank-1 bias of length N (or none) and an elementwise activation without PReLU weights.
    const splittable = preluActivationWeights == null && (bias == null || (bias.shape.length === 1 && bias.shape[0] === n));
    if (!splittable || !shouldRewrite(a, b, transposeA, transposeB, state)) return original(args);
    const backend = args.backend as HeapBackend;
    const plainAttrs: NamedAttrMap = { ...attrs, transposeA: false, transposeB: false };
    const plain: PlainProduct = (a3, b3) => {
      const inputs: Record<string, TensorInfo> = bias == null ? { a: a3, b: b3 } : { a: a3, b: b3, bias };
      return single(original({ inputs, backend, attrs: plainAttrs }));
    };
    return rewrittenProduct(a, b, transposeA, transposeB, plain, kernels, backend);
  });
}

/** Rows of `a` up to which A·Bᵀ runs as (B·Aᵀ)ᵀ: attention scores of a decode step (a few query rows per KV head). */
export const SWAPPED_MAX_ROWS = 8;
/**
 * Rows of `b` (keys) from which it does. [2,3,64]·[2,S,64]ᵀ, 2 threads: S = 512 216 µs swapped against 188 µs;
 * 1024: 242 against 344; 2048: 332 against 630; 4096: 500 against 1166.
 */
export const SWAPPED_MIN_KEYS = 768;

/**
 * A·Bᵀ with few rows in A and many in B: `q·Kᵀ` of a decode step, [Hkv, g, d]·[Hkv, S, d]ᵀ. wasm's batched loop
 * runs it at about 2.7 GFLOP/s, so it grows with the context (1.2 ms at S = 4096 for edge-lm, per layer);
 * transposing K for a plain GEMM costs as much, since K is a new tensor every step and XNNPACK packs its right
 * operand. As (B·Aᵀ)ᵀ, K is the GEMM's left operand (no copy
 * when it has one batch, one heap copy per batch otherwise) and Aᵀ, a few columns, is what gets packed.
 */
function fewRowsTimesTransposed(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): boolean {
  if (transposeA || !transposeB || a.dtype !== "float32" || b.dtype !== "float32") return false;
  if (a.shape.length < 2 || b.shape.length < 2 || sizeOf(a.shape) === 0 || sizeOf(b.shape) === 0) return false;
  const m = a.shape[a.shape.length - 2]!;
  const n = b.shape[b.shape.length - 2]!;
  return m <= SWAPPED_MAX_ROWS && n >= SWAPPED_MIN_KEYS && a.shape[a.shape.length - 1] === b.shape[b.shape.length - 1];
}

type Keep = <T extends TensorInfo>(t: T) => T;

/** Runs fn with a `keep` that registers temporaries, all disposed when fn returns or throws. */
function withTemporaries(backend: HeapBackend, fn: (keep: Keep) => TensorInfo): TensorInfo {
  const temps: TensorInfo[] = [];
  try {
    return fn((t) => {
      temps.push(t);
      return t;
    });
  } finally {
    for (const t of temps) backend.disposeData(t.dataId);
  }
}

/** out[i] = (B[j] · A[i]ᵀ)ᵀ for each broadcast batch pair (i, j). */
function swappedProduct(a: TensorInfo, b: TensorInfo, plain: PlainProduct, kernels: WasmKernels, backend: HeapBackend): TensorInfo {
  const { outBatchShape, pairs } = broadcastBatchPairs(a.shape.slice(0, -2), b.shape.slice(0, -2));
  return withTemporaries(backend, (keep) => {
    const at3 = keep(plainRank3(a, true, kernels, backend, keep)); // [batchA, K, M]: Aᵀ, small
    const b3 = keep(plainRank3(b, false, kernels, backend, keep)); // [batchB, N, K]: B as it is
    const m = at3.shape[2]!;
    const n = b3.shape[1]!;
    const out = backend.makeOutput([pairs.length, m, n], "float32");
    try {
      const sliceAt = memoSlices(at3, backend, keep);
      const sliceB = memoSlices(b3, backend, keep);
      pairs.forEach(([ia, ib], o) => {
        const part = plain(sliceB(ib), sliceAt(ia)); // [1, N, M]
        const src = backend.typedArrayFromHeap(part);
        const dst = backend.typedArrayFromHeap(out);
        const base = o * m * n;
        for (let r = 0; r < n; r++) for (let c = 0; c < m; c++) dst[base + c * n + r] = src[r * m + c]!;
        backend.disposeData(part.dataId);
      });
    } catch (e) {
      backend.disposeData(out.dataId);
      throw e;
    }
    out.shape = [...outBatchShape, m, n];
    return out;
  });
}

/**
 * False when the original kernel is already the plain fast case, is estimated faster,
 * or is the only one that should answer (non-float32 dtype errors, empty or malformed shapes).
 */
function shouldRewrite(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean, state: RoutingState): boolean {
  if (a.dtype !== "float32" || b.dtype !== "float32") return false;
  if (a.shape.length < 2 || b.shape.length < 2) return false;
  if (sizeOf(a.shape) === 0 || sizeOf(b.shape) === 0) return false;
  const batchA = sizeOf(a.shape.slice(0, -2));
  const batchB = sizeOf(b.shape.slice(0, -2));
  if (!transposeA && !transposeB && batchA === 1 && batchB === 1) return false;
  return state.routing === "always" || matMulCost(a.shape, b.shape, transposeA, transposeB).route === "project";
}

function rewrittenProduct(
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  plain: PlainProduct,
  kernels: WasmKernels,
  backend: HeapBackend,
): TensorInfo {
  const innerA = transposeA ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
  const innerB = transposeB ? b.shape[b.shape.length - 1] : b.shape[b.shape.length - 2];
  if (innerA !== innerB) {
    fail(
      `matMul inner dims differ: a [${a.shape.join(",")}] (transposeA=${transposeA}) has ${innerA}, b [${b.shape.join(",")}] (transposeB=${transposeB}) has ${innerB}`,
      "fix the operand shapes or transpose flags",
    );
  }
  const { outBatchShape, pairs } = broadcastBatchPairs(a.shape.slice(0, -2), b.shape.slice(0, -2));
  return withTemporaries(backend, (keep) => {
    const a3 = keep(plainRank3(a, transposeA, kernels, backend, keep)); // [batchA, M, K]
    const cachedB = transposeB ? transposedWeights.lookup(b, () => plainRank3(b, true, kernels, backend, keep), backend) : null;
    const b3 = cachedB ?? keep(plainRank3(b, transposeB, kernels, backend, keep)); // [batchB, K, N]
    const [batchA, m, k] = a3.shape;
    const [batchB, , n] = b3.shape;
    const outShape = [...outBatchShape, m, n];

    if (batchB === 1) {
      // Same right operand for every batch: fold a's batches into rows, one GEMM.
      const rows = keep(call(kernels.reshape, { x: a3 }, backend, { shape: [1, batchA * m, k] }));
      const out = plain(rows, b3);
      out.shape = outShape;
      return out;
    }

    // batchB > 1: one GEMM per output batch, each copied into its place in `out`.
    const out = backend.makeOutput([pairs.length, m, n], "float32");
    try {
      const sliceA = memoSlices(a3, backend, keep);
      const sliceB = memoSlices(b3, backend, keep);
      pairs.forEach(([ia, ib], o) => {
        const part = plain(sliceA(ia), sliceB(ib));
        // Views are taken after every allocation: heap growth detaches older ones.
        backend.typedArrayFromHeap(out).set(backend.typedArrayFromHeap(part), o * m * n);
        backend.disposeData(part.dataId);
      });
    } catch (e) {
      backend.disposeData(out.dataId);
      throw e;
    }
    out.shape = outShape;
    return out;
  });
}

/**
 * Transposed copies of right operands that are used again and again — in training, the frozen weights W of
 * `dY·Wᵀ`, which autodiff asks for in every backward pass. Without it each such product materialised Wᵀ anew
 * (wasm's Transpose runs near 1 GB/s) and XNNPACK packed that new matrix again: on edge-lm, a segment's
 * [128,1920]·[384,1920]ᵀ took 10.2 ms; with the transpose kept, 5.5 ms, as the forward product of the same size.
 * A tensor's transpose is kept from its second use (temporaries are used once), keyed by its data and shape, and
 * freed once the source's data is gone (checked on every product). Contents are the same copy the product would
 * make, so results are unchanged bit for bit. At most MAX_BYTES are kept; beyond that products copy as before.
 */
class TransposedWeights {
  static readonly MAX_BYTES = 256 * 1024 * 1024;
  private readonly uses = new WeakMap<object, number>();
  private readonly kept = new Map<object, { shape: string; transposed: TensorInfo; bytes: number }>();
  private bytes = 0;

  /** The kept transpose of x ([1, cols, rows]), making it with `make` on x's second use; null when not kept. */
  lookup(x: TensorInfo, make: () => TensorInfo, backend: HeapBackend): TensorInfo | null {
    this.sweep(backend);
    if (x.dtype !== "float32" || sizeOf(x.shape.slice(0, -2)) !== 1) return null;
    const shape = x.shape.join(",");
    const hit = this.kept.get(x.dataId);
    if (hit !== undefined) return hit.shape === shape ? hit.transposed : null;
    const uses = (this.uses.get(x.dataId) ?? 0) + 1;
    this.uses.set(x.dataId, uses);
    const bytes = sizeOf(x.shape) * 4;
    if (uses < 2 || this.bytes + bytes > TransposedWeights.MAX_BYTES) return null;
    const transposed = make();
    this.kept.set(x.dataId, { shape, transposed, bytes });
    this.bytes += bytes;
    return transposed;
  }

  /** Frees the transposes whose source tensors were disposed. */
  private sweep(backend: HeapBackend): void {
    for (const [source, entry] of this.kept) {
      if (backend.dataIdMap.has(source)) continue;
      backend.disposeData(entry.transposed.dataId);
      this.kept.delete(source);
      this.bytes -= entry.bytes;
    }
  }
}

const transposedWeights = new TransposedWeights();

/** [..., r, c] -> [batch, rows, cols] with the matrix transpose applied in memory when asked. */
function plainRank3(
  x: TensorInfo,
  transposed: boolean,
  kernels: WasmKernels,
  backend: HeapBackend,
  keep: (t: TensorInfo) => TensorInfo,
): TensorInfo {
  const rank = x.shape.length;
  const shape3 = [sizeOf(x.shape.slice(0, -2)), x.shape[rank - 2], x.shape[rank - 1]];
  const x3 = call(kernels.reshape, { x }, backend, { shape: shape3 });
  if (!transposed) return x3;
  keep(x3);
  return transposeLastTwo(x3, backend);
}

/** Batch i of a rank-3 tensor as its own [1, r, c] tensor, each batch copied at most once. */
function memoSlices(x3: TensorInfo, backend: HeapBackend, keep: (t: TensorInfo) => TensorInfo): (i: number) => TensorInfo {
  if (x3.shape[0] === 1) return () => x3;
  const [, r, c] = x3.shape;
  const slices = new Map<number, TensorInfo>();
  return (i) => {
    let s = slices.get(i);
    if (s === undefined) {
      // A direct heap copy: wasm's Slice kernel reads back the whole source tensor on every call.
      s = keep(backend.makeOutput([1, r, c], "float32"));
      const source = backend.typedArrayFromHeap(x3).subarray(i * r * c, (i + 1) * r * c);
      backend.typedArrayFromHeap(s).set(source);
      slices.set(i, s);
    }
    return s;
  };
}

function call(kernel: KernelFunc, inputs: Record<string, TensorInfo>, backend: HeapBackend, attrs: NamedAttrMap): TensorInfo {
  return single(kernel({ inputs, backend, attrs }));
}

function single(result: TensorInfo | TensorInfo[]): TensorInfo {
  return Array.isArray(result) ? result[0] : result;
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}
