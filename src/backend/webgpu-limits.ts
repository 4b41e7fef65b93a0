/**
 * Size limits of one tensor, and loud failure where WebGPU would otherwise fail silently.
 *
 * WebGPU caps what one shader may bind (`maxStorageBufferBindingSize`, just under 2 GiB on Dawn/Vulkan; 128 MiB on
 * Mesa's lavapipe). A tensor past it makes Dawn reject the bind group with a validation error that is only logged:
 * the op then writes nothing and the forward returns zeros or garbage. Callers chunk their largest tensors (the
 * attention scores: `groupedAttention`'s `maxScoreBytes`) to `maxTensorBytes()`, and check results with
 * `assertFinite`, which also reports any WebGPU validation error recorded since the last check.
 */
import * as tf from "../tf.js";
import { EdgeInfError, fail } from "../util/errors.js";

const MiB = 2 ** 20;
const GiB = 2 ** 30;
/** Default on backends without a binding limit (cpu, wasm, tensorflow): keeps one score block's allocation modest. */
export const CPU_MAX_TENSOR_BYTES = 256 * MiB;
/** Upper bound of the WebGPU default: larger blocks gain nothing on a GPU and risk the allocator's limits. */
export const WEBGPU_MAX_TENSOR_BYTES_CAP = 1 * GiB;
export const MAX_TENSOR_BYTES_ENV = "EDGEINF_MAX_TENSOR_BYTES";

let configured: number | null = null;

/**
 * Sets the limit for this process (null: back to env / backend default). Wins over EDGEINF_MAX_TENSOR_BYTES.
 * Tests use it to force chunking with a tiny limit.
 */
export function setMaxTensorBytes(bytes: number | null): void {
  if (bytes !== null) checkBytes(bytes, "setMaxTensorBytes");
  configured = bytes;
}

/**
 * Bytes one tensor (one attention score block) may take: the configured limit, else env EDGEINF_MAX_TENSOR_BYTES,
 * else 256 MiB on CPU backends and min(binding limit / 2, 1 GiB) on webgpu.
 */
export function maxTensorBytes(backend?: string): number {
  if (configured !== null) return configured;
  const fromEnv = process.env[MAX_TENSOR_BYTES_ENV];
  if (fromEnv !== undefined && fromEnv.trim() !== "") return envByteSize(fromEnv);
  const name = backend ?? currentBackendName();
  return defaultMaxTensorBytes(name, name === "webgpu" ? storageBindingLimit() : null);
}

/** The last parse of EDGEINF_MAX_TENSOR_BYTES, keyed on its raw text (maxTensorBytes runs once per attention call). */
let envBytesCache: { raw: string; bytes: number } | null = null;

function envByteSize(raw: string): number {
  if (envBytesCache?.raw === raw) return envBytesCache.bytes;
  const bytes = parseByteSize(raw, MAX_TENSOR_BYTES_ENV); // throws on a bad value: nothing is cached then
  envBytesCache = { raw, bytes };
  return bytes;
}

/** The backend default, as a pure function of the backend's name and its binding limit (null where none). */
export function defaultMaxTensorBytes(backend: string, bindingLimitBytes: number | null): number {
  if (backend !== "webgpu" || bindingLimitBytes === null) return CPU_MAX_TENSOR_BYTES;
  // Half the binding: the op that consumes a block binds it next to other buffers and tfjs may pad shapes.
  return Math.min(Math.floor(bindingLimitBytes / 2), WEBGPU_MAX_TENSOR_BYTES_CAP);
}

/** `maxStorageBufferBindingSize` of the running webgpu backend's device, or null when webgpu is not running. */
export function storageBindingLimit(): number | null {
  const device = webgpuDevice();
  const limit = device?.limits?.maxStorageBufferBindingSize;
  return typeof limit === "number" && limit > 0 ? limit : null;
}

