import * as tf from "../tf.js";

/**
 * Scaled dot-product attention with grouped-query heads and query blocks.
 *
 * Keys are never expanded to the query heads: q [H, T, d] is viewed as [Hkv, g·T, d] so each KV head serves its g
 * query heads in one product (Hugging Face repeat_kv order: query head h uses KV head ⌊h/g⌋).
 * Queries are processed in blocks so one score tensor never exceeds `maxScoreBytes` (a long prompt would otherwise
 * build one T×S tensor; WebGPU silently returns garbage past a 2 GiB binding).
 */
export interface AttentionOptions {
  /** Bytes allowed for one block's score tensor [Hkv, g, B, S]. */
  maxScoreBytes?: number;
  /** Sees each block's softmax probabilities [Hkv, g, B, Sb] (keys 0..Sb-1); must not keep them. */
  observe?: (probs: tf.Tensor4D, blockStart: number) => void;
}

export const DEFAULT_MAX_SCORE_BYTES = 256 * 1024 * 1024;

/** Largest query block whose scores fit in `maxScoreBytes`. */
export function queryBlockSize(numHeads: number, keyCount: number, maxScoreBytes: number): number {
  return Math.max(1, Math.floor(maxScoreBytes / (4 * numHeads * Math.max(1, keyCount))));
}

/** Additive causal mask [B, Sb]: query t of the block (absolute t0+t among T new queries) sees key j iff j ≤ past + t0 + t. */
export function causalMask(blockStart: number, blockLength: number, past: number, keyCount: number): tf.Tensor2D {
  const m = new Float32Array(blockLength * keyCount);
  for (let t = 0; t < blockLength; t++) {
    const last = past + blockStart + t;
    for (let j = last + 1; j < keyCount; j++) m[t * keyCount + j] = -1e9;
  }
  return tf.tensor2d(m, [blockLength, keyCount]);
}

/**
 * q [H, T, d] (rotated), k/v [Hkv, S, d] (k rotated) where the last T keys are the queries' own tokens (causal among
 * themselves) and the first S−T are earlier tokens every query may see. Returns [T, H·d].
 */
export function groupedAttention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, options: AttentionOptions = {}): tf.Tensor2D {
  const [H, T, d] = q.shape;
  const [Hkv, S] = k.shape;
  const g = H / Hkv;
  const past = S - T;
  if (past < 0) throw new Error(`attention: ${T} queries but only ${S} keys`);
  const block = Math.min(T, queryBlockSize(H, S, options.maxScoreBytes ?? DEFAULT_MAX_SCORE_BYTES));
  const scale = 1 / Math.sqrt(d);
  return tf.tidy(() => {
    const q4 = q.reshape([Hkv, g, T, d]);
    const outs: tf.Tensor4D[] = [];
    for (let b0 = 0; b0 < T; b0 += block) {
      const B = Math.min(block, T - b0);
      const Sb = past + b0 + B; // keys beyond the block's last query are masked anyway: skip them
      const out = tf.tidy(() => {
        const qb = tf.slice(q4, [0, 0, b0, 0], [Hkv, g, B, d]).reshape([Hkv, g * B, d]);
        const kb = Sb === S ? k : tf.slice(k, [0, 0, 0], [Hkv, Sb, d]);
        const vb = Sb === S ? v : tf.slice(v, [0, 0, 0], [Hkv, Sb, d]);
        const scores = tf.mul(tf.matMul(qb, kb, false, true), scale).reshape([Hkv, g, B, Sb]);
        const probs = tf.softmax(tf.add(scores, causalMask(b0, B, past, Sb))) as tf.Tensor4D;
        options.observe?.(probs, b0);
        return tf.matMul(probs.reshape([Hkv, g * B, Sb]), vb).reshape([Hkv, g, B, d]) as tf.Tensor4D;
      });
      outs.push(out);
    }
    const all = outs.length === 1 ? outs[0]! : tf.concat(outs, 2);
    // [Hkv, g, T, d] = [H, T, d] -> [T, H·d]
    return tf.transpose(all.reshape([H, T, d]), [1, 0, 2]).reshape([T, H * d]) as tf.Tensor2D;
  });
}
