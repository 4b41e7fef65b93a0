/**
 * Identity for the tfjs `wasm` backend that shares its input's data (as wasm's Reshape and the cpu backend's
 * Identity do) instead of copying it.
 *
 * Why: the engine clones every input a kernel saves for backprop through Identity, and wasm's Identity copies the
 * data. A training step of edge-lm ran 8872 Identity copies (the frozen weights among them, every segment), and the
 * copies gave each backward product a new weight tensor, so nothing keyed on a weight's data (XNNPACK's packed
 * operators, wasm-matmul.ts' transposed weights) could be reused. tfjs tensors are immutable, so sharing is safe;
 * the backend's reference count frees the data when the last sharer is disposed.
 */
import * as tf from "../tf.js";
import type { TensorInfo } from "../tf.js";
import { wrapWasmKernel } from "./wasm-kernels.js";

/** The parts of tfjs-backend-wasm's BackendWasm used here. */
interface RefCountingBackend {
  incRef(dataId: object): void;
}

/** Replaces wasm's Identity with the sharing one. Idempotent. */
export function installSharingIdentity(): void {
  wrapWasmKernel(tf.Identity, "sharingIdentity", (copying) => (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    if (x.dtype === "string") return copying(args);
    (args.backend as unknown as RefCountingBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  });
}
