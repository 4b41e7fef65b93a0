import type { InferenceSession } from "./session.js";
import { sampleToken, type SamplingOptions } from "./sampling.js";
import { Rng } from "../util/rng.js";

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Stop after emitting any of these ids (not included in the output). */
  stopIds?: readonly number[];
  seed?: number;
  onToken?: (id: number) => void;
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

/** Prefills `promptIds` and decodes up to maxNewTokens tokens through any InferenceSession. */
export function generate(session: InferenceSession, promptIds: readonly number[], opts: GenerateOptions): GenerateResult {
  const rng = new Rng(opts.seed ?? 0);
  const stop = new Set(opts.stopIds ?? []);
  const t0 = performance.now();
  let logits = session.prefill(promptIds);
  let host = logits.dataSync() as Float32Array;
  logits.dispose();
  const ttftMs = performance.now() - t0;
  const kvBytesAfterPrefill = session.kvBytes();
  const ids: number[] = [];
  const t1 = performance.now();
  let decoded = 0;
  for (let i = 0; i < opts.maxNewTokens; i++) {
    const id = sampleToken(host, opts, rng);
    if (stop.has(id)) break;
    ids.push(id);
    opts.onToken?.(id);
    if (i === opts.maxNewTokens - 1) break;
    logits = session.step(id);
    host = logits.dataSync() as Float32Array;
    logits.dispose();
    decoded++;
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
