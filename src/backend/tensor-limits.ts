/**
 * Size limit of one tensor. WebGPU caps what one shader may bind (`maxStorageBufferBindingSize`, just under 2 GiB on
 * Dawn/Vulkan; 128 MiB on Mesa's lavapipe). A tensor past it makes Dawn reject the bind group with a validation error
 * that is only logged: the op then writes nothing and the forward returns zeros or garbage. Callers chunk their
 * largest tensors (the attention scores: `groupedAttention`'s `maxScoreBytes`) to `maxTensorBytes()`.
 */
import { fail } from "../util/errors.js";
import { currentBackendName, webgpuDevice } from "./current-backend.js";

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
