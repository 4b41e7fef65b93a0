/**
 * WebGPU binding limits, simulated on the CPU backend: a configured tensor limit far below the attention scores of
 * the input forces query-block chunking, and the chunked forward must still match an independent float64 forward.
 */
import { describe, it, expect, beforeAll, afterEach } from "vitest";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { LlamaModel } from "../src/backbone/model.js";
import { groupedAttention } from "../src/backbone/attention.js";
import { CachedSession } from "../src/cache/cached-session.js";
import { fullPolicy } from "../src/cache/full.js";
import { maxTensorBytes, setMaxTensorBytes, defaultMaxTensorBytes, parseByteSize, MAX_TENSOR_BYTES_ENV, storageBindingLimit } from "../src/backend/tensor-limits.js";
import { watchWebGpuErrors, webGpuErrorCount, webGpuErrorHint } from "../src/backend/webgpu-errors.js";
import { limitWebGpuBufferPool, WEBGPU_POOL_MAX_BYTES_ENV } from "../src/backend/webgpu-pool.js";
import { addNLimited, MAX_ADDN_INPUTS } from "../src/backend/add-n.js";
import { assertFinite, assertFiniteAsync } from "../src/util/finite.js";
import { clipByGlobalNorm } from "../src/training/adamw.js";
import { EdgeInfError } from "../src/util/errors.js";
import { tinyConfig, randomWeights, forward64 } from "./reference/llama64.js";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** float32 bytes of the unchunked score tensor: one H×T×S block. */
const unchunkedScoreBytes = (heads: number, queries: number, keys: number) => 4 * heads * queries * keys;

