/**
 * Slice, SplitV, Reverse, Tile, GatherV2 and Transpose for the tfjs `wasm` backend as copies on the wasm heap.
 *
 * Why: these kernels only move data, yet wasm's own were among the slowest of a training step (edge-lm, 4 sequences
 * per forward, 14 s of kernels per step): Reverse (RoPE's half swap) 2.3 s, SplitV 1.4 s, Tile 1.0 s, Slice 0.4 s.
 * wasm's Slice reads the whole source back (`readSync` copies it) on every call, and SplitV is one Slice per part;
 * Reverse and Tile work element by element in C++. Here every kernel is a loop of contiguous `set` copies, as long as
 * the innermost moved block allows. Results are the same values (copies), so nothing numeric changes.
 * GatherV2 too: H2O's per-step eviction gathers the kept rows of every layer's cache, [514,64] → [512,64], and
 * wasm's element-wise gather took 1 ms each, 16 ms of a 26 ms decode step.
 * Transpose of the last two axes (every transposed product of wasm-matmul.ts materialises one) as a loop over 32 × 32
 * tiles: wasm's kernel took 1.9 ms for [768, 696], an attention gradient's Pᵀ, against about 0.5 ms here.
 * Anything these do not cover (string tensors, Reverse over several axes, gathers with batch dims or an index out of
 * range, which wasm's kernel reports, transposes that move other axes) goes to wasm's own kernel.
 */
import * as tf from "../tf.js";
import type { KernelFunc, NamedAttrMap, TensorInfo } from "../tf.js";
import { wrapWasmKernel } from "./wasm-kernels.js";

const MARKER = "heapCopies";

type Heap = Float32Array | Int32Array | Uint8Array;

/** The parts of tfjs-backend-wasm's BackendWasm used here (public methods of that class). */
interface HeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Heap;
}

/** Replaces the five kernels on wasm; each keeps wasm's own for what it does not cover. Idempotent. */
export function installHeapCopies(): void {
  wrapWasmKernel(tf.Slice, MARKER, (original) => (args) => sliceKernel(args, original));
  wrapWasmKernel(tf.SplitV, MARKER, (original) => (args) => splitKernel(args, original));
  wrapWasmKernel(tf.Reverse, MARKER, (original) => (args) => reverseKernel(args, original));
  wrapWasmKernel(tf.Tile, MARKER, (original) => (args) => tileKernel(args, original));
  wrapWasmKernel(tf.GatherV2, MARKER, (original) => (args) => gatherKernel(args, original));
  wrapWasmKernel(tf.Transpose, MARKER, (original) => (args) => transposeKernel(args, original));
}

/** tf.util.sizeFromShape over a readonly shape. */
const sizeOf = (shape: readonly number[]): number => tf.util.sizeFromShape(shape as number[]);

/**
 * out = x[begin : begin + size] (any rank): the trailing dims that are taken whole form one contiguous block,
 * copied with one `set` per index of the leading dims.
 */
function copySlice(x: TensorInfo, begin: readonly number[], size: readonly number[], backend: HeapBackend): TensorInfo {
  const out = backend.makeOutput([...size], x.dtype);
  const n = sizeOf(size);
  if (n === 0) return out;
  const rank = x.shape.length;
  // First dim from which the slice spans the rest of x whole (so everything from it on is one block).
  let whole = rank;
  while (whole > 0 && begin[whole - 1] === 0 && size[whole - 1] === x.shape[whole - 1]) whole--;
  // The block is also contiguous across dim (whole − 1): its run is size[whole−1] × the inner block.
  const inner = sizeOf(x.shape.slice(whole));
  const run = whole === 0 ? n : size[whole - 1]! * inner;
  const lead = whole === 0 ? 0 : whole - 1;
  const xStrides = [...tf.util.computeStrides(x.shape), 1]; // row-major, the last dim's too
  // Views after the allocation: growing the heap detaches earlier ones.
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  const index = new Array<number>(lead).fill(0);
  const count = sizeOf(size.slice(0, lead));
  for (let r = 0; r < count; r++) {
    let offset = whole === 0 ? 0 : begin[lead]! * xStrides[lead]!;
    for (let d = 0; d < lead; d++) offset += (begin[d]! + index[d]!) * xStrides[d]!;
    dst.set(src.subarray(offset, offset + run), r * run);
    for (let d = lead - 1; d >= 0; d--) {
      if (++index[d]! < size[d]!) break;
      index[d] = 0;
    }
  }
  return out;
}

