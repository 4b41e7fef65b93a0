/**
 * Batched products with few rows in the left operand — a decode step's attention, `q·Kᵀ` ([Hkv, g, d]·[Hkv, S, d]ᵀ)
 * and `p·V` ([Hkv, g, S]·[Hkv, S, d]) — as WebAssembly SIMD loops on tfjs-backend-wasm's own memory
 * (src/backend/wasm-few-rows.wat).
 *
 * Why: tfjs-wasm sends batched and transposed products to a scalar loop; on edge-lm (2 KV heads × 3 query rows)
 * each of a decode step's 16 attention products took about 200 µs at 512 tokens of context (~1 GFLOP/s), a third
 * of the step. XNNPACK's packed GEMM does not help: K and V are new tensors every step, so each call would create
 * an operator and pack its right operand. These loops read each key or value row once, 4 floats per instruction,
 * and need no packing and no copy: the module imports the backend's memory and works on the tensors in place.
 *
 * Results equal an exact product to float32 rounding, not bit for bit tfjs' loop (the sums are taken in another
 * order): test/wasm-few-rows.test.ts checks them against float64.
 */
import * as tf from "../tf.js";
import type { TensorInfo } from "../tf.js";
import { FEW_ROWS_PLAIN_WASM, FEW_ROWS_SHARED_WASM } from "./wasm-few-rows.bytes.js";

/** Rows of the left operand up to which a product runs here (a decode step has g = query heads per KV head). */
export const FEW_ROWS_MAX_ROWS = 8;

export interface FewRowsExports {
  /** out[t, i, j] = Σ_k a[t, i, k] · b[t, j, k]; k a multiple of 4. */
  abt(a: number, b: number, out: number, batches: number, m: number, n: number, k: number): void;
  /** out[t, i, :] = Σ_k a[t, i, k] · b[t, k, :]; n a multiple of 4. */
  ab(a: number, b: number, out: number, batches: number, m: number, k: number, n: number): void;
}

/** The parts of tfjs-backend-wasm's BackendWasm used here. */
export interface FewRowsBackend {
  makeOutput(shape: number[], dtype: "float32"): TensorInfo;
  getMemoryOffset(dataId: object): number;
  wasm: { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } };
}

const instances = new WeakMap<WebAssembly.Memory, FewRowsExports>();

/**
 * The two loops instantiated on `memory` (the shared-memory module for a shared memory, the plain one otherwise),
 * once per memory. Pointers passed to them are byte offsets into it.
 */
export function fewRowsKernels(memory: WebAssembly.Memory): FewRowsExports {
  let found = instances.get(memory);
  if (found === undefined) {
    const shared = typeof SharedArrayBuffer !== "undefined" && memory.buffer instanceof SharedArrayBuffer;
    const bytes = Buffer.from(shared ? FEW_ROWS_SHARED_WASM : FEW_ROWS_PLAIN_WASM, "base64");
    // A few hundred bytes: synchronous compilation is allowed and immediate.
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
    found = instance.exports as unknown as FewRowsExports;
    instances.set(memory, found);
  }
  return found;
}

/** The loops on the backend's memory (shared in tfjs' threaded build, plain otherwise); null if it is not exposed. */
function kernelsFor(backend: FewRowsBackend): FewRowsExports | null {
  const memory = backend.wasm.wasmMemory ?? backend.wasm.asm?.memory;
  return memory === undefined ? null : fewRowsKernels(memory);
}

/**
 * a·b (or a·bᵀ) when it is a few-rows product this file runs; otherwise null and the caller takes another route.
 * Runs: float32, a not transposed with at most FEW_ROWS_MAX_ROWS rows, a and b with the same batch dims, and
 * - b transposed (a·bᵀ): any batch, the shared dim a multiple of 4;
 * - b plain (a·b): at least 2 batches (one batch is a plain GEMM, XNNPACK's), b's columns a multiple of 4.
 */
export function fewRowsProduct(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean, backend: FewRowsBackend): TensorInfo | null {
  if (transposeA || a.dtype !== "float32" || b.dtype !== "float32") return null;
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || ra !== rb || !tf.util.arraysEqual(a.shape.slice(0, -2), b.shape.slice(0, -2))) return null;
  const batches = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const m = a.shape[ra - 2]!;
  const k = a.shape[ra - 1]!;
  if (m > FEW_ROWS_MAX_ROWS || batches === 0 || m === 0 || k === 0 || (transposeB && k % 4 !== 0)) return null;
  const kB = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const n = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (kB !== k || n === 0) return null;
  if (!transposeB && (batches < 2 || n % 4 !== 0)) return null;
  const kernels = kernelsFor(backend);
  if (kernels === null) return null;
  const out = backend.makeOutput([...a.shape.slice(0, -2), m, n], "float32");
  // Offsets are read after makeOutput: the heap may have grown, but offsets (unlike views) stay valid.
  const pa = backend.getMemoryOffset(a.dataId);
  const pb = backend.getMemoryOffset(b.dataId);
  const po = backend.getMemoryOffset(out.dataId);
  if (transposeB) kernels.abt(pa, pb, po, batches, m, n, k);
  else kernels.ab(pa, pb, po, batches, m, k, n);
  return out;
}
