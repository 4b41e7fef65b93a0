import type * as tf from "../tf.js";
import type { KVCache } from "../backbone/kv-cache.js";
import type { Rotation as RopeTable } from "../backbone/model.js";

/**
 * One KV-cache method (a "press" in NVIDIA kvpress terms): decides which cached tokens stay.
 * The cached session calls it per layer after that layer has attended, in prefill and in every decode step.
 * Keys are cached after RoPE (at their original positions unless `keyPositions` says otherwise), so attending
 * needs no rotation of the cache; a method that moves tokens to new positions re-rotates what it moved
 * (see key-rerotation.ts).
 */
export interface CachePolicy {
  readonly name: string;
  /**
   * Given each query block's attention probabilities during prefill and decode, when defined.
   * probs [Hkv, g, B, S]: attention of B queries (group heads g) over the S cached keys of `layer`. Runs inside the
   * attention's tf.tidy and must not read values (that would be a synchronous read): keep device tensors derived
   * from probs (tf.keep) and read them in `compress`, which the session calls right after this layer's attention.
   */
  observe?(layer: number, probs: tf.Tensor4D, phase: "prefill" | "decode"): void;
  /**
   * Positions at which the T new tokens of `layer` are rotated (their keys and this step's queries), given the
   * layer's cache length before they enter and their original positions. Absent: the original positions.
   */
  keyPositions?(layer: number, lengthBefore: number, originalPositions: Int32Array): Int32Array;
  /** Positions the cached keys of `layer` are rotated at, head-major; absent: their original positions. */
  rotatedPositions?(layer: number, cache: KVCache): Int32Array;
  /**
   * May evict from cache.layers[layer] (via cache.keep). q: this step's rotated queries [H, T, d];
   * kRot: the rotated keys [Hkv, S, d] the queries attended to (before eviction); both owned by the session.
   * Runs outside any tf.tidy, before the next layer: dispose every tensor it creates; read values only with
   * `await data()` (a synchronous read fails on webgpu).
   */
  compress(layer: number, cache: KVCache, ctx: CompressContext): void | Promise<void>;
  /** Largest number of tokens a layer may hold (for accounting and validation); Infinity when unbounded. */
  budgetFor(layer: number, numLayers: number): number;
  /** Bytes the cache holds when stored this method's way (default: float32 keys and values, cache.kvBytes()). */
  kvBytes?(cache: KVCache): number;
  /** Releases any tensors the policy kept (scores, observed attention not yet read). */
  dispose?(): void;
  /**
   * Compresses the prompt's context without its question (kvpress's pipeline; SnapKV with observation "context"):
   * when the session knows where the question starts (SessionContext.questionStart), it prefills the context,
   * lets the policy compress it, then feeds the question as decoding feeds tokens (phase "decode"), so the question
   * attends to the compressed cache and never votes. Without a known question the whole prompt is the context.
   */
  readonly contextOnly?: boolean;
}

export interface CompressContext {
  phase: "prefill" | "decode";
  q: tf.Tensor3D;
  kRot: tf.Tensor3D;
  numLayers: number;
  /** The backbone's RoPE table (for methods that re-rotate keys they move). */
  rope: RopeTable;
}

/**
 * A policy with some members replaced: what every wrapper builds on, so the members it does not change (observe,
 * keyPositions, budgetFor, kvBytes, dispose) pass through to the inner policy.
 */
export function wrapPolicy(inner: CachePolicy, changes: Partial<CachePolicy>): CachePolicy {
  const pass: CachePolicy = {
    name: inner.name,
    compress: (layer, cache, ctx) => inner.compress(layer, cache, ctx),
    budgetFor: (layer, numLayers) => inner.budgetFor(layer, numLayers),
  };
  if (inner.observe) pass.observe = (layer, probs, phase) => inner.observe!(layer, probs, phase);
  if (inner.keyPositions) pass.keyPositions = (layer, n, p) => inner.keyPositions!(layer, n, p);
  if (inner.rotatedPositions) pass.rotatedPositions = (layer, cache) => inner.rotatedPositions!(layer, cache);
  if (inner.kvBytes) pass.kvBytes = (cache) => inner.kvBytes!(cache);
  if (inner.dispose) pass.dispose = () => inner.dispose!();
  return { ...pass, ...(inner.contextOnly ? { contextOnly: true } : {}), ...changes };
}

/** kvpress's default: evict only after prefill; decode steps append without evicting. */
export function prefillOnly(inner: CachePolicy): CachePolicy {
  return wrapPolicy(inner, {
    compress: (layer, cache, ctx) => (ctx.phase === "prefill" ? inner.compress(layer, cache, ctx) : undefined),
  });
}
