import type * as tf from "../tf.js";
import type { KVCache } from "../backbone/kv-cache.js";

/**
 * One KV-cache method (a "press" in NVIDIA kvpress terms): decides which cached tokens stay.
 * The cached session calls it per layer after that layer has attended, in prefill and in every decode step.
 */
export interface CachePolicy {
  readonly name: string;
  /**
   * "original": tokens keep their original RoPE positions (kvpress presses, H2O, SnapKV).
   * "cache": positions are indices inside the cache, as StreamingLLM does, so RoPE never exceeds the cache size.
   */
  readonly ropeMode: "original" | "cache";
  /** When true, `observe` is given each query block's attention probabilities during prefill and decode. */
  readonly wantsAttention: boolean;
  /**
   * probs [Hkv, g, B, S]: attention of B queries (group heads g) over the S cached keys of `layer`. Runs inside the
   * attention's tf.tidy and must not read values (that would be a synchronous read): keep device tensors derived
   * from probs (tf.keep) and read them in `compress`, which the session calls right after this layer's attention.
   */
  observe?(layer: number, probs: tf.Tensor4D, phase: "prefill" | "decode"): void;
  /**
   * May evict from cache.layers[layer] (via cache.keep). q: this step's rotated queries [H, T, d];
   * kRot: the rotated keys [Hkv, S, d] the queries attended to (before eviction); both owned by the session.
   * Runs outside any tf.tidy, before the next layer: dispose every tensor it creates; read values only with
   * `await data()` (a synchronous read fails on webgpu).
   */
  compress(layer: number, cache: KVCache, ctx: CompressContext): void | Promise<void>;
  /** Largest number of tokens a layer may hold (for accounting and validation); Infinity when unbounded. */
  budgetFor(layer: number, numLayers: number): number;
  /** Releases any tensors the policy kept (scores, observed attention not yet read). */
  dispose?(): void;
}

export interface CompressContext {
  phase: "prefill" | "decode";
  q: tf.Tensor3D;
  kRot: tf.Tensor3D;
  numLayers: number;
}
