import * as tf from "../tf.js";
import { logSumExpFromSoftmax } from "./logsumexp.js";
import { currentBackendName } from "../backend/current-backend.js";
import { maxTensorBytes } from "../backend/tensor-limits.js";
import { fusedCausalMask, webgpuFusedActive } from "../backend/webgpu-fused.js";
import { constantOperand } from "../backend/device-scalar.js";

/**
 * Scaled dot-product attention with grouped-query heads and query blocks.
 *
 * Keys are never expanded to the query heads: q [H, T, d] is viewed as [Hkv, g·T, d] so each KV head serves its g
 * query heads in one product (Hugging Face repeat_kv order: query head h uses KV head ⌊h/g⌋).
 * Queries are processed in blocks so one score tensor never exceeds `maxScoreBytes` (a long prompt would otherwise
 * build one T×S tensor; WebGPU silently returns garbage past a 2 GiB binding).
 */
/** What a layer of some families adds to plain causal attention (LlamaModel.attentionOptions gives a layer's). */
export interface LayerAttentionOptions {
  /**
   * Sliding window: query at key index i sees keys i − window + 1 … i only (transformers' sliding_window). Indices
   * are cache order, so this is the model's window for a full cache and the last `window` kept keys for an evicted one.
   */
  window?: number;
  /** Attention logits (after scaling) become cap·tanh(logits/cap) before the mask (Gemma 2). */
  logitSoftcap?: number;
}

export interface AttentionOptions extends LayerAttentionOptions {
  /**
   * Bytes allowed for one block's score tensor [Hkv, g, B, S]. Default: `maxTensorBytes()` (256 MiB on CPU
   * backends, half the device's binding limit capped at 1 GiB on webgpu, or EDGEINF_MAX_TENSOR_BYTES).
   */
  maxScoreBytes?: number;
  /**
   * Round each query block's key count up to a bucket (`keyBucket`), so blocks of different prompts and positions
   * share a few tensor sizes (tfjs-backend-webgpu pools released buffers by exact size). The extra keys are
   * masked (exact zeros after the softmax), so outputs are unchanged. Default: env EDGEINF_KEY_BUCKETS=on|off, else
   * on when the running backend is webgpu.
   */
  bucketKeys?: boolean;
  /** Sees each block's softmax probabilities [Hkv, g, B, Sb] (keys 0..Sb-1); must not keep them. */
  observe?: (probs: tf.Tensor4D, blockStart: number) => void;
  /**
   * Additive bias [Hkv, S] on every query's logits for each key: −1e9 where a KV head's cache slot holds a token
   * that head evicted (KVCache's masked slots), 0 elsewhere. Absent: every key is live.
   */
  keyBias?: tf.Tensor2D;
}

/** The keyBias of head-major masked-slot flags [Hkv · S] (see AttentionOptions.keyBias). */
export function keyBiasOf(masked: Uint8Array, numKvHeads: number, keyCount: number): tf.Tensor2D {
  return tf.tensor2d(Float32Array.from(masked, (m) => (m ? -1e9 : 0)), [numKvHeads, keyCount]);
}

/** Largest query block whose scores fit in `maxScoreBytes`. */
export function queryBlockSize(numHeads: number, keyCount: number, maxScoreBytes: number): number {
  return Math.max(1, Math.floor(maxScoreBytes / (4 * numHeads * Math.max(1, keyCount))));
}

/**
 * A block's key count rounded up to its bucket: the next multiple of 2^(⌊log2 n⌋ − 3) (8 buckets per octave, at
 * most 12.5% more keys; exact below 16), never past `limit` (all keys).
 */
export function keyBucket(n: number, limit: number): number {
  if (n <= 16) return Math.min(n, limit);
  const step = 2 ** (Math.floor(Math.log2(n)) - 3);
  return Math.min(Math.ceil(n / step) * step, limit);
}

/**
 * Additive causal mask [B, Sb]: query t of the block (absolute t0+t among T new queries) sees key j iff
 * j ≤ past + t0 + t (and, with a sliding `window`, j > past + t0 + t − window); masked entries are −1e9. On a GPU backend (default: webgpu, webgl) it is built on the device
 * from two ranges and a comparison, so no B×Sb host array is uploaded per block (178 MB per block at 64k tokens);
 * on CPU backends, where those ops cost more than a host loop (3.6 ms vs 0.14 ms for 128×256 on wasm), on the host.
 * Both give the same values.
 */
