import * as tf from "../tf.js";
import type { LlamaConfig } from "./config.js";
import type { HostTensor, HostWeights } from "./weights.js";
import { rmsNorm } from "./rmsnorm.js";
import { swiglu } from "./swiglu.js";
import { RopeTable, positionRange } from "./rope.js";
import { groupedAttention } from "./attention.js";

/** One decoder layer's frozen weights; linear maps stored [in, out]. */
export interface LayerTensors {
  attnNorm: tf.Tensor1D;
  wq: tf.Tensor2D;
  wk: tf.Tensor2D;
  wv: tf.Tensor2D;
  wo: tf.Tensor2D;
  ffnNorm: tf.Tensor1D;
  wGate: tf.Tensor2D;
  wUp: tf.Tensor2D;
  wDown: tf.Tensor2D;
}

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
  readonly rope: RopeTable;

  private constructor(
    readonly config: LlamaConfig,
    readonly embedding: tf.Tensor2D, // [vocab, d]
    readonly layers: LayerTensors[],
    readonly finalNorm: tf.Tensor1D,
    readonly lmHead: tf.Tensor2D, // [d, vocab]
  ) {
    this.rope = RopeTable.forConfig(config);
  }

  static fromHost(config: LlamaConfig, host: HostWeights): LlamaModel {
    const embedding = tf.tensor2d(host.embed.data, host.embed.shape as [number, number]);
    const layers = host.layers.map((l) => ({
      attnNorm: upload1d(l.attnNorm),
      wq: uploadLinear(l.wq),
      wk: uploadLinear(l.wk),
      wv: uploadLinear(l.wv),
      wo: uploadLinear(l.wo),
      ffnNorm: upload1d(l.ffnNorm),
      wGate: uploadLinear(l.wGate),
      wUp: uploadLinear(l.wUp),
      wDown: uploadLinear(l.wDown),
    }));
    const lmHead = uploadLinear(host.lmHead ?? host.embed);
    return new LlamaModel(config, embedding, layers, upload1d(host.finalNorm), lmHead);
  }

  /** All frozen tensors (for checksums and disposal). */
  frozenTensors(): tf.Tensor[] {
    const t: tf.Tensor[] = [this.embedding, this.finalNorm, this.lmHead];
    for (const l of this.layers) t.push(l.attnNorm, l.wq, l.wk, l.wv, l.wo, l.ffnNorm, l.wGate, l.wUp, l.wDown);
    return t;
  }

  embed(ids: readonly number[]): tf.Tensor2D {
    return tf.tidy(() => tf.gather(this.embedding, tf.tensor1d(Array.from(ids), "int32")) as tf.Tensor2D);
  }

  /** Pre-RoPE q/k/v of one layer for normalised input xn [T, D]. */
  project(layer: number, xn: tf.Tensor2D): Projections {
    const c = this.config;
    const L = this.layers[layer]!;
    const T = xn.shape[0];
    return tf.tidy(() => {
      const heads = (w: tf.Tensor2D, n: number) =>
        tf.transpose(tf.matMul(xn, w).reshape([T, n, c.headDim]), [1, 0, 2]) as tf.Tensor3D;
      return { q: heads(L.wq, c.numHeads), k: heads(L.wk, c.numKvHeads), v: heads(L.wv, c.numKvHeads) };
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

  /** One decoder layer on h [T, D] (pre-norm attention and SwiGLU MLP, both residual). Not tidied. */
  layer(i: number, h: tf.Tensor2D, attend: AttendFn): tf.Tensor2D {
    const c = this.config;
    const L = this.layers[i]!;
    const xn = rmsNorm(h, L.attnNorm, c.rmsNormEps);
    const heads = attend(i, this.project(i, xn), xn);
    const y = tf.add(h, tf.matMul(heads, L.wo)) as tf.Tensor2D;
    return tf.add(y, swiglu(rmsNorm(y, L.ffnNorm, c.rmsNormEps), L.wGate, L.wUp, L.wDown)) as tf.Tensor2D;
  }

  private normOut(h: tf.Tensor2D): tf.Tensor2D {
    return rmsNorm(h, this.finalNorm, this.config.rmsNormEps);
  }

  /** Logits [T, vocab] of final hidden states. */
  logits(hidden: tf.Tensor2D): tf.Tensor2D {
    return tf.matMul(hidden, this.lmHead);
  }

  /** Plain causal attention over the tokens themselves at positions offset..offset+T-1 (no cache). */
  fullAttention(offset = 0, maxScoreBytes?: number): AttendFn {
    return (_layer, p) =>
      tf.tidy(() => {
        const pos = positionRange(offset, p.q.shape[1]);
        return groupedAttention(this.rope.apply(p.q, pos), this.rope.apply(p.k, pos), p.v, { maxScoreBytes });
      });
  }

  /** Final-normed hidden states of a whole sequence with plain causal attention. */
  forward(ids: readonly number[], maxScoreBytes?: number): tf.Tensor2D {
    return tf.tidy(() => this.runLayers(this.embed(ids), this.fullAttention(0, maxScoreBytes)));
  }

  dispose(): void {
    for (const t of this.frozenTensors()) t.dispose();
    this.rope.dispose();
  }
}