describe("webgpu limits: maxTensorBytes", () => {
  beforeAll(async () => {
    await initBackend("cpu", { log: () => {} });
  });
  afterEach(() => {
    setMaxTensorBytes(null);
    delete process.env[MAX_TENSOR_BYTES_ENV];
  });

  it("defaults to 256 MiB on CPU backends and min(binding/2, 1 GiB) on webgpu", () => {
    expect(maxTensorBytes()).toBe(256 * MiB); // cpu is running
    expect(defaultMaxTensorBytes("wasm", null)).toBe(256 * MiB);
    expect(defaultMaxTensorBytes("cpu", 2 * GiB)).toBe(256 * MiB); // a limit only matters on webgpu
    expect(defaultMaxTensorBytes("webgpu", 2147483644)).toBe(1073741822); // a binding just under 2 GiB: half of it
    expect(defaultMaxTensorBytes("webgpu", 4 * GiB - 4)).toBe(1 * GiB); // a larger binding: capped at 1 GiB
    expect(defaultMaxTensorBytes("webgpu", 128 * MiB)).toBe(64 * MiB); // Mesa lavapipe's 128 MiB binding
    expect(defaultMaxTensorBytes("webgpu", null)).toBe(256 * MiB);
  });

  it("takes env EDGEINF_MAX_TENSOR_BYTES, and a configured limit over the env", () => {
    process.env[MAX_TENSOR_BYTES_ENV] = "64MiB";
    expect(maxTensorBytes()).toBe(64 * MiB);
    process.env[MAX_TENSOR_BYTES_ENV] = "1000000";
    expect(maxTensorBytes()).toBe(1_000_000);
    setMaxTensorBytes(4096);
    expect(maxTensorBytes()).toBe(4096);
    setMaxTensorBytes(null);
    expect(maxTensorBytes()).toBe(1_000_000);
  });

  it("parses byte sizes and rejects bad ones with one line naming the setting", () => {
    expect(parseByteSize("1GiB", "X")).toBe(GiB);
    expect(parseByteSize("1.5GB", "X")).toBe(1.5e9);
    expect(parseByteSize(" 512 kib ", "X")).toBe(512 * 1024);
    expect(parseByteSize("2e6", "X")).toBe(2_000_000);
    for (const bad of ["lots", "-5", "2", "1 TiB"]) {
      process.env[MAX_TENSOR_BYTES_ENV] = bad;
      let err: unknown;
      try {
        maxTensorBytes();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(EdgeInfError);
      expect((err as Error).message).toContain(`${MAX_TENSOR_BYTES_ENV}=${bad}`);
      expect((err as Error).message).not.toContain("\n");
    }
    expect(() => setMaxTensorBytes(0)).toThrow(EdgeInfError);
  });
});

describe("webgpu limits: chunked attention under a small binding limit", () => {
  beforeAll(async () => {
    await initBackend("cpu", { log: () => {} });
  });
  afterEach(() => setMaxTensorBytes(null));

  it("a forward whose scores exceed the limit matches float64 when chunked, and equals the unchunked forward", async () => {
    const c = tinyConfig({ numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 4 });
    const w = randomWeights(c, 11);
    const T = 40;
    const ids = Array.from({ length: T }, (_, i) => (i * 7 + 3) % c.vocabSize);
    const limit = 2048;
    setMaxTensorBytes(limit);
    // Without chunking one score tensor would be 4·H·T·T = 25,600 bytes, over 12× the configured binding limit.
    expect(unchunkedScoreBytes(c.numHeads, T, T)).toBe(25_600);
    expect(unchunkedScoreBytes(c.numHeads, T, T)).toBeGreaterThan(maxTensorBytes());

    const model = LlamaModel.fromHost(c, w);
    const ref = forward64(c, w, ids);
    const scale = Math.max(...ref.flat().map(Math.abs));
    const chunked = tf.tidy(() => model.logits(model.forward(ids, maxTensorBytes()))).arraySync() as number[][];
    const unchunked = tf.tidy(() => model.logits(model.forward(ids, 1 * GiB))).arraySync() as number[][];
    const errChunked = Math.max(...chunked.map((row, t) => maxAbsDiff(row, ref[t]!)));
    const errUnchunked = Math.max(...unchunked.map((row, t) => maxAbsDiff(row, ref[t]!)));
    const chunkedVsUnchunked = Math.max(...chunked.map((row, t) => maxAbsDiff(row, unchunked[t]!)));
    expect(errChunked / scale).toBeLessThan(1e-5);
    expect(errUnchunked / scale).toBeLessThan(1e-5);
    expect(chunkedVsUnchunked / scale).toBeLessThan(1e-5);

    // The KV-cached session (what prefill/generate use) with no limit passed: groupedAttention's default is
    // maxTensorBytes(), so it chunks too. Last-token logits.
    const s = new CachedSession(model, fullPolicy());
    const last = await s.prefill(ids);
    expect(maxAbsDiff(await last.data(), ref[T - 1]!) / scale).toBeLessThan(1e-5);
    last.dispose();
    s.dispose();
    model.dispose();
  });

  it("addNLimited never gives one AddN kernel more than 7 inputs (webgpu's storage-buffer limit) and equals tf.addN", async () => {
    const xs = Array.from({ length: 21 }, (_, i) => tf.randomNormal([5], 0, 1, "float32", i + 1));
    const inputsPerAddN: number[] = [];
    let got: Float32Array | null = null;
    const profile = await tf.profile(async () => {
      const sum = addNLimited(xs);
      got = (await sum.data()) as Float32Array;
      sum.dispose();
    });
    for (const k of profile.kernels) if (k.name === "AddN") inputsPerAddN.push(k.inputShapes.length);
    expect(inputsPerAddN.length).toBeGreaterThan(1);
    expect(Math.max(...inputsPerAddN)).toBeLessThanOrEqual(MAX_ADDN_INPUTS);
    const want = tf.addN(xs);
    expect(Array.from(got!)).toEqual(Array.from(await want.data())); // the same order of additions: bit-identical on cpu
    // clipByGlobalNorm over 21 gradients goes through it.
    const grads = new Map(xs.map((x, i) => [`g${i}`, x.clone()] as const));
    const norm = await clipByGlobalNorm(grads, 0);
    const squares = await Promise.all(xs.map(async (x) => Array.from(await x.data()).reduce((a, v) => a + v * v, 0)));
    expect(norm).toBeCloseTo(Math.sqrt(squares.reduce((a, b) => a + b, 0)), 4);
    tf.dispose([want, ...xs, ...grads.values()]);
  });

  it("groupedAttention's block limit defaults to maxTensorBytes()", () => {
    const [H, Hkv, T, d] = [4, 2, 24, 8];
    const q = tf.randomNormal([H, T, d], 0, 1, "float32", 1) as tf.Tensor3D;
    const k = tf.randomNormal([Hkv, T, d], 0, 1, "float32", 2) as tf.Tensor3D;
    const v = tf.randomNormal([Hkv, T, d], 0, 1, "float32", 3) as tf.Tensor3D;
    const blocksAt = (limit: number | null): number[] => {
      setMaxTensorBytes(limit);
      const bytes: number[] = [];
      tf.dispose(groupedAttention(q, k, v, { observe: (probs) => bytes.push(4 * probs.size) }));
      return bytes;
    };
    expect(blocksAt(null)).toHaveLength(1); // 256 MiB on cpu: one block
    const small = blocksAt(1024);
    expect(small.length).toBeGreaterThan(1);
    for (const b of small) expect(b).toBeLessThanOrEqual(1024);
    tf.dispose([q, k, v]);
  });

  it("every score block stays within the limit, and the blocks cover all queries", () => {
    const [H, Hkv, T, d] = [4, 2, 37, 8];
    const limit = 1500;
    const q = tf.randomNormal([H, T, d], 0, 1, "float32", 1) as tf.Tensor3D;
    const k = tf.randomNormal([Hkv, T, d], 0, 1, "float32", 2) as tf.Tensor3D;
    const v = tf.randomNormal([Hkv, T, d], 0, 1, "float32", 3) as tf.Tensor3D;
    const blocks: { start: number; rows: number; bytes: number }[] = [];
    const out = groupedAttention(q, k, v, {
      maxScoreBytes: limit,
      observe: (probs, start) => blocks.push({ start, rows: probs.shape[2], bytes: 4 * probs.size }),
    });
    expect(unchunkedScoreBytes(H, T, T)).toBeGreaterThan(limit);
    expect(blocks.length).toBeGreaterThan(1);
    for (const b of blocks) expect(b.bytes).toBeLessThanOrEqual(limit);
    expect(blocks.map((b) => b.start)).toEqual(blocks.map((_, i) => blocks.slice(0, i).reduce((a, x) => a + x.rows, 0)));
    expect(blocks.reduce((a, b) => a + b.rows, 0)).toBe(T);

    // float64 causal GQA attention, written out per query.
    const [qh, kh, vh] = [q.arraySync(), k.arraySync(), v.arraySync()];
    const got = out.arraySync();
    let err = 0;
    for (let h = 0; h < H; h++) {
      const kv = Math.floor(h / (H / Hkv));
      for (let t = 0; t < T; t++) {
        const s = Array.from({ length: t + 1 }, (_, j) => qh[h]![t]!.reduce((a, x, i) => a + x * kh[kv]![j]![i]!, 0) / Math.sqrt(d));
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const Z = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < d; i++) {
          const o = e.reduce((a, p, j) => a + (p / Z) * vh[kv]![j]![i]!, 0);
          err = Math.max(err, Math.abs(o - got[t]![h * d + i]!));
        }
      }
    }
    expect(err).toBeLessThan(1e-5);
    tf.dispose([q, k, v, out]);
  });
});

