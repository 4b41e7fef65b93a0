import * as tf from "../tf.js";
import type { LlamaConfig } from "../backbone/config.js";
import { emptyMemory, type MemoryState } from "./write-memory.js";
import { featureDim, type FeatureMap } from "./feature-map.js";

/**
 * What one layer carries from segment to segment: the sink tokens, the exact cache (tokens memory reconstructs
 * worst, per KV head) and the recent window as ordinary KV (pre-RoPE keys [Hkv, n, d]), and the fixed-size memory.
 */
export interface LayerState {
  sinkK: tf.Tensor3D | null;
  sinkV: tf.Tensor3D | null;
  exactK: tf.Tensor3D | null;
  exactV: tf.Tensor3D | null;
  windowK: tf.Tensor3D | null;
  windowV: tf.Tensor3D | null;
  memory: MemoryState;
  sinkLength: number;
  exactLength: number;
  windowLength: number;
}

export interface EdgeInfiniteState {
  layers: LayerState[];
  tokensSeen: number;
  /** Tokens compressed into memory so far (per layer; all layers compress the same tokens). */
  tokensCompressed: number;
}

/**
 * Empty state; `phi` sets the memory's width (the feature map's dimension). With `batch` B, the state of B
 * sequences stepped together (edgeinfinite-attention.ts): every tensor's head axis holds B·Hkv heads, sequence-major
 * (memory M [B·Hkv, dφ, dv] is [B, Hkv, dφ, dv]); the lengths are per sequence (all rows have equal lengths).
 */
export function initialState(c: LlamaConfig, phi: FeatureMap = "elu", batch = 1): EdgeInfiniteState {
  return {
    layers: Array.from({ length: c.numLayers }, () => ({
      sinkK: null,
      sinkV: null,
      exactK: null,
      exactV: null,
      windowK: null,
      windowV: null,
      memory: emptyMemory(batch * c.numKvHeads, featureDim(phi, c.headDim), c.headDim),
      sinkLength: 0,
      exactLength: 0,
      windowLength: 0,
    })),
    tokensSeen: 0,
    tokensCompressed: 0,
  };
}

export function stateTensors(s: EdgeInfiniteState): tf.Tensor[] {
  const out: tf.Tensor[] = [];
  for (const L of s.layers) {
    for (const t of [L.sinkK, L.sinkV, L.exactK, L.exactV, L.windowK, L.windowV, L.memory.M, L.memory.z]) if (t) out.push(t);
  }
  return out;
}

/** Keeps every tensor of the state alive beyond the enclosing tidy. */
export function keepState(s: EdgeInfiniteState): EdgeInfiniteState {
  for (const t of stateTensors(s)) tf.keep(t);
  return s;
}

/** Disposes the tensors of `old` that `next` no longer uses. */
export function disposeReplaced(old: EdgeInfiniteState, next: EdgeInfiniteState): void {
  const live = new Set(stateTensors(next));
  for (const t of stateTensors(old)) if (!live.has(t)) t.dispose();
}

export function disposeState(s: EdgeInfiniteState): void {
  for (const t of stateTensors(s)) t.dispose();
}

/** Per-layer accounting: uncompressed KV bytes, memory bytes, tokens seen. */
export interface LayerAccounting {
  layer: number;
  kvTokens: number;
  kvBytes: number;
  memoryBytes: number;
  tokensSeen: number;
}

/** Sequences a state holds (initialState's batch): its memory has B·Hkv heads. */
export function stateBatch(s: EdgeInfiniteState, c: LlamaConfig): number {
  return (s.layers[0]?.memory.M.shape[0] ?? c.numKvHeads) / c.numKvHeads;
}

/** Per-layer accounting of all the state's sequences (kvTokens: per sequence). */
export function accounting(s: EdgeInfiniteState, c: LlamaConfig): LayerAccounting[] {
  const perToken = stateBatch(s, c) * 2 * c.numKvHeads * c.headDim * 4;
  return s.layers.map((L, layer) => ({
    layer,
    kvTokens: L.sinkLength + L.exactLength + L.windowLength,
    kvBytes: (L.sinkLength + L.exactLength + L.windowLength) * perToken,
    // M [Hkv, dφ, dv] and z [Hkv, dφ], float32
    memoryBytes: (L.memory.M.size + L.memory.z.size) * 4,
    tokensSeen: s.tokensSeen,
  }));
}

export function totalStateBytes(s: EdgeInfiniteState, c: LlamaConfig): number {
  return accounting(s, c).reduce((a, l) => a + l.kvBytes + l.memoryBytes, 0);
}

/**
 * KV + memory bytes held at the worst moment of one segment of T tokens going from state `prev` to `next`: layer i
 * attends over its previous sink + window plus the T new tokens while the layers before it already hold their next
 * state and the layers after it still hold their previous one (the accounting CachedSession uses for eviction
 * methods: one layer's uncompressed span in flight). Intermediate activations and score blocks are not KV.
 */
export function segmentPeakBytes(prev: EdgeInfiniteState, next: EdgeInfiniteState, T: number, c: LlamaConfig): number {
  const perToken = stateBatch(prev, c) * 2 * c.numKvHeads * c.headDim * 4;
  const a = accounting(prev, c);
  const b = accounting(next, c);
  let peak = 0;
  for (let i = 0; i < a.length; i++) {
    let bytes = 0;
    for (let j = 0; j < a.length; j++) {
      const L = j < i ? b[j]! : a[j]!;
      bytes += L.kvBytes + L.memoryBytes;
    }
    peak = Math.max(peak, bytes + T * perToken);
  }
  return Math.max(peak, totalStateBytes(next, c));
}
