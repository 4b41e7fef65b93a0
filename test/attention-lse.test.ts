/**
 * groupedAttentionWithLse: the local softmax's log-normaliser per query (EdgeInfinite's shared read), computed from
 * the attention's own softmax as max − log(max p). Checked against float64 logsumexp of the same masked logits
 * (causal, sliding window, soft-capping, several query blocks) and its gradient against the float64 one (p · ∂s).
 */
import { describe, it, expect, beforeAll } from "vitest";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { groupedAttention, groupedAttentionWithLse, type AttentionOptions } from "../src/backbone/attention.js";
import { Rng } from "../src/util/rng.js";
import { maxRelError } from "./reference/rel-error.js";

const [H, Hkv, T, S, d] = [4, 2, 5, 9, 8];
const g = H / Hkv;

function randn(rng: Rng, n: number, scale: number): Float64Array {
  return Float64Array.from({ length: n }, () => rng.normal() * scale);
}

/** float64: lse[h][t] and ∂(Σ w·lse)/∂q, ∂/∂k for query head h at position S − T + t. */
function reference64(q: Float64Array, k: Float64Array, w: Float64Array, o: { window?: number; cap?: number }) {
  const lse = new Float64Array(H * T);
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  for (let h = 0; h < H; h++) {
    const kv = Math.floor(h / g);
    for (let t = 0; t < T; t++) {
      const last = S - T + t;
      const keys: number[] = [];
      for (let j = 0; j <= last; j++) if (o.window === undefined || j > last - o.window) keys.push(j);
      const raw = keys.map((j) => {
        let dot = 0;
        for (let i = 0; i < d; i++) dot += q[(h * T + t) * d + i]! * k[(kv * S + j) * d + i]!;
        return dot / Math.sqrt(d);
      });
      const s = raw.map((x) => (o.cap === undefined ? x : o.cap * Math.tanh(x / o.cap)));
      const m = Math.max(...s);
      const z = s.reduce((a, x) => a + Math.exp(x - m), 0);
      lse[h * T + t] = m + Math.log(z);
      keys.forEach((j, n) => {
        const p = Math.exp(s[n]! - m) / z;
        const dsdraw = o.cap === undefined ? 1 : 1 - Math.tanh(raw[n]! / o.cap) ** 2;
        const coef = (w[h * T + t]! * p * dsdraw) / Math.sqrt(d);
        for (let i = 0; i < d; i++) {
          dq[(h * T + t) * d + i]! += coef * k[(kv * S + j) * d + i]!;
          dk[(kv * S + j) * d + i]! += coef * q[(h * T + t) * d + i]!;
        }
      });
    }
  }
  return { lse, dq, dk };
}

/** max |a − b| / max |b|: relative to the reference's own scale (floor 0). */
const maxRel = (a: ArrayLike<number>, b: ArrayLike<number>): number => maxRelError(a, b, 0);

for (const backend of ["cpu", "wasm"] as const) {
  describe(`groupedAttentionWithLse on ${backend}`, () => {
    beforeAll(async () => {
      await initBackend(backend, { log: () => {} });
    });
    const cases: [string, AttentionOptions, { window?: number; cap?: number }][] = [
      ["causal", {}, {}],
      ["causal, one query per block", { maxScoreBytes: 4 * H * S }, {}],
      ["sliding window 4", { window: 4 }, { window: 4 }],
      ["soft-capped logits (cap 2)", { logitSoftcap: 2 }, { cap: 2 }],
    ];
    for (const [name, options, ref] of cases) {
      it(`${name}: lse and its gradient equal float64; the attention output is groupedAttention's`, () => {
        const rng = new Rng(17);
        const q64 = randn(rng, H * T * d, 1.5);
        const k64 = randn(rng, Hkv * S * d, 1.5);
        const v64 = randn(rng, Hkv * S * d, 1);
        const w64 = randn(rng, H * T, 1);
        const want = reference64(q64, k64, w64, ref);
        const before = tf.memory().numTensors;
        const q = tf.tensor3d(Float32Array.from(q64), [H, T, d]);
        const k = tf.tensor3d(Float32Array.from(k64), [Hkv, S, d]);
        const v = tf.tensor3d(Float32Array.from(v64), [Hkv, S, d]);
        const w = tf.tensor3d(Float32Array.from(w64), [H, T, 1]);
        const r = groupedAttentionWithLse(q, k, v, options);
        expect(r.lse.shape).toEqual([H, T, 1]);
        expect(maxRel(r.lse.dataSync(), want.lse)).toBeLessThan(1e-5);
        const plain = groupedAttention(q, k, v, options);
        expect(Array.from(r.out.dataSync())).toEqual(Array.from(plain.dataSync()));
        const grads = tf.grads((qq: tf.Tensor, kk: tf.Tensor) => tf.sum(tf.mul(groupedAttentionWithLse(qq as tf.Tensor3D, kk as tf.Tensor3D, v, options).lse, w)));
        const [dq, dk] = grads([q, k]);
        expect(maxRel(dq!.dataSync(), want.dq)).toBeLessThan(1e-4);
        expect(maxRel(dk!.dataSync(), want.dk)).toBeLessThan(1e-4);
        tf.dispose([q, k, v, w, r.out, r.lse, plain, dq!, dk!]);
        expect(tf.memory().numTensors).toBe(before);
      });
    }
  });
}
