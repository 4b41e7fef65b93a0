import * as tf from "../tf.js";
import type { LlamaConfig } from "./config.js";
import type { HostLayerWeights, HostTensor, HostWeights } from "./weights.js";
import { rmsNorm } from "./rmsnorm.js";
import { swiglu } from "./swiglu.js";
import { RopeTable, positionRange } from "./rope.js";
import { groupedAttentionBatch, type AttentionOptions, type LayerAttentionOptions } from "./attention.js";
import { architectureOf, type ArchitectureSpec, type RopeSpec } from "./architecture.js";

/** One decoder layer's frozen weights; linear maps stored [in, out]. */
export interface LayerTensors {
  attnNorm: tf.Tensor1D;
  /**
   * q, k and v projections side by side, [D, (H + 2·Hkv)·d]: one product instead of three (a decode step is mostly
   * per-kernel cost; each column's dot product is the same as in its own matrix, so the values are too).
   */
  wQkv: tf.Tensor2D;
  wo: tf.Tensor2D;
  ffnNorm: tf.Tensor1D;
  /** Gate and up projections side by side, [D, 2·F], for the same reason. */
  wGateUp: tf.Tensor2D;
  wDown: tf.Tensor2D;
  /** Family extras, present when architecture.ts says so (see HostLayerWeights). q/k/v biases side by side, like wQkv. */
  bQkv?: tf.Tensor1D;
  bo?: tf.Tensor1D;
  qNorm?: tf.Tensor1D;
  kNorm?: tf.Tensor1D;
  postAttnNorm?: tf.Tensor1D;
  postFfnNorm?: tf.Tensor1D;
}

/** How one layer rotates q or k by position (a RopeTable, or NO_ROPE for layers without position embedding). */
export interface Rotation {
  apply(x: tf.Tensor3D, positions: Int32Array): tf.Tensor3D;
}

/** SmolLM3's no-RoPE layers: positions leave q and k unchanged (a copy, so callers may dispose it). */
const NO_ROPE: Rotation = { apply: (x) => tf.clone(x) };

const OPTIONAL_LAYER_TENSORS = ["bo", "qNorm", "kNorm", "postAttnNorm", "postFfnNorm"] as const;

/** Pre-RoPE projections of one layer: q [H, T, d], k/v [Hkv, T, d]. */
export interface Projections {
  q: tf.Tensor3D;
  k: tf.Tensor3D;
  v: tf.Tensor3D;
}

/**
 * How one layer's attention is computed, given its pre-RoPE projections. Returns the heads' outputs [T, H·d]
 * (before the output projection). Full attention, eviction methods and EdgeInfinite differ only here.
 */
export type AttendFn = (layer: number, p: Projections, x: tf.Tensor2D) => tf.Tensor2D;

function upload1d(t: HostTensor): tf.Tensor1D {
  return tf.tensor1d(t.data);
}

/** Host tensors stacked along their first axis (torch Linear [out, in] weights side by side in the output). */
function stackRows(parts: readonly HostTensor[]): HostTensor {
  const rest = parts[0]!.shape.slice(1);
  const data = new Float32Array(parts.reduce((n, p) => n + p.data.length, 0));
  let at = 0;
  for (const p of parts) {
    data.set(p.data, at);
    at += p.data.length;
  }
  return { shape: [parts.reduce((n, p) => n + p.shape[0]!, 0), ...rest], data };
}

/** q/k/v biases side by side; a family with only some of them gets zeros for the others. */
function qkvBias(l: HostLayerWeights, outs: readonly number[]): HostTensor | null {
  const parts = [l.bq, l.bk, l.bv];
  if (parts.every((b) => !b)) return null;
  return stackRows(parts.map((b, i) => b ?? { shape: [outs[i]!], data: new Float32Array(outs[i]!) }));
}

/** torch Linear [out, in] → [in, out] so the forward multiplies x·W without transposes (fast on wasm). */
function uploadLinear(t: HostTensor): tf.Tensor2D {
  const [out, inp] = t.shape as [number, number];
  const src = t.data;
  const dst = new Float32Array(out * inp);
  for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) dst[i * out + o] = src[o * inp + i]!;
  return tf.tensor2d(dst, [inp, out]);
}

/**
 * A frozen Llama-family decoder. Its weights are plain tensors, never tf.Variables: gradients cannot reach them,
 * and tf.variableGrads only ever sees the trainable module's variables.
 */
