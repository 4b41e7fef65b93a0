import * as tf from "../tf.js";
import type { LlamaModel, AttendFn } from "../backbone/model.js";
import { KVCache } from "../backbone/kv-cache.js";
import { groupedAttention, keyBiasOf } from "../backbone/attention.js";
import { positionRange } from "../backbone/rope.js";
import type { InferenceSession } from "../backbone/session.js";
import type { CachePolicy, CompressContext } from "./policy.js";
import { rotateBack } from "./key-rerotation.js";

/**
 * Prefill and decode through a KV cache that a CachePolicy may evict from after each layer's attention.
 * With the `full` policy this is exactly the backbone (same positions, same keys).
 *
 * Keys enter the cache already rotated (RoPE at their original positions, or where the policy's keyPositions puts
 * them), so a decode step rotates only its own token, never the whole cache.
 *
 * Each layer runs in its own tf.tidy; the policy's `compress` then runs (and may await reads of attention scores)
 * before the next layer, so a layer's cache is evicted before the next one grows (as before, the peak KV is one
 * layer's uncompressed cache plus the others' compressed ones). No value is read synchronously.
 */
export class CachedSession implements InferenceSession {
  readonly cache: KVCache;
  readonly method: string;
  /** Largest KV bytes held at any moment, as the policy stores them (checked whenever tokens enter). */
  private peakBytes = 0;

  /**
   * maxScoreBytes: attention block limit; default `maxTensorBytes()` (see groupedAttention). questionStart: index
   * of the prompt's first question token, when known (see CachePolicy.contextOnly; other policies ignore it).
   */
  constructor(readonly model: LlamaModel, readonly policy: CachePolicy, readonly maxScoreBytes?: number, readonly questionStart?: number) {
    const c = model.config;
    this.cache = new KVCache(c.numLayers, c.numKvHeads, c.headDim);
    this.method = policy.name;
  }

  /** Attention through the cache; hands each layer's rotated q/k (kept) to `handoff` for the policy's compress. */
  private attendFn(phase: "prefill" | "decode", newPositions: Int32Array, handoff: (ctx: CompressContext) => void): AttendFn {
    const { model, cache, policy } = this;
    return (layer, p) => {
      const at = policy.keyPositions?.(layer, cache.length(layer), newPositions) ?? newPositions;
      cache.append(layer, model.ropeFor(layer).apply(p.k, at), p.v, newPositions);
      this.peakBytes = Math.max(this.peakBytes, this.kvBytes());
      const L = cache.layers[layer]!;
      const qRot = model.ropeFor(layer).apply(p.q, at);
      // Per-layer options: sliding windows, soft-capping (Gemma 2/3, Mistral, Qwen with windows).
      const out = groupedAttention(qRot, L.k!, L.v!, {
        maxScoreBytes: this.maxScoreBytes,
        ...model.attentionOptions(layer),
        observe: policy.observe ? (probs) => policy.observe!(layer, probs, phase) : undefined,
        ...(L.masked ? { keyBias: keyBiasOf(L.masked, cache.numKvHeads, L.length) } : {}),
      });
      // kRot shares the cached keys' data (clone copies nothing) and outlives an eviction during compress.
      handoff({ phase, q: tf.keep(qRot), kRot: tf.keep(L.k!.clone()), numLayers: model.config.numLayers, rope: model.ropeFor(layer) });
      return out;
    };
  }

  private async run(ids: readonly number[], phase: "prefill" | "decode"): Promise<tf.Tensor1D> {
    const positions = positionRange(this.cache.tokensSeen, ids.length);
    let pending: CompressContext | null = null;
    const attend = this.attendFn(phase, positions, (ctx) => (pending = ctx));
    const x = this.model.embed(ids);
    try {
      const hidden = await this.model.runLayersAsync(x, attend, async (layer) => {
        const ctx = pending!;
        pending = null;
        try {
          await this.policy.compress(layer, this.cache, ctx);
        } finally {
          tf.dispose([ctx.q, ctx.kRot]);
        }
      });
      return tf.tidy(() => {
        const last = tf.slice(hidden, [ids.length - 1, 0], [1, hidden.shape[1]]);
        hidden.dispose();
        return this.model.logits(last).reshape([-1]) as tf.Tensor1D;
      });
    } finally {
      x.dispose();
      const left = pending as CompressContext | null;
      if (left) tf.dispose([left.q, left.kRot]);
    }
  }

  async prefill(ids: readonly number[]): Promise<tf.Tensor1D> {
    if (ids.length === 0) throw new Error("prefill needs at least one token");
    const q = this.policy.contextOnly ? this.questionStart : undefined;
    if (q === undefined || q <= 0 || q >= ids.length) return this.run(ids, "prefill");
    // The context alone, compressed; then the question as decoding feeds tokens (CachePolicy.contextOnly).
    (await this.run(ids.slice(0, q), "prefill")).dispose();
    return this.run(ids.slice(q), "decode");
  }

  step(id: number): Promise<tf.Tensor1D> {
    return this.run([id], "decode");
  }

  /**
   * A copy of the cache with keys rotated back to before RoPE (what EdgeInfinite's memory stores when a short
   * session switches to memory). Equal to the keys that entered within float32 rounding; the caller disposes it.
   */
  preRopeCache(): KVCache {
    const c = this.cache;
    const copy = new KVCache(c.numLayers, c.numKvHeads, c.headDim);
    copy.tokensSeen = c.tokensSeen;
    c.layers.forEach((L, i) => {
      if (!L.k || !L.v) return;
      const at = this.rotatedAt(i);
      const raw = tf.tidy(() => rotateBack(this.model.ropeFor(i), L.k!, at));
      copy.layers[i] = { k: tf.keep(raw), v: tf.keep(L.v.clone()), positions: L.positions.slice(), length: L.length, ...(L.masked ? { masked: L.masked.slice() } : {}) };
    });
    return copy;
  }

  /** Positions the cached keys of `layer` are rotated at, head-major (original ones unless the policy moved them). */
  private rotatedAt(layer: number): Int32Array {
    return this.policy.rotatedPositions?.(layer, this.cache) ?? this.cache.layers[layer]!.positions;
  }

  kvBytes(): number {
    return this.policy.kvBytes ? this.policy.kvBytes(this.cache) : this.cache.kvBytes();
  }

  peakKvBytes(): number {
    return this.peakBytes;
  }

  tokensSeen(): number {
    return this.cache.tokensSeen;
  }

  dispose(): void {
    this.cache.dispose();
    this.policy.dispose?.();
  }
}
