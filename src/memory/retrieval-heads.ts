import * as tf from "../tf.js";
import type { LlamaModel } from "../backbone/model.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { generateTrainingSequence, HaystackSource, type TaskName } from "../datasets/synthetic/index.js";
import { Rng } from "../util/rng.js";

/**
 * Retrieval heads (Wu et al. 2024, arXiv 2404.15574; DuoAttention, arXiv 2410.10819): the few heads whose
 * attention, while the model copies a value it read earlier in its context, lands on that value. Only they need
 * old tokens exactly; the other heads attend to recent text or spread their attention thinly. An EdgeInfinite
 * layer's exact cache serves only that layer's queries, so the exact-cache budget can go to the layers that hold
 * retrieval heads (`exactTokensPerLayer`, docs/edgeinfinite.md "Exact cache per layer").
 */

/** A sequence in which the model copies a value seen earlier: rows [start, end) predict the copied tokens. */
export interface RetrievalProbe {
  ids: number[];
  /** Query rows whose next token is a copied value token, [start, end). */
  queryRows: [number, number];
  /** Every place the value's tokens occur in the context, [start, end) each (a passkey needle says its number twice). */
  sources: [number, number][];
}

/** Every start of `needle` in ids[0, before). */
function occurrences(ids: readonly number[], needle: readonly number[], before: number): number[] {
  const starts: number[] = [];
  for (let s = 0; s + needle.length <= before; s++) if (needle.every((t, i) => ids[s + i] === t)) starts.push(s);
  return starts;
}

/**
 * Probes from synthetic retrieval sequences (the formats the backbone may have been trained on: passkey, key-value;
 * docs/edgeinfinite.md) over `corpus` text, `count` of them at `length` tokens, needle depths evenly spread over
 * 0.05–0.95, seeded. The answer is the completion at the end of each sequence; its value tokens (the completion
 * without its final period) are looked up earlier in the sequence, where the needle put them (the haystack never
 * holds the answer: the generator redraws such records). A sequence whose value tokens do not occur there verbatim
 * (the tokenizer merged them with a neighbour) is skipped.
 */
export function retrievalProbes(opts: { tokenizer: Tokenizer; corpus: readonly string[]; length: number; count: number; seed: number }): RetrievalProbe[] {
  const haystack = new HaystackSource(opts.corpus);
  const rng = new Rng(opts.seed);
  const tasks: TaskName[] = ["passkey", "kv-retrieval"];
  const probes: RetrievalProbe[] = [];
  for (let i = 0; i < opts.count; i++) {
    const depth = opts.count === 1 ? 0.5 : 0.05 + (0.9 * i) / (opts.count - 1);
    const seq = generateTrainingSequence(tasks[i % tasks.length]!, {
      tokenizer: opts.tokenizer,
      haystack,
      sequenceLength: opts.length,
      rng,
      depth,
      intro: true,
      params: { digits: [4, 6] },
    });
    const answerStart = seq.lossMask.indexOf(1);
    const value = seq.ids.slice(answerStart, seq.ids.length - 1); // the completion without its final "."
    const starts = value.length > 0 ? occurrences(seq.ids, value, answerStart) : [];
    if (starts.length === 0) continue;
    probes.push({ ids: seq.ids, queryRows: [answerStart - 1, answerStart - 1 + value.length], sources: starts.map((s): [number, number] => [s, s + value.length]) });
  }
  return probes;
}

/**
 * Retrieval score of every query head, [layer][head]: the largest attention probability mass that one of the
 * probe's copying rows puts on its sources (the value's tokens wherever they occur), averaged over the probes:
 *   score[l][h] = mean over probes of max over rows r of Σ_{j ∈ sources} softmax_j(q_r·k_j/√d)
 * The probabilities are the backbone's own full causal attention's (its scale, sliding window and soft-capping), as
 * the attention's `observe` hook sees them while LlamaModel.fullAttention computes the layer. The max, not the mean
 * over rows: a head that finds the needle at the first copied token (which needle is the answer) matters as much as
 * one that copies the following digits, though it attends there only once.
 */