function sliceKernel(args: Parameters<KernelFunc>[0], original: KernelFunc): ReturnType<KernelFunc> {
  const { x } = args.inputs as { x: TensorInfo };
  if (x.dtype === "string") return original(args);
  const attrs = args.attrs as NamedAttrMap;
  const [begin, size] = tf.slice_util.parseSliceParams(x, attrs["begin"] as number[], attrs["size"] as number[]);
  return copySlice(x, begin, size, args.backend as unknown as HeapBackend);
}

function splitKernel(args: Parameters<KernelFunc>[0], original: KernelFunc): ReturnType<KernelFunc> {
  const { x } = args.inputs as { x: TensorInfo };
  if (x.dtype === "string") return original(args);
  const attrs = args.attrs as NamedAttrMap;
  const axis = tf.util.parseAxisParam(attrs["axis"] as number, x.shape)[0]!;
  const sizes = tf.backend_util.prepareSplitSize(x, attrs["numOrSizeSplits"] as number[] | number, axis);
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((s) => {
    const size = [...x.shape];
    size[axis] = s;
    const part = copySlice(x, begin, size, args.backend as unknown as HeapBackend);
    begin[axis]! += s;
    return part;
  });
}

/** Reverse along one axis: x as [outer, n, inner], each inner block copied to its mirrored place. */
function reverseKernel(args: Parameters<KernelFunc>[0], original: KernelFunc): ReturnType<KernelFunc> {
  const { x } = args.inputs as { x: TensorInfo };
  const axes = tf.util.parseAxisParam((args.attrs as NamedAttrMap)["dims"] as number[] | number, x.shape);
  // An axis named twice is reversed twice (as the cpu backend does): only odd counts reverse.
  const effective = [...new Set(axes)].filter((a) => axes.filter((b) => b === a).length % 2 === 1 && x.shape[a]! > 1);
  if (x.dtype === "string" || effective.length !== 1 || x.shape.length === 0) return original(args);
  const backend = args.backend as unknown as HeapBackend;
  const axis = effective[0]!;
  const n = x.shape[axis]!;
  const inner = sizeOf(x.shape.slice(axis + 1));
  const outer = sizeOf(x.shape.slice(0, axis));
  const out = backend.makeOutput([...x.shape], x.dtype);
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  for (let o = 0; o < outer; o++) {
    const base = o * n * inner;
    for (let i = 0; i < n; i++) {
      const from = base + (n - 1 - i) * inner;
      dst.set(src.subarray(from, from + inner), base + i * inner);
    }
  }
  return out;
}

/** Tile: from the last axis to the first, each axis' block (everything from it inward) repeated reps times. */
function tileKernel(args: Parameters<KernelFunc>[0], original: KernelFunc): ReturnType<KernelFunc> {
  const { x } = args.inputs as { x: TensorInfo };
  if (x.dtype === "string") return original(args);
  const reps = (args.attrs as NamedAttrMap)["reps"] as number[];
  const backend = args.backend as unknown as HeapBackend;
  const outShape = x.shape.map((d, i) => d * reps[i]!);
  const out = backend.makeOutput(outShape, x.dtype);
  if (sizeOf(outShape) === 0) return out;
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  // Work in dst: the input is laid out block by block (outer index o of x's leading dims at o·inner), then each axis
  // from the last inward-out is expanded in place, moving blocks from the back so nothing is overwritten unread.
  const shape = [...x.shape];
  dst.set(src, 0);
  for (let a = shape.length - 1; a >= 0; a--) {
    const r = reps[a]!;
    const block = sizeOf(shape.slice(a)); // one index of the dims before a: everything from a inward
    const outer = sizeOf(shape.slice(0, a));
    if (r > 1) {
      // Each block goes to the start of its run, then the run doubles what it holds: log2(r) copies per block, not
      // r (a Sum gradient's [256, 1] → [256, 384] was 98 304 one-float copies, 2 ms).
      const run = r * block;
      for (let o = outer - 1; o >= 0; o--) {
        const start = o * run;
        dst.copyWithin(start, o * block, o * block + block);
        for (let filled = block; filled < run; filled += Math.min(filled, run - filled)) {
          dst.copyWithin(start + filled, start, start + Math.min(filled, run - filled));
        }
      }
      shape[a] = shape[a]! * r;
    }
  }
  return out;
}

/**
 * GatherV2 as heap copies: x as [batch, outer, n, inner] (batch: the first batchDims dims, which indices share),
 * out[b, o, i, :] = x[b, o, indices[b, i], :]. (tfjs-backend-wasm's own kernel reads out of bounds with batchDims > 0.)
 */
