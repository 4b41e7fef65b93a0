import * as tf from "../tf.js";
import type { LlamaConfig, RopeScaling } from "./config.js";
import { fusedRope, webgpuFusedActive } from "../backend/webgpu-fused.js";

/**
 * Rotary position embedding, Hugging Face "rotate_half" convention: dimension i pairs with i + headDim/2.
 * (llama2.c checkpoints rotate interleaved pairs; the loader permutes their q/k rows into this convention.)
 */

/**
 * Inverse frequencies θ^(-2i/d), i < d/2 (d: the rotary dims), with the config's scaling (computed in float64).
 * `seqLen` (longest position + 1 of the call) matters only to the length-dependent kinds, dynamic and longrope.
 */
export function inverseFrequencies(dim: number, theta: number, scaling: RopeScaling | null, seqLen = 0): Float64Array {
  const half = dim / 2;
  const inv = new Float64Array(half);
  let base = theta;
  if (scaling?.type === "dynamic" && seqLen > scaling.originalMaxPositions) {
    // transformers' _compute_dynamic_ntk_parameters: the base grows with the sequence past the trained length.
    base = theta * Math.pow((scaling.factor * seqLen) / scaling.originalMaxPositions - (scaling.factor - 1), dim / (dim - 2));
  }
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(base, (2 * i) / dim);
  if (scaling?.type === "linear") {
    for (let i = 0; i < half; i++) inv[i]! /= scaling.factor;
  } else if (scaling?.type === "longrope") {
    const ext = seqLen > scaling.originalMaxPositions ? scaling.longFactor : scaling.shortFactor;
    for (let i = 0; i < half; i++) inv[i]! /= ext[i]!;
  } else if (scaling?.type === "yarn") {
    yarnBlend(inv, dim, theta, scaling);
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
 * YaRN (transformers' _compute_yarn_parameters): frequencies that turn fewer than betaSlow times over the trained
 * length are interpolated (divided by factor), those turning more than betaFast times kept, a linear ramp between.
 */
function yarnBlend(inv: Float64Array, dim: number, theta: number, s: Extract<RopeScaling, { type: "yarn" }>): void {
  const half = dim / 2;
  const correctionDim = (rotations: number) =>
    (dim * Math.log(s.originalMaxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  let low = correctionDim(s.betaFast);
  let high = correctionDim(s.betaSlow);
  if (s.truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  for (let i = 0; i < half; i++) {
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const keep = 1 - ramp; // share of the original (extrapolated) frequency
    inv[i] = (inv[i]! / s.factor) * (1 - keep) + inv[i]! * keep;
  }
}

/** Multiplier of cos and sin (YaRN and longrope scale attention logits through it); 1 for the other kinds. */
export function ropeAttentionFactor(scaling: RopeScaling | null): number {
  return scaling?.type === "yarn" || scaling?.type === "longrope" ? scaling.attentionFactor : 1;
}

/** Which frequency set a call needs: length-dependent kinds change theirs with the longest position. */
function frequencyKey(scaling: RopeScaling | null, seqLen: number): number {
  if (scaling?.type === "dynamic") return seqLen > scaling.originalMaxPositions ? seqLen : 0;
  if (scaling?.type === "longrope") return seqLen > scaling.originalMaxPositions ? 1 : 0;
  return 0;
}

/**
 * cos/sin tables for positions 0..capacity-1, kept as tensors and grown on demand, so rotating keys at
 * arbitrary (evicted, per-head) positions is a gather rather than trigonometry in JS every step.
 */
export class RopeTable {
  private capacity = 0;
  // Rotating whole heads (rotaryDim = headDim): [cos, cos] and [−sin, sin], [capacity, headDim]. Rotating only the
  // leading rotaryDim dims (Phi-3): cos and sin, [capacity, rotaryDim/2]. apply() reads the layout it built.
  private cos: tf.Tensor2D | null = null;
  private sin: tf.Tensor2D | null = null;
  private invFreq: Float64Array;
  private key = 0;
  /** Leading dims of each head that rotate (Phi-3's partial_rotary_factor); the rest pass through unchanged. */
  readonly rotaryDim: number;
  private readonly attentionFactor: number;

  constructor(readonly headDim: number, private readonly theta: number, private readonly scaling: RopeScaling | null, rotaryDim = headDim) {
    if (rotaryDim % 2 !== 0 || rotaryDim <= 0 || rotaryDim > headDim) throw new Error(`rotary dims ${rotaryDim} must be even and within head dim ${headDim}`);
    this.rotaryDim = rotaryDim;
    this.invFreq = inverseFrequencies(rotaryDim, theta, scaling);
    this.attentionFactor = ropeAttentionFactor(scaling);
  }

  static forConfig(c: LlamaConfig): RopeTable {
    return new RopeTable(c.headDim, c.ropeTheta, c.ropeScaling);
  }

  private ensure(maxPosition: number): void {
    // dynamic and longrope frequencies depend on the sequence length (as transformers' full forward sees it).
    const key = frequencyKey(this.scaling, maxPosition + 1);
    if (key !== this.key) {
      this.invFreq = inverseFrequencies(this.rotaryDim, this.theta, this.scaling, maxPosition + 1);
      this.key = key;
      this.capacity = 0;
    }
    if (maxPosition < this.capacity) return;
    let cap = Math.max(1024, this.capacity);
    while (cap <= maxPosition) cap *= 2;
    const half = this.rotaryDim / 2;
    const whole = this.rotaryDim === this.headDim;
    const width = whole ? 2 * half : half;
    const f = this.attentionFactor;
    const c = new Float32Array(cap * width);
    const s = new Float32Array(cap * width);
    for (let p = 0; p < cap; p++) {
      for (let i = 0; i < half; i++) {
        const a = p * this.invFreq[i]!;
        const cosA = Math.fround(f * Math.cos(a));
        const sinA = Math.fround(f * Math.sin(a));
        c[p * width + i] = cosA;
        s[p * width + i] = whole ? -sinA : sinA;
        if (whole) {
          c[p * width + half + i] = cosA;
          s[p * width + half + i] = sinA;
        }
      }
    }
    this.cos?.dispose();
    this.sin?.dispose();
    this.cos = tf.keep(tf.tensor2d(c, [cap, width]));
    this.sin = tf.keep(tf.tensor2d(s, [cap, width]));
    this.capacity = cap;
  }

  /**
   * Rotate x [heads, T, headDim] (its first rotaryDim dims) where position[h*T + t] is the position of row t of head h
   * (pass `perHead = false` and T positions when all heads share them).
   */
  apply(x: tf.Tensor3D, positions: Int32Array): tf.Tensor3D {
    const [heads, T, d] = x.shape;
    let max = 0;
    for (const p of positions) if (p > max) max = p;
    this.ensure(max);
    const r = this.rotaryDim;
    const half = r / 2;
    return tf.tidy(() => {
      const perHead = positions.length === heads * T;
      // Rows of the cos/sin tables: a slice when the positions run start, start+1, … (prefill, training segments, and
      // EdgeInfinite's local span, re-rotated every decode step), else a gather. Same rows either way.
      const first = positions[0] ?? 0;
      const consecutive = positions.every((p, i) => p === first + i);
      const idx = consecutive ? null : tf.tensor1d(positions, "int32");
      // On WebGPU one kernel each way (src/backend/webgpu-fused.ts) reads the table rows itself.
      if (r === d && webgpuFusedActive()) return fusedRope(x, this.cos!, this.sin!, idx === null ? { first } : { positions: idx, perHead });
      const rows = (table: tf.Tensor2D): tf.Tensor2D => (idx === null ? tf.slice(table, [first, 0], [positions.length, table.shape[1]]) : tf.gather(table, idx));
      if (r === d) {
        // Whole head: [x1, x2]·[cos, cos] + [x2, x1]·[−sin, sin] — the same products and sums as below (a + (−b)·c is
        // a − b·c exactly), in 6 kernels instead of 11: the halves swap by one Reverse, no Slice or Concat. A decode
        // step runs this twice per layer, where each kernel's fixed cost is most of its time.
        const full: [number, number, number] = perHead ? [heads, T, d] : [1, T, d];
        const swapped = tf.reverse(x.reshape([heads, T, 2, half]), 2).reshape([heads, T, d]);
        return tf.add(tf.mul(x, rows(this.cos!).reshape(full)), tf.mul(swapped, rows(this.sin!).reshape(full))) as tf.Tensor3D;
      }
      const shape: [number, number, number] = perHead ? [heads, T, half] : [1, T, half];
      const cos = rows(this.cos!).reshape(shape);
      const sin = rows(this.sin!).reshape(shape);
      const x1 = tf.slice(x, [0, 0, 0], [heads, T, half]);
      const x2 = tf.slice(x, [0, 0, half], [heads, T, half]);
      // [x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin]
      const r1 = tf.sub(tf.mul(x1, cos), tf.mul(x2, sin));
      const r2 = tf.add(tf.mul(x2, cos), tf.mul(x1, sin));
      return tf.concat([r1, r2, tf.slice(x, [0, 0, r], [heads, T, d - r])], 2) as tf.Tensor3D;
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
