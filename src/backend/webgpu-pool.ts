/**
 * Buffer pool: tfjs-backend-webgpu keeps every released buffer for reuse by exact size and never frees it. Chunked
 * attention makes a differently sized score block for every query block (S grows with the block), so a 64k-token
 * prefill pooled tens of GB and ran out of device memory on an 80 GB H100. Large buffers are destroyed instead.
 */
import * as tf from "../tf.js";
import { currentBackendName } from "./current-backend.js";
import { parseByteSize } from "./tensor-limits.js";

const MiB = 2 ** 20;

export const WEBGPU_POOL_MAX_BYTES_ENV = "EDGEINF_WEBGPU_POOL_MAX_BYTES";
/** Released buffers up to this size are pooled (decode steps reuse them); larger ones are destroyed. */
export const WEBGPU_POOL_MAX_BUFFER_BYTES = 64 * MiB;

interface BufferManagerLike {
  releaseBuffer(buffer: { size: number }, reuse?: boolean): void;
}
const pooled = new WeakSet<object>();

/**
 * Makes the running webgpu backend destroy released buffers larger than `maxBufferBytes` (default: env
 * EDGEINF_WEBGPU_POOL_MAX_BYTES, else 64 MiB) instead of pooling them. Idempotent; a no-op on other backends.
 * Safe: tfjs releases a buffer only after the commands that use it are submitted, and WebGPU defers the actual free
 * of a destroyed buffer until submitted work is done. initBackend calls it when webgpu starts.
 */
export function limitWebGpuBufferPool(maxBufferBytes?: number): void {
  if (currentBackendName() !== "webgpu") return;
  const manager = (tf.backend() as unknown as { bufferManager?: BufferManagerLike }).bufferManager;
  if (!manager || pooled.has(manager) || typeof manager.releaseBuffer !== "function") return;
  const fromEnv = process.env[WEBGPU_POOL_MAX_BYTES_ENV];
  const limit = maxBufferBytes ?? (fromEnv ? parseByteSize(fromEnv, WEBGPU_POOL_MAX_BYTES_ENV) : WEBGPU_POOL_MAX_BUFFER_BYTES);
  const release = manager.releaseBuffer.bind(manager);
  manager.releaseBuffer = (buffer, reuse = true) => release(buffer, reuse && buffer.size <= limit);
  pooled.add(manager);
}