export function causalMask(
  blockStart: number,
  blockLength: number,
  past: number,
  keyCount: number,
  onDevice = onGpuBackend(currentBackendName()),
  window?: number,
): tf.Tensor2D {
  if (!onDevice) {
    const m = new Float32Array(blockLength * keyCount);
    for (let t = 0; t < blockLength; t++) {
      const last = past + blockStart + t;
      for (let j = last + 1; j < keyCount; j++) m[t * keyCount + j] = -1e9;
      if (window !== undefined) for (let j = 0; j <= Math.min(last - window, keyCount - 1); j++) m[t * keyCount + j] = -1e9;
    }
    return tf.tensor2d(m, [blockLength, keyCount]);
  }
  // webgpu: one kernel instead of five (src/backend/webgpu-fused.ts); a window of 0 or less hides nothing there.
  if (webgpuFusedActive() && (window === undefined || window > 0)) return fusedCausalMask(past + blockStart, blockLength, keyCount, window);
  return tf.tidy(() => {
    const last = tf.range(past + blockStart, past + blockStart + blockLength, 1, "int32").reshape([blockLength, 1]);
    const keys = tf.range(0, keyCount, 1, "int32").reshape([1, keyCount]);
    const future = tf.greater(keys, last);
    const hidden = window === undefined ? future : tf.logicalOr(future, tf.lessEqual(keys, tf.sub(last, window)));
    return tf.mul(tf.cast(hidden, "float32"), -1e9) as tf.Tensor2D;
  });
}

function onGpuBackend(backend: string): boolean {
  return backend === "webgpu" || backend === "webgl";
}

export const KEY_BUCKETS_ENV = "EDGEINF_KEY_BUCKETS";

/** The last parse of EDGEINF_KEY_BUCKETS, keyed on its raw value (groupedAttention runs per layer per token). */
let bucketEnvCache: { raw: string | undefined; setting: boolean | null } = { raw: undefined, setting: null };

/**
 * Whether blocks round their key count up to a bucket: env EDGEINF_KEY_BUCKETS=on|off, else only on webgpu.
 * `backend`: the running backend's name, when the caller already has it.
 */
export function keyBucketsDefault(backend?: string): boolean {
  const raw = process.env[KEY_BUCKETS_ENV];
  if (raw !== bucketEnvCache.raw) {
    const env = raw?.trim().toLowerCase();
    const setting = env === "on" || env === "1" || env === "true" ? true : env === "off" || env === "0" || env === "false" ? false : null;
    bucketEnvCache = { raw, setting };
  }
  return bucketEnvCache.setting ?? (backend ?? currentBackendName()) === "webgpu";
}

/**
 * q [H, T, d] (rotated), k/v [Hkv, S, d] (k rotated) where the last T keys are the queries' own tokens (causal among
 * themselves) and the first S−T are earlier tokens every query may see. Returns [T, H·d].
 * One sequence of groupedAttentionBatch: the same kernels on the same shapes, so the values are those of a batch of 1.
 */
export function groupedAttention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, options: AttentionOptions = {}): tf.Tensor2D {
  return tf.tidy(() => groupedAttentionBatch(q.expandDims(0), k.expandDims(0), v.expandDims(0), options));
}

/**
 * groupedAttention of B independent sequences at once: q [B, H, T, d], k/v [B, Hkv, S, d] (all rows of equal length,
 * no padding). Returns [B·T, H·d], row b·T + t (so the row-wise ops after attention treat the batch as one long
 * input). The sequences never mix: sequence b's KV heads are slice b·Hkv … of one [B·Hkv, ·, d] batched product.
 * `keyBias`, when given, is [B·Hkv, S] and `observe` sees probabilities [B·Hkv, g, rows, Sb] (sequence-major).
 */
export function groupedAttentionBatch(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options: AttentionOptions = {}): tf.Tensor2D {
  return attentionBlocks(q, k, v, options, false).out;
}

/**
 * groupedAttention that also returns each query's logsumexp over the keys it sees, [H, T, 1]: the log of the
 * softmax's normaliser, from the same masked logits (window and soft-capping included). EdgeInfinite's shared read
 * weighs memory against it. Computed as max − log(max p) from the softmax the attention takes anyway (no second q·kᵀ,
 * no Exp over the scores: tfjs-wasm's Exp is a scalar loop); its gradient is p (`logSumExpOfSoftmax`).
 */
export function groupedAttentionWithLse(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, options: AttentionOptions = {}): { out: tf.Tensor2D; lse: tf.Tensor3D } {
  return tf.tidy(() => {
    const r = attentionBlocks(q.expandDims(0), k.expandDims(0), v.expandDims(0), options, true);
    return { out: r.out, lse: r.lse!.reshape([q.shape[0], q.shape[1], 1]) as tf.Tensor3D };
  });
}

