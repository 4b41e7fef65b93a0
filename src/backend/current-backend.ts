/** The running tfjs backend: its name, and on webgpu the device it draws on. */
import * as tf from "../tf.js";

/** What the backend code reads of a WebGPU device (tfjs-backend-webgpu's `backend.device`). */
export interface GpuDeviceLike {
  limits?: { maxStorageBufferBindingSize?: number; maxBufferSize?: number };
  addEventListener?: (type: "uncapturederror", listener: (e: GpuErrorEventLike) => void) => void;
}
export interface GpuErrorEventLike {
  error?: { message?: string };
}

/** Name of the running tfjs backend, or "none" when none is set up (tf.getBackend throws or returns nothing). */
export function currentBackendName(): string {
  try {
    return tf.getBackend() ?? "none";
  } catch {
    return "none";
  }
}

/** The running webgpu backend's device, or null when webgpu is not running. */
export function webgpuDevice(): GpuDeviceLike | null {
  if (currentBackendName() !== "webgpu") return null;
  const backend = tf.backend() as unknown as { device?: GpuDeviceLike };
  return backend.device ?? null;
}