export class LlamaModel {
  /** How this family differs from the Llama forward (biases, extra norms, activation, scales, per-layer attention). */
  readonly arch: ArchitectureSpec;
  /** The RoPE of the first layer that has one (every layer's, except Gemma 3 local/global and SmolLM3 no-RoPE layers). */
  readonly rope: RopeTable;
  private readonly ropes: (RopeTable | null)[];

  private constructor(
    readonly config: LlamaConfig,
    readonly embedding: tf.Tensor2D, // [vocab, d]
    readonly layers: LayerTensors[],
    readonly finalNorm: tf.Tensor1D,
    readonly lmHead: tf.Tensor2D, // [d, vocab]
  ) {
    this.arch = architectureOf(config);
    // Layers with the same RoPE share one table (Gemma 3 has two: local and global).
    const tables = new Map<string, RopeTable>();
    const table = (r: RopeSpec): RopeTable => {
      const key = JSON.stringify(r);
      if (!tables.has(key)) tables.set(key, new RopeTable(config.headDim, r.theta, r.scaling, r.rotaryDim));
      return tables.get(key)!;
    };
    this.ropes = this.arch.layers.map((l) => (l.rope ? table(l.rope) : null));
    this.rope = this.ropes.find((r) => r !== null) ?? RopeTable.forConfig(config);
  }

  static fromHost(config: LlamaConfig, host: HostWeights): LlamaModel {
    const embedding = tf.tensor2d(host.embed.data, host.embed.shape as [number, number]);
    const layers = host.layers.map((l): LayerTensors => {
      const t: LayerTensors = {
        attnNorm: upload1d(l.attnNorm),
        wQkv: uploadLinear(stackRows([l.wq, l.wk, l.wv])),
        wo: uploadLinear(l.wo),
        ffnNorm: upload1d(l.ffnNorm),
        wGateUp: uploadLinear(stackRows([l.wGate, l.wUp])),
        wDown: uploadLinear(l.wDown),
      };
      const bias = qkvBias(l, [l.wq.shape[0]!, l.wk.shape[0]!, l.wv.shape[0]!]);
      if (bias) t.bQkv = upload1d(bias);
      for (const k of OPTIONAL_LAYER_TENSORS) {
        const h: HostLayerWeights[typeof k] = l[k];
        if (h) t[k] = upload1d(h);
      }
      return t;
    });
    const lmHead = uploadLinear(host.lmHead ?? host.embed);
    return new LlamaModel(config, embedding, layers, upload1d(host.finalNorm), lmHead);
  }

  /** All frozen tensors (for checksums and disposal). */
  frozenTensors(): tf.Tensor[] {
    const t: tf.Tensor[] = [this.embedding, this.finalNorm, this.lmHead];
    for (const l of this.layers) {
      t.push(l.attnNorm, l.wQkv, l.wo, l.ffnNorm, l.wGateUp, l.wDown);
      if (l.bQkv) t.push(l.bQkv);
      for (const k of OPTIONAL_LAYER_TENSORS) if (l[k]) t.push(l[k]);
    }
    return t;
  }

  /** Token embeddings [T, D] (times √D for Gemma). */
  embed(ids: readonly number[]): tf.Tensor2D {
    return tf.tidy(() => {
      const x = tf.gather(this.embedding, tf.tensor1d(Array.from(ids), "int32")) as tf.Tensor2D;
      return this.arch.embedScale === 1 ? x : (tf.mul(x, Math.fround(this.arch.embedScale)) as tf.Tensor2D);
    });
  }

  /** The rotation layer `layer` applies to q and k (model.rope for most families). */
  ropeFor(layer: number): Rotation {
    return this.ropes[layer] ?? NO_ROPE;
  }

  /**
   * What groupedAttention must add for this layer: its sliding window and attention logit soft-capping (both
   * undefined for Llama). Callers spread it into their AttentionOptions.
   */
  attentionOptions(layer: number): LayerAttentionOptions {
    const l = this.arch.layers[layer]!;
    const opts: LayerAttentionOptions = {};
    if (l.window !== null) opts.window = l.window;
    if (this.arch.attnLogitSoftcap !== null) opts.logitSoftcap = this.arch.attnLogitSoftcap;
    return opts;
  }

