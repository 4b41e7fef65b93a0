import { describe, expect, it } from "vitest";
import { EdgeInfError, resourceError } from "../src/util/errors.js";

/** A wasm module whose export f() loads 4 bytes at 128 KiB from a memory of one 64 KiB page: a real out-of-bounds trap. */
const OUT_OF_BOUNDS_WASM = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type: () → i32
  0x03, 0x02, 0x01, 0x00, // function 0 has type 0
  0x05, 0x03, 0x01, 0x00, 0x01, // memory: 1 page
  0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, // export "f"
  0x0a, 0x0b, 0x01, 0x09, 0x00, 0x41, 0x80, 0x80, 0x08, 0x28, 0x02, 0x00, 0x0b, // i32.load (i32.const 131072)
]);

function wasmTrap(): Error {
  const { f } = new WebAssembly.Instance(new WebAssembly.Module(OUT_OF_BOUNDS_WASM)).exports as { f: () => number };
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error("the module did not trap");
}

describe("resourceError: machine limits as one line", () => {
  it("a real wasm out-of-bounds trap (what tfjs-backend-wasm throws when its heap cannot grow) becomes one line naming the backend and the fix", () => {
    const trap = wasmTrap();
    expect(trap).toBeInstanceOf(WebAssembly.RuntimeError);
    const e = resourceError(trap);
    expect(e).toBeInstanceOf(EdgeInfError);
    expect(e!.message).not.toContain("\n");
    expect(e!.message).toMatch(/^the wasm backend ran out of memory \("memory access out of bounds": its heap holds at most 4 GiB\) — .*--backend cpu/);
  });

  it("the same trap relayed from a worker thread (a plain Error with the message and the worker's stack) maps alike", () => {
    const trap = wasmTrap();
    const relayed = Object.assign(new Error(trap.message), { stack: trap.stack });
    expect(resourceError(relayed)?.message).toBe(resourceError(trap)?.message);
  });

  it("anything else stays a bug (null: the CLI prints its stack)", () => {
    expect(resourceError(new Error("Cannot read properties of undefined"))).toBeNull();
    expect(resourceError(new RangeError("offset is out of bounds"))).toBeNull();
    expect(resourceError("memory access out of bounds")).toBeNull();
  });
});