function gatherKernel(args: Parameters<KernelFunc>[0], original: KernelFunc): ReturnType<KernelFunc> {
  const { x, indices } = args.inputs as { x: TensorInfo; indices: TensorInfo };
  const attrs = args.attrs as NamedAttrMap;
  const axis = tf.util.parseAxisParam(attrs["axis"] as number, x.shape)[0]!;
  const rawBatchDims = (attrs["batchDims"] as number | undefined) ?? 0;
  const batchDims = rawBatchDims < 0 ? rawBatchDims + indices.shape.length : rawBatchDims;
  const sameBatch = x.shape.slice(0, batchDims).every((dim, i) => dim === indices.shape[i]);
  if (x.dtype === "string" || indices.dtype !== "int32" || batchDims < 0 || batchDims > axis || !sameBatch) return original(args);
  const backend = args.backend as unknown as HeapBackend;
  const n = x.shape[axis]!;
  const idx = backend.typedArrayFromHeap(indices) as Int32Array;
  for (const i of idx) if (i < 0 || i >= n) return original(args);
  const batch = sizeOf(x.shape.slice(0, batchDims));
  const inner = sizeOf(x.shape.slice(axis + 1));
  const outer = sizeOf(x.shape.slice(batchDims, axis));
  const count = idx.length / batch; // indices per batch entry
  const out = backend.makeOutput([...x.shape.slice(0, axis), ...indices.shape.slice(batchDims), ...x.shape.slice(axis + 1)], x.dtype);
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  const at = backend.typedArrayFromHeap(indices) as Int32Array; // again: the allocation may have moved the heap
  for (let b = 0; b < batch; b++) {
    for (let o = 0; o < outer; o++) {
      const row = b * outer + o;
      for (let i = 0; i < count; i++) {
        const from = (row * n + at[b * count + i]!) * inner;
        dst.set(src.subarray(from, from + inner), (row * count + i) * inner);
      }
    }
  }
  return out;
}

/** Side of the square tiles the transpose moves: a tile's rows and columns stay in cache while it is copied. */
const TRANSPOSE_TILE = 32;

/**
 * x [..., r, c] → [..., c, r] on the heap: the leading axes stay, each [r, c] matrix is transposed tile by tile.
 * Exported for wasm-matmul.ts, which materialises transposed operands with it.
 */
export function transposeLastTwo(x: TensorInfo, backend: HeapBackend): TensorInfo {
  const rank = x.shape.length;
  const rows = x.shape[rank - 2]!;
  const cols = x.shape[rank - 1]!;
  const out = backend.makeOutput([...x.shape.slice(0, -2), cols, rows], x.dtype);
  const size = rows * cols;
  if (size === 0) return out;
  const batches = sizeOf(x.shape) / size;
  // Views after the allocation: growing the heap detaches earlier ones.
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  for (let b = 0; b < batches; b++) {
    const base = b * size;
    for (let r0 = 0; r0 < rows; r0 += TRANSPOSE_TILE) {
      const r1 = Math.min(rows, r0 + TRANSPOSE_TILE);
      for (let c0 = 0; c0 < cols; c0 += TRANSPOSE_TILE) {
        const c1 = Math.min(cols, c0 + TRANSPOSE_TILE);
        let r = r0;
        // Four source rows at a time: each column then writes four neighbouring output floats (1.7× the plain loop).
        for (; r + 3 < r1; r += 4) {
          const s0 = base + r * cols;
          const s1 = s0 + cols;
          const s2 = s1 + cols;
          const s3 = s2 + cols;
          for (let c = c0; c < c1; c++) {
            const d = base + c * rows + r;
            dst[d] = src[s0 + c]!;
            dst[d + 1] = src[s1 + c]!;
            dst[d + 2] = src[s2 + c]!;
            dst[d + 3] = src[s3 + c]!;
          }
        }
        for (; r < r1; r++) {
          const from = base + r * cols;
          for (let c = c0; c < c1; c++) dst[base + c * rows + r] = src[from + c]!;
        }
      }
    }
  }
  return out;
}

/** Transpose whose permutation swaps the last two axes and keeps the others in place; any other goes to wasm's. */
function transposeKernel(args: Parameters<KernelFunc>[0], original: KernelFunc): ReturnType<KernelFunc> {
  const { x } = args.inputs as { x: TensorInfo };
  const perm = (args.attrs as NamedAttrMap)["perm"] as number[];
  const rank = x.shape.length;
  const swapsLastTwo = rank >= 2 && perm.length === rank && perm.every((p, i) => p === (i === rank - 2 ? rank - 1 : i === rank - 1 ? rank - 2 : i));
  if (x.dtype === "string" || !swapsLastTwo) return original(args);
  return transposeLastTwo(x, args.backend as unknown as HeapBackend);
}