  /**
   * Pre-RoPE q/k/v of one layer for normalised input xn [T, D]: projections (+ biases), Qwen3/Gemma 3 per-head
   * q/k norms, and the family's query scale folded into q (groupedAttention divides by √headDim; RoPE is linear).
   */
  project(layer: number, xn: tf.Tensor2D): Projections {
    const c = this.config;
    const L = this.layers[layer]!;
    const T = xn.shape[0];
    const qMul = this.arch.queryScale * Math.sqrt(c.headDim);
    return tf.tidy(() => {
      const [H, Hkv, d] = [c.numHeads, c.numKvHeads, c.headDim];
      const y = L.bQkv ? tf.add(tf.matMul(xn, L.wQkv), L.bQkv) : tf.matMul(xn, L.wQkv);
      // [T, H + 2·Hkv, d] → heads first; the split along heads is three contiguous copies
      const [q0, k0, v] = tf.split(tf.transpose(y.reshape([T, H + 2 * Hkv, d]), [1, 0, 2]), [H, Hkv, Hkv], 0) as tf.Tensor3D[];
      // Qwen3/Gemma 3 normalise each head's vector (row-wise: the same values in either layout)
      const norm = (x: tf.Tensor3D, w: tf.Tensor1D | undefined) =>
        w ? (rmsNorm(x.reshape([x.shape[0] * T, d]) as tf.Tensor2D, w, c.rmsNormEps).reshape(x.shape) as tf.Tensor3D) : x;
      const q = norm(q0!, L.qNorm);
      return {
        q: Math.abs(qMul - 1) < 1e-12 ? q : (tf.mul(q, qMul) as tf.Tensor3D),
        k: norm(k0!, L.kNorm),
        v: v!,
      };
    });
  }

  /**
   * Runs the decoder stack on token embeddings x [T, D] with the given attention; returns final-normed hidden [T, D].
   * With `tidyLayers` (default) each layer's intermediates are freed as soon as it is done, so `attend` must
   * tf.keep anything it stores on the side (a KV cache does). Pass false when `attend` returns side outputs that
   * the caller's own scope manages (EdgeInfinite state; training tapes).
   */
  runLayers(x: tf.Tensor2D, attend: AttendFn, tidyLayers = true): tf.Tensor2D {
    let h = x;
    for (let i = 0; i < this.layers.length; i++) {
      const layer = (): tf.Tensor2D => this.layer(i, h, attend);
      const next = tidyLayers ? tf.tidy(layer) : layer();
      if (tidyLayers && h !== x) h.dispose();
      h = next;
    }
    const out = this.normOut(h);
    if (tidyLayers && h !== x) h.dispose();
    return out;
  }

  /**
   * runLayers (tidied layers) with an asynchronous step after each layer, before the next one runs: a KV-cache
   * policy that reads attention scores to evict (a tensor read is asynchronous on webgpu). `attend` must tf.keep
   * whatever it stores or hands to `afterLayer`. Returns the final-normed hidden [T, D]; x stays the caller's.
   */
  async runLayersAsync(x: tf.Tensor2D, attend: AttendFn, afterLayer: (layer: number) => Promise<void>): Promise<tf.Tensor2D> {
    let h = x;
    try {
      for (let i = 0; i < this.layers.length; i++) {
        const prev = h;
        h = tf.tidy(() => this.layer(i, prev, attend));
        if (prev !== x) prev.dispose();
        await afterLayer(i);
      }
      const last = h;
      return tf.tidy(() => this.normOut(last));
    } finally {
      if (h !== x) h.dispose();
    }
  }

  /**
   * One decoder layer on h [T, D]: pre-norm attention and gated MLP, both residual; Gemma also normalises each
   * branch's output before its residual add. Not tidied.
   */
  layer(i: number, h: tf.Tensor2D, attend: AttendFn): tf.Tensor2D {
    const eps = this.config.rmsNormEps;
    const L = this.layers[i]!;
    const xn = rmsNorm(h, L.attnNorm, eps);
    const heads = attend(i, this.project(i, xn), xn);
    const attn: tf.Tensor2D = L.bo ? (tf.add(tf.matMul(heads, L.wo), L.bo) as tf.Tensor2D) : tf.matMul(heads, L.wo);
    const y = tf.add(h, L.postAttnNorm ? rmsNorm(attn, L.postAttnNorm, eps) : attn) as tf.Tensor2D;
    const mlp = swiglu(rmsNorm(y, L.ffnNorm, eps), L.wGateUp, L.wDown, this.arch.activation);
    return tf.add(y, L.postFfnNorm ? rmsNorm(mlp, L.postFfnNorm, eps) : mlp) as tf.Tensor2D;
  }

