/**
 * Replacing a registered wasm kernel with a wrapper around it, once: the mechanism wasm-copies.ts, wasm-identity.ts
 * and wasm-threads.ts share. Each wrapper is named by a marker; the markers of the kernel it wraps carry over, so a
 * second install finds its marker even after another wrapper went around it, and nothing is wrapped twice.
 * The original setupFunc and disposeFunc stay registered: they bind the C++ functions the wrapped kernels still call.
 */
import * as tf from "../tf.js";
import type { KernelFunc } from "../tf.js";

const WASM = "wasm";
const MARKERS_KEY = "__edgeinfWrappers";

type MarkedKernelFunc = KernelFunc & { [MARKERS_KEY]?: ReadonlySet<string> };

/** Registers make(current kernel) as wasm's `name` kernel unless a wrapper marked `marker` is already in place. */
export function wrapWasmKernel(name: string, marker: string, make: (inner: KernelFunc) => KernelFunc): void {
  const current = tf.getKernel(name, WASM);
  if (current === undefined) return;
  const inner = current.kernelFunc as MarkedKernelFunc;
  const markers = inner[MARKERS_KEY] ?? new Set<string>();
  if (markers.has(marker)) return;
  const kernelFunc: MarkedKernelFunc = make(inner);
  kernelFunc[MARKERS_KEY] = new Set([...markers, marker]);
  tf.unregisterKernel(name, WASM);
  tf.registerKernel({ ...current, kernelFunc });
}