export function retrievalScores(model: LlamaModel, probes: readonly RetrievalProbe[], onProbe?: (index: number) => void): number[][] {
  const { numLayers: L, numHeads: H } = model.config;
  const sums = Array.from({ length: L }, () => new Float64Array(H));
  for (const [index, probe] of probes.entries()) {
    const [r0, r1] = probe.queryRows;
    const T = probe.ids.length;
    const onSource = new Float32Array(T);
    for (const [s0, s1] of probe.sources) onSource.fill(1, s0, s1);
    const best = Array.from({ length: L }, () => new Float64Array(H));
    // probs [Hkv, g, B, seen] of query rows b0 … b0 + B − 1: the copying rows' mass on the sources, per head (h = kv·g + j)
    const observeLayer = (layer: number) => (probs: tf.Tensor4D, b0: number) => {
      const [Hkv, g, B, seen] = probs.shape;
      const lo = Math.max(r0, b0);
      const hi = Math.min(r1, b0 + B);
      if (lo >= hi) return;
      const mass = tf.tidy(() => tf.max(tf.sum(tf.mul(tf.slice(probs, [0, 0, lo - b0, 0], [Hkv, g, hi - lo, seen]), tf.tensor1d(onSource.subarray(0, seen))), 3), 2));
      const m = mass.dataSync();
      mass.dispose();
      for (let h = 0; h < H; h++) best[layer]![h] = Math.max(best[layer]![h]!, m[h]!);
    };
    tf.tidy(() => {
      model.runLayers(model.embed(probe.ids), model.fullAttention(0, undefined, 1, observeLayer));
    });
    best.forEach((row, l) => row.forEach((m, h) => (sums[l]![h] += m)));
    onProbe?.(index);
  }
  return sums.map((s) => Array.from(s, (v) => (probes.length > 0 ? v / probes.length : 0)));
}

/**
 * Splits `total` exact-cache tokens over layers: every layer gets `floor`, the rest goes in proportion to the
 * layer's score (its best head's retrieval score), no layer above `cap`; what a capped layer cannot take goes to
 * the others in the same proportion. Whole tokens by largest remainder, so the parts sum to `total` exactly (when
 * L·cap allows it). All scores zero: an even split.
 */
export function allocateExactTokens(layerScores: readonly number[], total: number, floor: number, cap = Infinity): number[] {
  const L = layerScores.length;
  if (L === 0) return [];
  if (!(floor >= 0) || floor * L > total) throw new Error(`allocateExactTokens: floor ${floor} × ${L} layers exceeds the total ${total}`);
  const share = new Array<number>(L).fill(floor);
  let open = layerScores.map((_, l) => l).filter((l) => share[l]! < cap);
  let left = total - floor * L;
  // Proportional shares, capping layers until none is over (each round caps at least one layer or ends).
  while (left > 1e-9 && open.length > 0) {
    const weightSum = open.reduce((s, l) => s + Math.max(0, layerScores[l]!), 0);
    const weight = (l: number) => (weightSum > 0 ? Math.max(0, layerScores[l]!) / weightSum : 1 / open.length);
    const over = open.filter((l) => share[l]! + left * weight(l) > cap);
    if (over.length === 0) {
      for (const l of open) share[l] = share[l]! + left * weight(l);
      left = 0;
      break;
    }
    for (const l of over) {
      left -= cap - share[l]!;
      share[l] = cap;
    }
    open = open.filter((l) => !over.includes(l));
  }
  // Whole tokens: round down, then hand the remaining tokens to the largest fractional parts (ties: lower layer).
  const whole = share.map((s) => Math.floor(s + 1e-9));
  let rest = Math.min(total, L * cap) - whole.reduce((s, v) => s + v, 0);
  const byFraction = share.map((s, l) => ({ l, f: s - whole[l]! })).sort((a, b) => b.f - a.f || a.l - b.l);
  for (const { l } of byFraction) {
    if (rest <= 0) break;
    if (whole[l]! < cap) {
      whole[l]! += 1;
      rest--;
    }
  }
  return whole;
}
