import type { Rng } from "../util/rng.js";

export interface SamplingOptions {
  /** 0 = greedy (argmax). */
  temperature: number;
  topK?: number;
  topP?: number;
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/** Temperature, top-k then top-p (nucleus) sampling over host logits; greedy when temperature is 0. */
export function sampleToken(logits: Float32Array, opts: SamplingOptions, rng: Rng): number {
  if (opts.temperature <= 0) return argmax(logits);
  const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
  const k = Math.min(opts.topK && opts.topK > 0 ? opts.topK : order.length, order.length);
  const kept = order.slice(0, k);
  const maxLogit = logits[kept[0]!]!;
  let probs = kept.map((i) => Math.exp((logits[i]! - maxLogit) / opts.temperature));
  let sum = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / sum);
  if (opts.topP !== undefined && opts.topP < 1) {
    let cum = 0;
    let cut = probs.length;
    for (let i = 0; i < probs.length; i++) {
      cum += probs[i]!;
      if (cum >= opts.topP) {
        cut = i + 1;
        break;
      }
    }
    probs = probs.slice(0, cut);
    sum = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / sum);
  }
  let r = rng.next();
  for (let i = 0; i < probs.length; i++) {
    r -= probs[i]!;
    if (r <= 0) return kept[i]!;
  }
  return kept[probs.length - 1]!;
}
