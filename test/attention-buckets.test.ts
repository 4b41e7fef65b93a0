/**
 * The two attention changes for tfjs-webgpu (docs/gpu.md): the causal mask built on the device (the default on GPU
 * backends), and query blocks whose key count is rounded up to a bucket (the extra keys masked; default on webgpu).
 * Both must leave outputs as they were: the same mask values, bit-identical attention on the CPU backend, within
 * float32 noise on wasm, and equal to the float64 reference.
 */
import { describe, it, expect, beforeAll, afterEach } from "vitest";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { causalMask, groupedAttention, keyBucket, keyBucketsDefault, KEY_BUCKETS_ENV } from "../src/backbone/attention.js";
import { LlamaModel } from "../src/backbone/model.js";
import { tinyConfig, randomWeights, forward64 } from "./reference/llama64.js";

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** The host mask the attention used before: −1e9 where key j > past + blockStart + t. */
function hostMask(blockStart: number, blockLength: number, past: number, keyCount: number): Float32Array {
  const m = new Float32Array(blockLength * keyCount);
  for (let t = 0; t < blockLength; t++) for (let j = past + blockStart + t + 1; j < keyCount; j++) m[t * keyCount + j] = -1e9;
  return m;
}

beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
});

afterEach(() => {
  delete process.env[KEY_BUCKETS_ENV];
});

describe("causal mask on the device (the default on webgpu)", () => {
  it("equals the host mask for blocks at any offset", async () => {
    for (const [b0, B, past, S] of [[0, 5, 0, 5], [3, 4, 10, 17], [0, 1, 7, 8], [2, 3, 0, 9], [0, 6, 2, 20]] as const) {
      const m = causalMask(b0, B, past, S, true);
      expect(m.shape).toEqual([B, S]);
      const got = await m.data();
      m.dispose();
      // −0 and +0 compare equal here, and adding either to a score gives the same value.
      expect(Array.from(got).map((x) => x + 0)).toEqual(Array.from(hostMask(b0, B, past, S)));
    }
  });
});

describe("key buckets", () => {
  it("round up by at most 12.5%, never past the key count, to few distinct sizes", () => {
    const sizes = new Set<number>();
    for (let n = 1; n <= 5000; n++) {
      const b = keyBucket(n, 1e9);
      expect(b).toBeGreaterThanOrEqual(n);
      expect(b).toBeLessThanOrEqual(Math.max(n, Math.ceil(n * 1.125)));
      expect(keyBucket(n, n)).toBe(n);
      sizes.add(b);
    }
    expect(sizes.size).toBeLessThan(110); // 16 exact sizes, then 8 per octave
    expect(keyBucket(1000, 1010)).toBe(1010);
  });

  it("default: env EDGEINF_KEY_BUCKETS, else only on webgpu", () => {
    expect(keyBucketsDefault()).toBe(false); // cpu
    process.env[KEY_BUCKETS_ENV] = "on";
    expect(keyBucketsDefault()).toBe(true);
    process.env[KEY_BUCKETS_ENV] = "off";
    expect(keyBucketsDefault()).toBe(false);
  });

  for (const backend of ["cpu", "wasm"] as const) {
    it(`change nothing in chunked attention on ${backend} (observe still sees the real keys)`, async () => {
      await initBackend(backend, { log: () => {} });
      const [H, Hkv, T, past, d] = [6, 2, 70, 45, 16];
      const S = past + T;
      const q = tf.randomNormal([H, T, d], 0, 1, "float32", 5) as tf.Tensor3D;
      const k = tf.randomNormal([Hkv, S, d], 0, 1, "float32", 6) as tf.Tensor3D;
      const v = tf.randomNormal([Hkv, S, d], 0, 1, "float32", 7) as tf.Tensor3D;
      const run = async (bucketKeys: boolean) => {
        const keys: number[] = [];
        const received: number[][] = [];
        // 9 queries per block: the key counts 54, 63, … are not bucket sizes, so they are rounded up.
        const out = groupedAttention(q, k, v, {
          maxScoreBytes: 4 * H * S * 9,
          bucketKeys,
          observe: (probs) => {
            keys.push(probs.shape[3]);
            received.push(Array.from(tf.sum(probs, [1, 2]).dataSync()));
          },
        });
        const data = Array.from(await out.data());
        out.dispose();
        return { data, keys, received };
      };
      const plain = await run(false);
      const bucketed = await run(true);
      expect(bucketed.keys).toEqual(plain.keys);
      expect(plain.keys.some((n) => keyBucket(n, S) !== n)).toBe(true);
      if (backend === "cpu") {
        expect(bucketed.data).toEqual(plain.data);
        expect(bucketed.received).toEqual(plain.received);
      } else {
        expect(maxAbsDiff(bucketed.data, plain.data)).toBeLessThan(1e-6);
      }
      tf.dispose([q, k, v]);
      await initBackend("cpu", { log: () => {} });
    });
  }

  it("a bucketed model forward equals the unbucketed one and the float64 reference", () => {
    const c = tinyConfig();
    const w = randomWeights(c, 13);
    const model = LlamaModel.fromHost(c, w);
    const ids = Array.from({ length: 41 }, (_, i) => (i * 5 + 2) % c.vocabSize);
    const logits = (mode: string) => {
      process.env[KEY_BUCKETS_ENV] = mode;
      const l = tf.tidy(() => model.logits(model.forward(ids, 4 * c.numHeads * ids.length * 7)));
      const rows = l.arraySync() as number[][];
      l.dispose();
      return rows;
    };
    const plain = logits("off");
    const bucketed = logits("on");
    expect(bucketed).toEqual(plain);
    const ref = forward64(c, w, ids);
    const scale = Math.max(...ref.flat().map(Math.abs));
    expect(Math.max(...bucketed.map((row, t) => maxAbsDiff(row, ref[t]!))) / scale).toBeLessThan(1e-5);
    model.dispose();
  });
});
