/**
 * Runs one prompt through fresh sessions of one method and measures it: greedy output, time to first token,
 * decode throughput, KV bytes, process memory and leaked tensors. Timings are the median over `repeats` runs, each
 * in a fresh session (outputs are deterministic, so ids and KV numbers come from the first); the TTFT of every run
 * is kept too.
 */
import * as tf from "../tf.js";
import { generate } from "../backbone/generate.js";
import type { InferenceSession } from "../backbone/session.js";

export interface MeasureOptions {
  maxNewTokens: number;
  temperature: number;
  stopIds: readonly number[];
  /** New tokens generated before a stop id may end the answer (generate's minNewTokens). */
  minNewTokens?: number;
  seed: number;
  repeats: number;
}

export interface Measurement {
  ids: number[];
  /** Median of ttftMsRuns. */
  ttftMs: number;
  /** TTFT of each timed run, in run order (`repeats` values). */
  ttftMsRuns: number[];
  decodeTokensPerSecond: number;
  prefillTokensPerSecond: number;
  kvBytesAfterPrefill: number;
  peakKvBytes: number;
  maxRssKb: number;
  rssBytes: number;
  leakedTensors: number;
}

/** Median of a non-empty list (mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error("median of an empty list");
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Prefill + decode `promptIds` `repeats` times, each in a new session from `makeSession`. */
export async function measure(makeSession: () => InferenceSession, promptIds: readonly number[], opts: MeasureOptions): Promise<Measurement> {
  const ttft: number[] = [];
  const decode: number[] = [];
  const prefill: number[] = [];
  let first: Measurement | null = null;
  for (let r = 0; r < Math.max(1, opts.repeats); r++) {
    const tensorsBefore = tf.memory().numTensors;
    let rss = 0;
    let sampledAfterPrefill = false;
    const session = makeSession();
    let result: Awaited<ReturnType<typeof generate>>;
    try {
      result = await generate(session, promptIds, {
        maxNewTokens: opts.maxNewTokens,
        temperature: opts.temperature,
        stopIds: opts.stopIds,
        ...(opts.minNewTokens !== undefined ? { minNewTokens: opts.minNewTokens } : {}),
        seed: opts.seed,
        onToken: () => {
          // The first token arrives right after prefill, when the prompt's activations are at their largest.
          if (!sampledAfterPrefill) rss = Math.max(rss, process.memoryUsage().rss);
          sampledAfterPrefill = true;
        },
      });
      rss = Math.max(rss, process.memoryUsage().rss);
    } finally {
      session.dispose();
    }
    ttft.push(result.ttftMs);
    decode.push(result.decodeTokensPerSecond);
    prefill.push(result.prefillTokensPerSecond);
    first ??= {
      ids: result.ids,
      ttftMs: 0,
      ttftMsRuns: [],
      decodeTokensPerSecond: 0,
      prefillTokensPerSecond: 0,
      kvBytesAfterPrefill: result.kvBytesAfterPrefill,
      peakKvBytes: result.peakKvBytes,
      maxRssKb: 0,
      rssBytes: rss,
      leakedTensors: tf.memory().numTensors - tensorsBefore,
    };
  }
  return {
    ...first!,
    ttftMs: median(ttft),
    ttftMsRuns: ttft,
    decodeTokensPerSecond: median(decode),
    prefillTokensPerSecond: median(prefill),
    maxRssKb: process.resourceUsage().maxRSS,
  };
}

/** One short untimed prefill and step, so one-off costs (kernel set-up, RoPE tables) stay out of the timings. */
export async function warmUp(makeSession: () => InferenceSession, promptIds: readonly number[]): Promise<void> {
  const session = makeSession();
  try {
    (await session.prefill(promptIds)).dispose();
    (await session.step(promptIds[promptIds.length - 1]!)).dispose();
  } finally {
    session.dispose();
  }
}
