import * as tf from "../tf.js";

/**
 * An explicit, inspectable KV cache: per layer, keys and values per KV head [Hkv, S, headDim] and each cached
 * token's original position per head. Keys are stored *before* RoPE so a method can attend either at the original
 * positions or at positions inside the cache (StreamingLLM); eviction may keep different tokens in different heads
 * (same count per head).
 */
export interface LayerKV {
  k: tf.Tensor3D | null;
  v: tf.Tensor3D | null;
  /** positions[h * length + i]: original position of cached token i of KV head h. */
  positions: Int32Array;
  length: number;
  /**
   * masked[h * length + i] = 1: slot i of KV head h holds a token that head evicted (padding up to the widest
   * head); attention skips it and kvBytes does not count it. Absent: every slot holds a kept token.
   */
  masked?: Uint8Array;
}

export class KVCache {
  readonly layers: LayerKV[];
  /** Tokens that have entered the cache (evicted ones included). */
  tokensSeen = 0;
  /** Largest total KV bytes held at any moment. */
  peakKvBytes = 0;

  constructor(readonly numLayers: number, readonly numKvHeads: number, readonly headDim: number) {
    this.layers = Array.from({ length: numLayers }, () => ({ k: null, v: null, positions: new Int32Array(0), length: 0 }));
  }

  length(layer: number): number {
    return this.layers[layer]!.length;
  }

  /** Append k/v [Hkv, T, d] of new tokens at the given positions (shared by all heads). */
  append(layer: number, k: tf.Tensor3D, v: tf.Tensor3D, positions: Int32Array): void {
    const L = this.layers[layer]!;
    const T = k.shape[1];
    const Hkv = this.numKvHeads;
    const newPos = new Int32Array(Hkv * (L.length + T));
    for (let h = 0; h < Hkv; h++) {
      newPos.set(L.positions.subarray(h * L.length, (h + 1) * L.length), h * (L.length + T));
      newPos.set(positions, h * (L.length + T) + L.length);
    }
    const nk = L.k ? tf.concat([L.k, k], 1) : k.clone();
    const nv = L.v ? tf.concat([L.v, v], 1) : v.clone();
    L.k?.dispose();
    L.v?.dispose();
    L.k = tf.keep(nk);
    L.v = tf.keep(nv);
    L.positions = newPos;
    if (L.masked) L.masked = widened(L.masked, Hkv, L.length, T);
    L.length += T;
    if (layer === 0) this.tokensSeen += T;
    this.peakKvBytes = Math.max(this.peakKvBytes, this.kvBytes());
  }

  /**
   * Keep, in each KV head h, the cached tokens keep[h * n + j] (indices into the current cache, any order;
   * sorted here so the cache stays in token order). All heads hold the same count n of slots; `masked` (aligned
   * with `keep`) marks the slots that only pad a head keeping fewer tokens. A masked slot stays masked.
   */
  keep(layer: number, keep: Int32Array, n: number, masked?: Uint8Array): void {
    const L = this.layers[layer]!;
    if (!L.k || !L.v) return;
    const Hkv = this.numKvHeads;
    if (keep.length !== Hkv * n) throw new Error(`KVCache.keep: expected ${Hkv * n} indices, got ${keep.length}`);
    if (masked && masked.length !== keep.length) throw new Error(`KVCache.keep: ${masked.length} mask flags for ${keep.length} indices`);
    const flat = new Int32Array(Hkv * n);
    const newPos = new Int32Array(Hkv * n);
    const newMask = new Uint8Array(Hkv * n);
    for (let h = 0; h < Hkv; h++) {
      const order = Array.from({ length: n }, (_, j) => h * n + j).sort((a, b) => keep[a]! - keep[b]!);
      for (let j = 0; j < n; j++) {
        const i = keep[order[j]!]!;
        if (i < 0 || i >= L.length) throw new Error(`KVCache.keep: index ${i} out of range ${L.length}`);
        flat[h * n + j] = h * L.length + i;
        newPos[h * n + j] = L.positions[h * L.length + i]!;
        newMask[h * n + j] = (masked?.[order[j]!] ?? 0) | (L.masked?.[h * L.length + i] ?? 0);
      }
    }
    const d = this.headDim;
    const [nk, nv] = tf.tidy(() => {
      const idx = tf.tensor1d(flat, "int32");
      return [
        tf.gather(L.k!.reshape([Hkv * L.length, d]), idx).reshape([Hkv, n, d]) as tf.Tensor3D,
        tf.gather(L.v!.reshape([Hkv * L.length, d]), idx).reshape([Hkv, n, d]) as tf.Tensor3D,
      ];
    });
    L.k.dispose();
    L.v.dispose();
    // keep(): callers evict inside tf.tidy (CachedSession), so the new cache tensors must outlive that scope.
    L.k = tf.keep(nk);
    L.v = tf.keep(nv);
    L.positions = newPos;
    L.length = n;
    if (newMask.includes(1)) L.masked = newMask;
    else delete L.masked;
  }

  /** Kept tokens of `layer` summed over its KV heads (slots that are not masked). */
  keptTokens(layer: number): number {
    const L = this.layers[layer]!;
    let masked = 0;
    if (L.masked) for (const m of L.masked) masked += m;
    return L.length * this.numKvHeads - masked;
  }

  /** Bytes of keys and values held now (fp32), kept tokens only. */
  kvBytes(): number {
    let bytes = 0;
    for (let layer = 0; layer < this.numLayers; layer++) bytes += this.layerKvBytes(layer);
    return bytes;
  }

  /** Bytes of keys and values of `layer` held now (fp32), kept tokens only. */
  layerKvBytes(layer: number): number {
    return this.keptTokens(layer) * 2 * this.headDim * 4;
  }

  dispose(): void {
    for (const L of this.layers) {
      L.k?.dispose();
      L.v?.dispose();
      L.k = L.v = null;
      L.positions = new Int32Array(0);
      L.length = 0;
      delete L.masked;
    }
  }
}

/** Head-major flags [Hkv, length] with `extra` zeros appended to each head's row. */
function widened(flags: Uint8Array, numKvHeads: number, length: number, extra: number): Uint8Array {
  const out = new Uint8Array(numKvHeads * (length + extra));
  for (let h = 0; h < numKvHeads; h++) out.set(flags.subarray(h * length, (h + 1) * length), h * (length + extra));
  return out;
}