/** Parses "268435456", "256MiB", "1GiB", "512MB", "1.5e9" (bytes); `what` names the setting in the error. */
export function parseByteSize(text: string, what: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?(?:e[0-9]+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$/i.exec(text);
  if (!m) fail(`${what}=${text} is not a byte size`, "write bytes, e.g. 268435456, 256MiB or 1GiB");
  const units: Record<string, number> = { b: 1, kb: 1e3, kib: 2 ** 10, mb: 1e6, mib: MiB, gb: 1e9, gib: GiB };
  const bytes = Math.floor(Number(m[1]) * units[(m[2] ?? "b").toLowerCase()]!);
  checkBytes(bytes, `${what}=${text}`);
  return bytes;
}

function checkBytes(bytes: number, what: string): void {
  // One float32 is the smallest block that can make progress.
  if (!Number.isFinite(bytes) || bytes < 4) fail(`${what} must be at least 4 bytes, got ${bytes}`, "give a byte size such as 256MiB");
}

// ---------------------------------------------------------------------------------------------------------------
// WebGPU validation errors: Dawn logs them and carries on, so they are collected here and surfaced by assertFinite.

interface GpuErrorEventLike {
  error?: { message?: string };
}
interface GpuDeviceLike {
  limits?: { maxStorageBufferBindingSize?: number; maxBufferSize?: number };
  addEventListener?: (type: "uncapturederror", listener: (e: GpuErrorEventLike) => void) => void;
}

const watched = new WeakSet<object>();
const recorded: string[] = [];
let recordedTotal = 0;

function webgpuDevice(): GpuDeviceLike | null {
  if (currentBackendName() !== "webgpu") return null;
  const backend = tf.backend() as unknown as { device?: GpuDeviceLike };
  return backend.device ?? null;
}

/** Name of the running tfjs backend, or "none" when none is set up (tf.getBackend throws or returns nothing). */
export function currentBackendName(): string {
  try {
    return tf.getBackend() ?? "none";
  } catch {
    return "none";
  }
}

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

// ---------------------------------------------------------------------------------------------------------------
// Buffer pool: tfjs-backend-webgpu keeps every released buffer for reuse by exact size and never frees it. Chunked
// attention makes a differently sized score block for every query block (S grows with the block), so a 64k-token
// prefill pooled tens of GB and ran out of device memory on an 80 GB H100. Large buffers are destroyed instead.

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

// ---------------------------------------------------------------------------------------------------------------
// Storage buffers per kernel

/**
 * Most inputs one tf.addN may take: tfjs-backend-webgpu binds every input as a storage buffer, and WebGPU's default
 * maxStorageBuffersPerShaderStage is 8 (one is the output). Past it Dawn rejects the shader (a device error, no
 * exception) and the sum is garbage.
 */
export const MAX_ADDN_INPUTS = 7;

/**
 * tf.addN over any number of tensors in chunks of at most MAX_ADDN_INPUTS inputs, in order: the running sum is the
 * first input of the next chunk, so the result equals one tf.addN on backends that sum inputs in order.
 */
export function addNLimited(tensors: tf.Tensor[]): tf.Tensor {
  if (tensors.length === 0) throw new Error("addNLimited: no tensors");
  return tf.tidy(() => {
    let acc = tensors.length <= MAX_ADDN_INPUTS ? tf.addN(tensors) : tf.addN(tensors.slice(0, MAX_ADDN_INPUTS));
    for (let i = MAX_ADDN_INPUTS; i < tensors.length; i += MAX_ADDN_INPUTS - 1) acc = tf.addN([acc, ...tensors.slice(i, i + MAX_ADDN_INPUTS - 1)]);
    return acc;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// assertFinite

type Checkable = tf.Tensor | number | ArrayLike<number>;

/**
 * Fails with one line naming `what`, the backend and the first bad value when `x` holds NaN/±Inf, or when the
 * webgpu device reported errors since the last check (its outputs are then zeros or garbage, finite or not).
 * Synchronous: tensors are read with dataSync, which tfjs-backend-webgpu cannot do in Node — use assertFiniteAsync there.
 */
export function assertFinite(x: Checkable, what: string): void {
  failOnWebGpuErrors(what);
  if (x instanceof tf.Tensor) {
    const summary = tf.tidy(() => nonFiniteSummary(x));
    const [count, index, value] = Array.from(summary.dataSync());
    summary.dispose();
    reportNonFinite(what, count!, index!, value!, x.size);
    return;
  }
  checkHost(typeof x === "number" ? [x] : x, what);
}

/** assertFinite for any backend (reads with `await data()`): use it on webgpu. */
export async function assertFiniteAsync(x: Checkable, what: string): Promise<void> {
  if (!(x instanceof tf.Tensor)) return assertFinite(x, what);
  const summary = tf.tidy(() => nonFiniteSummary(x));
  const [count, index, value] = Array.from(await summary.data());
  summary.dispose();
  failOnWebGpuErrors(what);
  reportNonFinite(what, count!, index!, value!, x.size);
}

/** [number of non-finite entries, flat index of the first one, its value] computed on the device: one 3-float read. */
function nonFiniteSummary(x: tf.Tensor): tf.Tensor1D {
  const flat = tf.cast(x.reshape([-1]), "float32");
  const bad = tf.cast(tf.logicalNot(tf.isFinite(flat)), "float32");
  const count = tf.sum(bad).reshape([1]);
  const first = tf.argMax(bad).reshape([1]); // a maximum of the mask: a bad entry (index 0 when there is none)
  const value = tf.gather(flat, first);
  return tf.concat([count, tf.cast(first, "float32"), value]) as tf.Tensor1D;
}

function checkHost(values: ArrayLike<number>, what: string): void {
  let count = 0;
  let index = -1;
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]!)) {
      if (count === 0) index = i;
      count++;
    }
  }
  if (count > 0) reportNonFinite(what, count, index, values[index]!, values.length);
}

function reportNonFinite(what: string, count: number, index: number, value: number, size: number): void {
  if (count === 0) return;
  const where = size === 1 ? "" : ` (${count} of ${size} entries non-finite, e.g. index ${index})`;
  throw new EdgeInfError(
    `${what} is ${String(value)}${where} on backend ${currentBackendName()}`,
    currentBackendName() === "webgpu"
      ? `lower ${MAX_TENSOR_BYTES_ENV} (now ${maxTensorBytes()}) or compare with --backend wasm`
      : "lower the learning rate, check the inputs, or compare with another --backend",
  );
}

function failOnWebGpuErrors(what: string): void {
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
