import * as tf from "../tf.js";
import type { LlamaConfig, RopeScaling } from "./config.js";

/**
 * Rotary position embedding, Hugging Face "rotate_half" convention: dimension i pairs with i + headDim/2.
 * (llama2.c checkpoints rotate interleaved pairs; the loader permutes their q/k rows into this convention.)
 */

/** Inverse frequencies θ^(-2i/d), i < d/2, with optional linear or llama3 scaling (computed in float64). */
export function inverseFrequencies(headDim: number, theta: number, scaling: RopeScaling | null): Float64Array {
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(theta, (2 * i) / headDim);
  if (scaling?.type === "linear") {
    for (let i = 0; i < half; i++) inv[i]! /= scaling.factor;
  } else if (scaling?.type === "llama3") {
    // transformers' _compute_llama3_parameters: long wavelengths are divided by factor, short kept, smooth between.
    const lowWavelen = scaling.originalMaxPositions / scaling.lowFreqFactor;
    const highWavelen = scaling.originalMaxPositions / scaling.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i]!;
      if (wavelen > lowWavelen) inv[i]! /= scaling.factor;
      else if (wavelen >= highWavelen) {
        const smooth =
          (scaling.originalMaxPositions / wavelen - scaling.lowFreqFactor) / (scaling.highFreqFactor - scaling.lowFreqFactor);
        inv[i] = (1 - smooth) * (inv[i]! / scaling.factor) + smooth * inv[i]!;
      }
    }
  }
  return inv;
}

/**
 * cos/sin tables for positions 0..capacity-1, kept as tensors and grown on demand, so rotating keys at
 * arbitrary (evicted, per-head) positions is a gather rather than trigonometry in JS every step.
 */
export class RopeTable {
  private capacity = 0;
  private cos: tf.Tensor2D | null = null; // [capacity, headDim/2]
  private sin: tf.Tensor2D | null = null;
  private readonly invFreq: Float64Array;

  constructor(readonly headDim: number, theta: number, scaling: RopeScaling | null) {
    this.invFreq = inverseFrequencies(headDim, theta, scaling);
  }

  static forConfig(c: LlamaConfig): RopeTable {
    return new RopeTable(c.headDim, c.ropeTheta, c.ropeScaling);
  }

  private ensure(maxPosition: number): void {
    if (maxPosition < this.capacity) return;
    let cap = Math.max(1024, this.capacity);
    while (cap <= maxPosition) cap *= 2;
    const half = this.headDim / 2;
    const c = new Float32Array(cap * half);
    const s = new Float32Array(cap * half);
    for (let p = 0; p < cap; p++) {
      for (let i = 0; i < half; i++) {
        const a = p * this.invFreq[i]!;
        c[p * half + i] = Math.cos(a);
        s[p * half + i] = Math.sin(a);
      }
    }
    this.cos?.dispose();
    this.sin?.dispose();
    this.cos = tf.keep(tf.tensor2d(c, [cap, half]));
    this.sin = tf.keep(tf.tensor2d(s, [cap, half]));
    this.capacity = cap;
  }

  /**
   * Rotate x [heads, T, headDim] where position[h*T + t] is the position of row t of head h
   * (pass `perHead = false` and T positions when all heads share them).
   */
  apply(x: tf.Tensor3D, positions: Int32Array): tf.Tensor3D {
    const [heads, T, d] = x.shape;
    let max = 0;
    for (const p of positions) if (p > max) max = p;
    this.ensure(max);
    const half = d / 2;
    return tf.tidy(() => {
      const idx = tf.tensor1d(positions, "int32");
      const perHead = positions.length === heads * T;
      const shape: [number, number, number] = perHead ? [heads, T, half] : [1, T, half];
      const cos = tf.gather(this.cos!, idx).reshape(shape);
      const sin = tf.gather(this.sin!, idx).reshape(shape);
      const x1 = tf.slice(x, [0, 0, 0], [heads, T, half]);
      const x2 = tf.slice(x, [0, 0, half], [heads, T, half]);
      // [x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin]
      const r1 = tf.sub(tf.mul(x1, cos), tf.mul(x2, sin));
      const r2 = tf.add(tf.mul(x2, cos), tf.mul(x1, sin));
      return tf.concat([r1, r2], 2) as tf.Tensor3D;
    });
  }

  dispose(): void {
    this.cos?.dispose();
    this.sin?.dispose();
    this.cos = this.sin = null;
    this.capacity = 0;
  }
}

/** Positions start..start+n-1. */
export function positionRange(start: number, n: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = start + i;
  return p;
}