  private normOut(h: tf.Tensor2D): tf.Tensor2D {
    return rmsNorm(h, this.finalNorm, this.config.rmsNormEps);
  }

  /** Logits [T, vocab] of final hidden states (Gemma 2 soft-caps them: cap·tanh(logits/cap)). */
  logits(hidden: tf.Tensor2D): tf.Tensor2D {
    const cap = this.arch.finalLogitSoftcap;
    if (cap === null) return tf.matMul(hidden, this.lmHead);
    return tf.tidy(() => tf.mul(tf.tanh(tf.div(tf.matMul(hidden, this.lmHead), cap)), cap) as tf.Tensor2D);
  }

  /**
   * Plain causal attention over the tokens themselves at positions offset..offset+T-1 (no cache). With `batch` B > 1
   * the projections hold B equal-length sequences as rows b·T + t (runLayers of batchRows' input); each attends to
   * its own rows only. `observe(layer)`, when given, is handed each block's softmax probabilities of that layer
   * (AttentionOptions.observe).
   */
  fullAttention(offset = 0, maxScoreBytes?: number, batch = 1, observe?: (layer: number) => AttentionOptions["observe"]): AttendFn {
    return (layer, p) =>
      tf.tidy(() => {
        const T = p.q.shape[1] / batch;
        // Every sequence has the same positions; RoPE is row-wise, so it rotates all B·T rows in one call.
        const pos = tilePositions(positionRange(offset, T), batch);
        const rope = this.ropeFor(layer);
        const split = (x: tf.Tensor3D) => sequenceMajor(x, batch);
        const opts = { maxScoreBytes, ...this.attentionOptions(layer), ...(observe ? { observe: observe(layer) } : {}) };
        return groupedAttentionBatch(split(rope.apply(p.q, pos)), split(rope.apply(p.k, pos)), split(p.v), opts);
      });
  }

  /** Final-normed hidden states of a whole sequence with plain causal attention. */
  forward(ids: readonly number[], maxScoreBytes?: number): tf.Tensor2D {
    return tf.tidy(() => this.runLayers(this.embed(ids), this.fullAttention(0, maxScoreBytes)));
  }

  /**
   * Final-normed hidden states [B, T, D] of B equal-length sequences in one forward (plain causal attention). Every
   * op but attention is row-wise, so the decoder runs on the B·T rows as one [B·T, D] input; attention keeps the
   * sequences apart. Row b equals forward(rows[b]) (exactly for B = 1: the same kernels on the same shapes).
   */
  forwardBatch(rows: readonly (readonly number[])[], maxScoreBytes?: number): tf.Tensor3D {
    const T = equalRowLength(rows);
    return tf.tidy(() => {
      const h = this.runLayers(this.embed(rows.flat()), this.fullAttention(0, maxScoreBytes, rows.length));
      return h.reshape([rows.length, T, h.shape[1]]);
    });
  }

  dispose(): void {
    for (const t of this.frozenTensors()) t.dispose();
    for (const r of new Set([this.rope, ...this.ropes])) r?.dispose();
  }
}

/** The common length of equal-length rows (at least one row of at least one token); throws otherwise. */
export function equalRowLength(rows: readonly (readonly number[])[]): number {
  const T = rows[0]?.length ?? 0;
  if (T === 0) throw new Error("batch: no rows, or an empty first row");
  const bad = rows.findIndex((r) => r.length !== T);
  if (bad >= 0) throw new Error(`batch: row ${bad} has ${rows[bad]!.length} tokens, row 0 has ${T} (rows must have equal lengths)`);
  return T;
}

/** `positions` repeated `times` times (one copy per sequence of a batch); the array itself for one. */
function tilePositions(positions: Int32Array, times: number): Int32Array {
  if (times === 1) return positions;
  const out = new Int32Array(positions.length * times);
  for (let b = 0; b < times; b++) out.set(positions, b * positions.length);
  return out;
}

/** Heads of B sequences stored as rows b·T + t, [n, B·T, d], as attention wants them: [B, n, T, d]. */
export function sequenceMajor(x: tf.Tensor3D, batch: number): tf.Tensor4D {
  const [n, rows, d] = x.shape;
  const T = rows / batch;
  // One sequence: a view, no copy.
  if (batch === 1) return x.reshape([1, n, T, d]);
  return tf.transpose(x.reshape([n, batch, T, d]), [1, 0, 2, 3]) as tf.Tensor4D;
}