describe("assertFinite", () => {
  beforeAll(async () => {
    await initBackend("cpu", { log: () => {} });
  });

  it("passes finite values and fails with one line naming the value, the position and the backend", async () => {
    expect(() => assertFinite(1.5, "loss")).not.toThrow();
    expect(() => assertFinite(tf.tensor1d([1, 2, 3]), "logits")).not.toThrow();
    await expect(assertFiniteAsync(tf.tensor1d([1, 2, 3]), "logits")).resolves.toBeUndefined();

    expect(() => assertFinite(Number.NaN, "training loss at step 7")).toThrow(/^training loss at step 7 is NaN on backend cpu — /);
    const bad = tf.tensor2d([
      [0, 1, 2],
      [3, Number.POSITIVE_INFINITY, Number.NaN],
    ]);
    let msg = "";
    try {
      assertFinite(bad, "eval logits");
    } catch (e) {
      expect(e).toBeInstanceOf(EdgeInfError);
      msg = (e as Error).message;
    }
    expect(msg).toContain("eval logits is Infinity (2 of 6 entries non-finite, e.g. index 4) on backend cpu");
    expect(msg).not.toContain("\n");
    await expect(assertFiniteAsync(bad, "eval logits")).rejects.toThrow(/2 of 6 entries non-finite/);
    expect(() => assertFinite(new Float32Array([1, -Infinity]), "grad norm")).toThrow(/grad norm is -Infinity \(1 of 2 entries/);
    bad.dispose();
  });
});

describe("webgpu device hooks (a stand-in backend registered as 'webgpu': no GPU needed)", () => {
  /** Just what src/backend (tensor-limits, webgpu-errors, webgpu-pool) reads of tfjs-backend-webgpu: device.limits, device events, bufferManager.releaseBuffer. */
  class StandInWebGpu extends tf.KernelBackend {
    listeners: ((e: { error: { message: string } }) => void)[] = [];
    released: { size: number; reuse: boolean }[] = [];
    device = {
      limits: { maxStorageBufferBindingSize: 128 * MiB },
      addEventListener: (_type: string, fn: (e: { error: { message: string } }) => void) => this.listeners.push(fn),
    };
    bufferManager = {
      releaseBuffer: (buffer: { size: number }, reuse = true) => {
        this.released.push({ size: buffer.size, reuse });
      },
    };
  }
  const standIn = new StandInWebGpu();

  beforeAll(async () => {
    await initBackend("cpu", { log: () => {} });
    tf.registerBackend("webgpu", () => standIn);
    await tf.setBackend("webgpu");
  });
  afterEach(() => {
    setMaxTensorBytes(null);
    delete process.env[WEBGPU_POOL_MAX_BYTES_ENV];
  });

  it("reads the device's binding limit: the default becomes half of 128 MiB", () => {
    expect(storageBindingLimit()).toBe(128 * MiB);
    expect(maxTensorBytes()).toBe(64 * MiB);
  });

  it("turns a logged device error into a one-line failure of the next assertFinite", () => {
    watchWebGpuErrors();
    watchWebGpuErrors(); // idempotent: one listener
    expect(standIn.listeners.length).toBe(1);
    expect(() => assertFinite(1, "loss")).not.toThrow();
    standIn.listeners[0]!({ error: { message: "Binding size (150000000) is larger than the maximum\n - While validating" } });
    expect(webGpuErrorCount()).toBe(1);
    let msg = "";
    try {
      assertFinite(2.5, "eval logits");
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain("eval logits is not trustworthy: the webgpu device reported 1 error(s), first: Binding size (150000000) is larger than the maximum");
    expect(msg).toContain("maxStorageBufferBindingSize (134217728 bytes)");
    expect(msg).not.toContain("\n");
    expect(webGpuErrorCount()).toBe(0); // taken by the failure
    expect(() => assertFinite(2.5, "eval logits")).not.toThrow();
  });

  it("says what to do by the kind of device error: memory, binding size, or an unsupported kernel", () => {
    expect(webGpuErrorHint("Out of memory while allocating")).toMatch(/GPU memory ran out/);
    expect(webGpuErrorHint("Binding size (2392326144) of [Buffer] is larger than the maximum storage buffer binding size (2147483644).")).toMatch(/exceeded maxStorageBufferBindingSize \(134217728 bytes\)/);
    // Seen on an H200 before clipByGlobalNorm chunked its tf.addN: 21 inputs in one kernel.
    const kernel = webGpuErrorHint("The number of storage buffers (21) in the Compute stage exceeds the maximum per-stage limit (8).");
    expect(kernel).toMatch(/kernel is not supported within this device's limits/);
    expect(kernel).toMatch(/--backend wasm/);
  });

  it("destroys released buffers above the pool limit instead of pooling them", () => {
    process.env[WEBGPU_POOL_MAX_BYTES_ENV] = "1MiB";
    limitWebGpuBufferPool();
    limitWebGpuBufferPool(); // idempotent: wrapped once
    standIn.bufferManager.releaseBuffer({ size: 1024 });
    standIn.bufferManager.releaseBuffer({ size: 2 * MiB });
    standIn.bufferManager.releaseBuffer({ size: 512 }, false);
    expect(standIn.released).toEqual([
      { size: 1024, reuse: true },
      { size: 2 * MiB, reuse: false },
      { size: 512, reuse: false },
    ]);
  });
});
