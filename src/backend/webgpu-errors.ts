/**
 * WebGPU validation errors: Dawn logs them and carries on (the op then writes nothing and its outputs are zeros or
 * garbage), so they are collected here and surfaced by `assertFinite` (src/util/finite.ts).
 */
import { EdgeInfError } from "../util/errors.js";
import { webgpuDevice } from "./current-backend.js";
import { MAX_TENSOR_BYTES_ENV, maxTensorBytes, storageBindingLimit } from "./tensor-limits.js";
import { WEBGPU_POOL_MAX_BYTES_ENV } from "./webgpu-pool.js";

const watched = new WeakSet<object>();
const recorded: string[] = [];
let recordedTotal = 0;

/**
 * Starts recording the running webgpu device's uncaptured errors (idempotent; a no-op on other backends).
 * initBackend calls it when webgpu starts.
 */
export function watchWebGpuErrors(): void {
  const device = webgpuDevice();
  if (device === null || watched.has(device) || typeof device.addEventListener !== "function") return;
  watched.add(device);
  device.addEventListener("uncapturederror", (e) => {
    recordedTotal++;
    if (recorded.length < 8) recorded.push((e.error?.message ?? "unknown WebGPU error").split("\n")[0]!.trim());
  });
}

/** Number of WebGPU errors recorded and not yet taken (by takeWebGpuErrors or a failing assertFinite). */
export function webGpuErrorCount(): number {
  return recordedTotal;
}

/** WebGPU errors recorded since the last `takeWebGpuErrors` (count and up to 8 first lines); clears them. */
export function takeWebGpuErrors(): { count: number; first: string[] } {
  const out = { count: recordedTotal, first: recorded.splice(0) };
  recordedTotal = 0;
  return out;
}

/** Fails with one line when the webgpu device reported errors since the last check (and takes them); `what` names the checked value. */
export function failOnWebGpuErrors(what: string): void {
  if (recordedTotal === 0) return;
  const { count, first } = takeWebGpuErrors();
  const firstLine = first[0] ?? "unknown";
  throw new EdgeInfError(`${what} is not trustworthy: the webgpu device reported ${count} error(s), first: ${firstLine}`, webGpuErrorHint(firstLine));
}

/** What to do about a device error, by its message: out of memory, a tensor past the binding limit, or a kernel the device cannot run. */
export function webGpuErrorHint(message: string): string {
  if (/out of (device )?memory|OUT_OF_DEVICE_MEMORY/i.test(message)) {
    return `GPU memory ran out: shorten the input, lower ${MAX_TENSOR_BYTES_ENV} (now ${maxTensorBytes()}) or ${WEBGPU_POOL_MAX_BYTES_ENV}`;
  }
  if (/binding size|maxStorageBufferBindingSize|maxBufferSize|buffer size/i.test(message)) {
    return `a tensor probably exceeded maxStorageBufferBindingSize (${storageBindingLimit() ?? "unknown"} bytes); lower ${MAX_TENSOR_BYTES_ENV} (now ${maxTensorBytes()})`;
  }
  // e.g. "The number of storage buffers (21) in the Compute stage exceeds the maximum per-stage limit (8)": a kernel
  // (or its inputs) that this device's limits do not allow. Not fixable by settings.
  return "a tfjs-webgpu kernel is not supported within this device's limits (named above); run with --backend wasm and report it with this message";
}
