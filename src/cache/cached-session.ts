import * as tf from "../tf.js";
import type { LlamaModel, AttendFn } from "../backbone/model.js";
import { KVCache } from "../backbone/kv-cache.js";
import { groupedAttention } from "../backbone/attention.js";
import { positionRange } from "../backbone/rope.js";
import type { InferenceSession } from "../backbone/session.js";
import type { CachePolicy } from "./policy.js";

/** Positions 0..n-1 for every cached token (StreamingLLM's in-cache positions). */
function cachePositions(n: number): Int32Array {
  return positionRange(0, n);
}

/**
 * Prefill and decode through a KV cache that a CachePolicy may evict from after each layer's attention.
 * With the `full` policy this is exactly the backbone (same positions, same keys).
 */
export class CachedSession implements InferenceSession {
  readonly cache: KVCache;
  readonly method: string;

  constructor(readonly model: LlamaModel, readonly policy: CachePolicy, readonly maxScoreBytes?: number) {
    const c = model.config;
    this.cache = new KVCache(c.numLayers, c.numKvHeads, c.headDim);
    this.method = policy.name;
  }

  private attendFn(phase: "prefill" | "decode", newPositions: Int32Array): AttendFn {
    const { model, cache, policy } = this;
    return (layer, p) =>
      tf.tidy(() => {
        cache.append(layer, p.k, p.v, newPositions);
        const L = cache.layers[layer]!;
        const S = L.length;
        const T = p.q.shape[1];
        const original = policy.ropeMode === "original";
        const kRot = model.rope.apply(L.k!, original ? L.positions : cachePositions(S));
        const qRot = model.rope.apply(p.q, original ? newPositions : positionRange(S - T, T));
        const out = groupedAttention(qRot, kRot, L.v!, {
          maxScoreBytes: this.maxScoreBytes,
          observe: policy.wantsAttention && policy.observe ? (probs) => policy.observe!(layer, probs, phase) : undefined,
        });
        policy.compress(layer, cache, { phase, q: qRot, kRot, numLayers: model.config.numLayers });
        return out;
      });
  }

  private run(ids: readonly number[], phase: "prefill" | "decode"): tf.Tensor1D {
    const positions = positionRange(this.cache.tokensSeen, ids.length);
    return tf.tidy(() => {
      const hidden = this.model.runLayers(this.model.embed(ids), this.attendFn(phase, positions));
      const last = tf.slice(hidden, [ids.length - 1, 0], [1, hidden.shape[1]]);
      return this.model.logits(last).reshape([-1]) as tf.Tensor1D;
    });
  }

  prefill(ids: readonly number[]): tf.Tensor1D {
    if (ids.length === 0) throw new Error("prefill needs at least one token");
    return this.run(ids, "prefill");
  }

  step(id: number): tf.Tensor1D {
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
