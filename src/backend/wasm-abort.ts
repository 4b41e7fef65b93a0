/**
 * A full wasm heap fails as an error, and after it nothing calls into the module again.
 *
 * tfjs-backend-wasm's heap is wasm32 memory, at most 4 GiB. When it cannot grow, the single-threaded build aborts
 * ("Aborted()", a RuntimeError from the kernel), but the threaded build never returned: with the heap past 2 GiB the
 * failed allocation left the main thread spinning inside wasm (edge-lm, 12 sequences of 256 tokens per forward; no
 * JS ran again, not even a signal handler). So the module's heap-resize import is wrapped when it is instantiated:
 * a refused growth throws WasmHeapFull from the import, which unwinds the wasm frames to the kernel's caller before
 * C++ sees the failed allocation. The module is dead after that (the allocator may hold its lock): every later
 * kernel throws at once without entering wasm, and disposing a tensor frees nothing (the process is about to report
 * the error; its heap is lost either way).
 */
import * as tf from "../tf.js";
import { wrapWasmKernel } from "./wasm-kernels.js";

/** Thrown when `requestedBytes` more do not fit in the wasm heap of `heapBytes` (from the resize import or malloc). */
export class WasmHeapFull extends Error {
  constructor(readonly requestedBytes: number, readonly heapBytes: number) {
    super(`wasm heap full: ${mib(requestedBytes)} MiB more did not fit beside the ${mib(heapBytes)} MiB in use`);
    this.name = "WasmHeapFull";
  }
}

const mib = (bytes: number) => Math.round(bytes / 2 ** 20);

/** What wasm throws when its module aborted, its heap was full or a kernel ran past the heap. */
export function isWasmAbort(e: unknown): boolean {
  return e instanceof WasmHeapFull || (e instanceof Error && /^Aborted\(|memory access out of bounds|Cannot enlarge memory/.test(e.message));
}

/**
 * Largest heap this module may grow to. Near the 4 GiB cap, the allocator's break plus an allocation wraps past 2³²:
 * sbrk then fails without asking to grow (seen: the last growth reached 4.28 GB, the next allocation aborted with
 * no resize call), and the threaded build hangs there. Below this cap every failing allocation of less than
 * 128 MiB asks to grow first, and the request is refused here.
 */
export const HEAP_SOFT_CAP_BYTES = 2 ** 32 - 2 ** 27;

type Instantiate = typeof WebAssembly.instantiate;
type ResizeHeap = (requestedBytes: number) => number | boolean;

/**
 * Runs `start` (which instantiates tfjs' wasm module) with WebAssembly.instantiate wrapping the module's
 * `emscripten_resize_heap` import so that a refused growth throws WasmHeapFull. Other instantiations pass unchanged.
 */
export async function withHeapFullErrors<T>(start: () => Promise<T>): Promise<T> {
  const original: Instantiate = WebAssembly.instantiate;
  const wrapped = ((source: BufferSource | WebAssembly.Module, imports?: WebAssembly.Imports) => {
    const env = imports?.["env"] as Record<string, unknown> | undefined;
    const resize = env?.["emscripten_resize_heap"];
    if (env !== undefined && typeof resize === "function" && !(resize as { [GUARDED]?: true })[GUARDED]) {
      // The threaded build imports its memory; the single-threaded one exports it (known once instantiated).
      let exported: WebAssembly.Memory | undefined;
      const memory = (): number => {
        const m = exported ?? (Object.values(env).find((v) => v instanceof WebAssembly.Memory) as WebAssembly.Memory | undefined);
        return m?.buffer.byteLength ?? 0;
      };
      const resizeOrThrow = (requestedBytes: number) => {
        const grown = (requestedBytes >>> 0) <= HEAP_SOFT_CAP_BYTES && (resize as ResizeHeap)(requestedBytes);
        if (grown) return grown;
        // Marked here: the allocation may come from outside any kernel (tf.tensor's upload), where no wrapper sees it.
        throw (abortError = new WasmHeapFull(Math.max(0, (requestedBytes >>> 0) - memory()), memory()));
      };
      (resizeOrThrow as { [GUARDED]?: true })[GUARDED] = true;
      env["emscripten_resize_heap"] = resizeOrThrow;
      return original(source as BufferSource, imports).then((result) => {
        const exports = ("instance" in result ? result.instance : result).exports;
        exported = Object.values(exports).find((v) => v instanceof WebAssembly.Memory) as WebAssembly.Memory | undefined;
        return result;
      });
    }
    return original(source as BufferSource, imports);
  }) as Instantiate;
  WebAssembly.instantiate = wrapped;
  try {
    return await start();
  } finally {
    if (WebAssembly.instantiate === wrapped) WebAssembly.instantiate = original;
  }
}

let abortError: Error | null = null;

/** The abort that killed this process's wasm module, if one did. */
export function wasmAbortError(): Error | null {
  return abortError;
}

/** fn, unless the module is dead (then its abort is thrown at once); an abort fn throws marks the module dead. */
function guarded<T>(fn: () => T): T {
  if (abortError !== null) throw abortError;
  try {
    return fn();
  } catch (e) {
    if (isWasmAbort(e)) abortError = e as Error;
    throw e;
  }
}

interface Malloc {
  _malloc: (bytes: number) => number;
  _free?: (at: number) => void;
  wasmMemory?: WebAssembly.Memory;
  HEAPU8?: Uint8Array;
}

const heapBytesOf = (module: Malloc): number => module.wasmMemory?.buffer.byteLength ?? module.HEAPU8?.buffer.byteLength ?? 0;

interface DisposingBackend {
  disposeData(dataId: object, force?: boolean): boolean;
}

const GUARDED = Symbol.for("edgeinf.wasmAbortGuard");

/**
 * Wraps every wasm kernel but `skip` (wasm-matmul.ts keeps its own markers on the product kernels; their outputs
 * still pass the malloc check below), the backend's disposeData and tfjs' malloc (idempotent). Call after the wasm
 * backend started.
 */
export function installAbortGuard(skip: readonly string[]): void {
  for (const { kernelName } of tf.getKernelsForBackend("wasm")) {
    if (skip.includes(kernelName)) continue;
    wrapWasmKernel(kernelName, "abortGuard", (inner) => (args) => guarded(() => inner(args)));
  }
  const backend = tf.findBackend("wasm") as (DisposingBackend & { wasm?: Malloc; [GUARDED]?: true }) | null;
  if (backend === null || backend[GUARDED]) return;
  const dispose = backend.disposeData.bind(backend);
  backend.disposeData = (dataId, force) => (abortError !== null ? true : dispose(dataId, force));
  // Tensor data is allocated from JS (tfjs' makeOutput, write), and tfjs uses what malloc returns unchecked: 0 when
  // the allocation failed, or, for an allocation that wraps past 2³² near the cap, a block running past the heap.
  const module = backend.wasm;
  if (module !== undefined && typeof module._malloc === "function") {
    // Emscripten's export stub replaces Module._malloc with the raw export on its first call: make that call now,
    // so the wrapper below is not replaced by it.
    module._free?.(module._malloc(16));
    const malloc = module._malloc.bind(module);
    module._malloc = (bytes: number) => {
      const at = guarded(() => malloc(bytes) >>> 0);
      // A block past the heap's end is one whose end wrapped past 2³² (sbrk does not catch it): it overlaps the
      // heap's start, so the module is as dead as after a failed allocation.
      if (bytes > 0 && (at === 0 || at + bytes > heapBytesOf(module))) throw (abortError = new WasmHeapFull(bytes, heapBytesOf(module)));
      return at;
    };
  }
  backend[GUARDED] = true;
}
