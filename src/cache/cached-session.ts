import * as tf from "../tf.js";
import type { LlamaModel, AttendFn } from "../backbone/model.js";
import { KVCache } from "../backbone/kv-cache.js";
import { groupedAttention } from "../backbone/attention.js";
import { positionRange } from "../backbone/rope.js";
import type { InferenceSession } from "../backbone/session.js";
import type { CachePolicy, CompressContext } from "./policy.js";

/** Positions 0..n-1 for every cached token (StreamingLLM's in-cache positions). */
function cachePositions(n: number): Int32Array {
  return positionRange(0, n);
}

/**
 * Prefill and decode through a KV cache that a CachePolicy may evict from after each layer's attention.
 * With the `full` policy this is exactly the backbone (same positions, same keys).
 *
 * Each layer runs in its own tf.tidy; the policy's `compress` then runs (and may await reads of attention scores)
 * before the next layer, so a layer's cache is evicted before the next one grows (as before, the peak KV is one
 * layer's uncompressed cache plus the others' compressed ones). No value is read synchronously.
 */
export class CachedSession implements InferenceSession {
  readonly cache: KVCache;
  readonly method: string;

  /** maxScoreBytes: attention block limit; default `maxTensorBytes()` (see groupedAttention). */
  constructor(readonly model: LlamaModel, readonly policy: CachePolicy, readonly maxScoreBytes?: number) {
    const c = model.config;
    this.cache = new KVCache(c.numLayers, c.numKvHeads, c.headDim);
    this.method = policy.name;
  }

  /** Attention through the cache; hands each layer's rotated q/k (kept) to `handoff` for the policy's compress. */
  private attendFn(phase: "prefill" | "decode", newPositions: Int32Array, handoff: (ctx: CompressContext) => void): AttendFn {
    const { model, cache, policy } = this;
    return (layer, p) => {
      cache.append(layer, p.k, p.v, newPositions);
      const L = cache.layers[layer]!;
      const S = L.length;
      const T = p.q.shape[1];
      const original = policy.ropeMode === "original";
      // Per-layer RoPE and options: Gemma 3 local/global bases, SmolLM3 no-RoPE layers, sliding windows, soft-capping.
      const rope = model.ropeFor(layer);
      const kRot = rope.apply(L.k!, original ? L.positions : cachePositions(S));
      const qRot = rope.apply(p.q, original ? newPositions : positionRange(S - T, T));
      const out = groupedAttention(qRot, kRot, L.v!, {
        maxScoreBytes: this.maxScoreBytes,
        ...model.attentionOptions(layer),
        observe: policy.wantsAttention && policy.observe ? (probs) => policy.observe!(layer, probs, phase) : undefined,
      });
      handoff({ phase, q: tf.keep(qRot), kRot: tf.keep(kRot), numLayers: model.config.numLayers });
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

  prefill(ids: readonly number[]): Promise<tf.Tensor1D> {
    if (ids.length === 0) return Promise.reject(new Error("prefill needs at least one token"));
    return this.run(ids, "prefill");
  }

  step(id: number): Promise<tf.Tensor1D> {
    return this.run([id], "decode");
  }

  kvBytes(): number {
    return this.cache.kvBytes();
  }

  peakKvBytes(): number {
    return this.cache.peakKvBytes;
  }

  tokensSeen(): number {
    return this.cache.tokensSeen;
  }

  dispose(): void {
    this.cache.dispose();
    this.policy.dispose?.();
  }
}
