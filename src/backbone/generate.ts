import type * as tf from "../tf.js";
import type { InferenceSession } from "./session.js";
import { sampleToken, type SamplingOptions } from "./sampling.js";
import { assertFinite } from "../util/finite.js";
import { Rng } from "../util/rng.js";

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Stop after emitting any of these ids (not included in the output). */
  stopIds?: readonly number[];
  /**
   * The first this-many new tokens are never a stop id: their logits are masked to -Infinity before sampling, as
   * transformers' MinLengthLogitsProcessor does for `min_length` (LongBench's pred.py sets it for samsum so the
   * answer is never empty). Default 0.
   */
  minNewTokens?: number;
  seed?: number;
  onToken?: (id: number) => void;
  /**
   * Teacher forcing: feed forcedIds[i] as the i-th new token instead of the sampled one (the output still holds the
   * sampled ids; stop ids do not stop). For comparing logits across backends.
   */
  forcedIds?: readonly number[];
  /** Sees the host logits of the prefill (i = 0) and of each decode step (i = 1, 2, …); must not keep them mutable. */
  onLogits?: (logits: Float32Array, i: number) => void;
}

export interface GenerateResult {
  ids: number[];
  /** Wall time of the prefill up to the first token's logits, ms. */
  ttftMs: number;
  /** Decode throughput over the new tokens after the first. */
  decodeTokensPerSecond: number;
  prefillTokensPerSecond: number;
  kvBytesAfterPrefill: number;
  peakKvBytes: number;
}

/**
 * Reads logits to the host with `await data()` (the only read tfjs-backend-webgpu has in Node), disposes them, and
 * fails loudly when any is NaN/±Inf or the webgpu device reported errors (its outputs are then untrustworthy).
 */
export async function readLogits(logits: tf.Tensor, what: string): Promise<Float32Array> {
  let host: Float32Array;
  try {
    host = (await logits.data()) as Float32Array;
  } finally {
    logits.dispose();
  }
  assertFinite(host, what);
  return host;
}

/** A copy of `logits` with `ids` at -Infinity (never sampled), as MinLengthLogitsProcessor masks EOS. */
export function withoutIds(logits: Float32Array, ids: ReadonlySet<number>): Float32Array {
  if (ids.size === 0) return logits;
  const masked = logits.slice();
  for (const id of ids) if (id >= 0 && id < masked.length) masked[id] = -Infinity;
  return masked;
}

/**
 * Prefills `promptIds` and decodes up to maxNewTokens tokens through any InferenceSession. Every read is
 * asynchronous, so it runs on every backend (webgpu included); every logits row is checked to be finite.
 */
export async function generate(session: InferenceSession, promptIds: readonly number[], opts: GenerateOptions): Promise<GenerateResult> {
  if (opts.forcedIds && opts.forcedIds.length < opts.maxNewTokens - 1) {
    throw new Error(`generate: ${opts.forcedIds.length} forced ids for ${opts.maxNewTokens} new tokens (needs ${opts.maxNewTokens - 1})`);
  }
  const rng = new Rng(opts.seed ?? 0);
  const stop = new Set(opts.forcedIds ? [] : (opts.stopIds ?? []));
  const t0 = performance.now();
  let host = await readLogits(await session.prefill(promptIds), `${session.method} logits after a ${promptIds.length}-token prefill`);
  const ttftMs = performance.now() - t0;
  opts.onLogits?.(host, 0);
  const kvBytesAfterPrefill = session.kvBytes();
  const ids: number[] = [];
  const t1 = performance.now();
  let decoded = 0;
  for (let i = 0; i < opts.maxNewTokens; i++) {
    const id = sampleToken(i < (opts.minNewTokens ?? 0) ? withoutIds(host, stop) : host, opts, rng);
    if (stop.has(id)) break;
    ids.push(id);
    opts.onToken?.(id);
    if (i === opts.maxNewTokens - 1) break;
    const next = opts.forcedIds ? opts.forcedIds[i]! : id;
    host = await readLogits(await session.step(next), `${session.method} logits at decode step ${i + 1}`);
    decoded++;
    opts.onLogits?.(host, decoded);
  }
  const decodeMs = performance.now() - t1;
  return {
    ids,
    ttftMs,
    decodeTokensPerSecond: decoded > 0 ? (decoded * 1000) / decodeMs : 0,
    prefillTokensPerSecond: (promptIds.length * 1000) / ttftMs,
    kvBytesAfterPrefill,
    peakKvBytes: session.peakKvBytes(),
  };
}
