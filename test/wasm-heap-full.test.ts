/**
 * A full wasm heap is an error, never a hang (src/backend/wasm-abort.ts). Before it, the threaded build spun forever
 * on a failed allocation past 2 GiB, and a tensor allocated near the 4 GiB cap came back at address 0 or wrapped
 * over the heap's start. Each thread count needs its own process (tfjs starts the wasm module once per process).
 */
import { describe, expect, it } from "vitest";
import { HEAP_SOFT_CAP_BYTES, WasmHeapFull, withHeapFullErrors } from "../src/backend/wasm-abort.js";
import { runWasmChild } from "./fixtures/wasm-child.js";

interface ChildResult {
  threads: number;
  allocated: number;
  error: { name: string; message: string } | null;
  oneLine: string | null;
  next: string | null;
}

function runChild(threads: number): ChildResult {
  // The hang this guards against would hit runWasmChild's timeout (the child ends in about 15 s).
  return runWasmChild<ChildResult>("test/fixtures/wasm-heap-full-child.mjs", threads);
}

describe("a full wasm heap", () => {
  for (const threads of [2, 1]) {
    it(`fails as one error and the module is not entered again (${threads} thread${threads > 1 ? "s" : ""})`, () => {
      const r = runChild(threads);
      expect(r.threads).toBe(threads);
      // 256 MiB tensors: the 16th cannot fit under 4 GiB beside the first 15 and the module's own memory.
      expect(r.allocated).toBeGreaterThanOrEqual(12);
      expect(r.allocated).toBeLessThan(16);
      expect(r.error?.name).toBe("WasmHeapFull");
      expect(r.error?.message).toMatch(/^wasm heap full: 256 MiB more did not fit beside the \d+ MiB in use$/);
      expect(r.oneLine).toMatch(/^the wasm backend ran out of memory .*at most 4 GiB/);
      // A later kernel throws the same error at once instead of calling into the dead module.
      expect(r.next).toBe(r.error?.message);
    }, 120_000);
  }
});

/** (module (import "env" "emscripten_resize_heap" (func (param i32) (result i32))) (func (export "grow") (param i32) (result i32) local.get 0 call 0)) */
const RESIZE_CALLER = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f,
  0x02, 0x1e, 0x01, 0x03, ...new TextEncoder().encode("env"), 0x16, ...new TextEncoder().encode("emscripten_resize_heap"), 0x00, 0x00,
  0x03, 0x02, 0x01, 0x00,
  0x07, 0x08, 0x01, 0x04, ...new TextEncoder().encode("grow"), 0x00, 0x01,
  0x0a, 0x08, 0x01, 0x06, 0x00, 0x20, 0x00, 0x10, 0x00, 0x0b,
]);

describe("withHeapFullErrors", () => {
  it("turns a refused growth, and any growth past the soft cap, into WasmHeapFull thrown through wasm", async () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    // The module's own answer: growth to under 1 MiB succeeds (requests arrive as i32, so ≥ 2 GiB are negative).
    const resize = (bytes: number) => (bytes >= 0 && bytes < 2 ** 20 ? 1 : 0);
    const original = WebAssembly.instantiate;
    const { instance } = await withHeapFullErrors(() => WebAssembly.instantiate(RESIZE_CALLER, { env: { emscripten_resize_heap: resize, memory } }));
    expect(WebAssembly.instantiate).toBe(original);
    const grow = instance.exports["grow"] as (bytes: number) => number;
    expect(grow(4096)).toBe(1);
    expect(() => grow(2 ** 21)).toThrow(WasmHeapFull);
    // Past the soft cap the request is refused before the module's resize is asked (it would say yes here).
    const yes = () => 1;
    const { instance: capped } = await withHeapFullErrors(() => WebAssembly.instantiate(RESIZE_CALLER, { env: { emscripten_resize_heap: yes, memory } }));
    const growCapped = capped.exports["grow"] as (bytes: number) => number;
    expect(growCapped(HEAP_SOFT_CAP_BYTES | 0)).toBe(1);
    expect(() => growCapped((HEAP_SOFT_CAP_BYTES + 65536) | 0)).toThrow(/^wasm heap full/);
  });
});