/**
 * logSumExpFromSoftmax with its gradient with respect to x: dy · p; none flows to p (its dependence on x is already in
 * that term), so ties in the max do not double-count.
 */
const logSumExpOfSoftmax = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, p, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  save([p]);
  return {
    value: logSumExpFromSoftmax(x, p),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(dy.expandDims(-1), saved[0]!), tf.zerosLike(saved[0]!)],
  };
}) as (x: tf.Tensor, p: tf.Tensor) => tf.Tensor;

/** The block loop behind groupedAttentionBatch; with `wantLse`, also each query's logsumexp [B·Hkv, g, T]. */
function attentionBlocks(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options: AttentionOptions, wantLse: boolean): { out: tf.Tensor2D; lse: tf.Tensor3D | null } {
  const [batch, H, T, d] = q.shape;
  const [, Hkv, S] = k.shape;
  const g = H / Hkv;
  const BH = batch * Hkv; // one KV head of one sequence per slice of the batched products
  const past = S - T;
  if (past < 0) throw new Error(`attention: ${T} queries but only ${S} keys`);
  // Settings read once per call (not per block): this runs once per layer per decoded token.
  const backend = currentBackendName();
  // A block's scores hold every sequence's heads: the byte budget covers all B of them.
  const block = Math.min(T, queryBlockSize(batch * H, S, options.maxScoreBytes ?? maxTensorBytes(backend)));
  const bucket = options.bucketKeys ?? keyBucketsDefault(backend);
  const maskOnDevice = onGpuBackend(backend);
  const scale = 1 / Math.sqrt(d);
  const [out, lse] = tf.tidy((): tf.Tensor[] => {
    const q4 = q.reshape([BH, g, T, d]);
    const k3 = k.reshape([BH, S, d]);
    const v3 = v.reshape([BH, S, d]);
    const outs: tf.Tensor4D[] = [];
    const lses: tf.Tensor3D[] = [];
    for (let b0 = 0; b0 < T; b0 += block) {
      const B = Math.min(block, T - b0);
      const seen = past + b0 + B; // keys beyond the block's last query are masked anyway: skip them
      const Sb = bucket ? keyBucket(seen, S) : seen;
      const out = tf.tidy(() => {
        const qb = (B === T ? q4 : tf.slice(q4, [0, 0, b0, 0], [BH, g, B, d])).reshape([BH, g * B, d]);
        const kb = Sb === S ? k3 : tf.slice(k3, [0, 0, 0], [BH, Sb, d]);
        const vb = Sb === S ? v3 : tf.slice(v3, [0, 0, 0], [BH, Sb, d]);
        const raw = tf.mul(tf.matMul(qb, kb, false, true), constantOperand(scale)).reshape([BH, g, B, Sb]);
        const cap = options.logitSoftcap;
        const scores = cap === undefined ? raw : tf.mul(tf.tanh(tf.div(raw, cap)), cap);
        // One query that sees every key of its block (a decode step) needs no mask: skip building one.
        const window = options.window !== undefined && options.window < seen ? options.window : undefined;
        const causal = B === 1 && Sb === seen && window === undefined ? scores : tf.add(scores, causalMask(b0, B, past, Sb, maskOnDevice, window));
        const bias = options.keyBias && (Sb === S ? options.keyBias : tf.slice(options.keyBias, [0, 0], [BH, Sb]));
        const masked = bias ? tf.add(causal, bias.reshape([BH, 1, 1, Sb])) : causal;
        const probs = tf.softmax(masked) as tf.Tensor4D;
        if (options.observe) options.observe(Sb === seen ? probs : (tf.slice(probs, [0, 0, 0, 0], [BH, g, B, seen]) as tf.Tensor4D), b0);
        const o = tf.matMul(probs.reshape([BH, g * B, Sb]), vb).reshape([BH, g, B, d]) as tf.Tensor4D;
        return wantLse ? [o, logSumExpOfSoftmax(masked, probs)] : [o];
      });
      outs.push(out[0] as tf.Tensor4D);
      if (out[1]) lses.push(out[1] as tf.Tensor3D);
    }
    const all = outs.length === 1 ? outs[0]! : tf.concat(outs, 2);
    // [B·Hkv, g, T, d] = [B, H, T, d] -> [B, T, H, d] -> [B·T, H·d]
    const result = tf.transpose(all.reshape([batch, H, T, d]), [0, 2, 1, 3]).reshape([batch * T, H * d]);
    return !wantLse ? [result] : [result, lses.length === 1 ? lses[0]! : tf.concat(lses, 2)];
  });
  return { out: out as tf.Tensor2D, lse: (lse as tf.Tensor3D | undefined) ?? null };
}
