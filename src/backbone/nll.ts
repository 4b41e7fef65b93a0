import * as tf from "../tf.js";
import type { LlamaModel } from "./model.js";
import { assertFinite } from "../util/finite.js";
import { logSumExpFromSoftmax } from "./logsumexp.js";

/**
 * −log softmax(x)[target] per row of x [T, vocab], given the targets as one-hot rows: logsumexp − x[target], with the
 * logsumexp from the softmax kernel (logSumExpFromSoftmax) rather than tfjs' logSoftmax, whose Exp over the
 * vocabulary is a scalar loop on wasm and runs again in its gradient. Gradient: dy · (p − onehot), from the saved p;
 * none to the one-hot rows.
 */
const nllOfOneHot = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, onehot, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  const p = tf.softmax(x);
  save([p, onehot]);
  return {
    value: tf.sub(logSumExpFromSoftmax(x, p), tf.sum(tf.mul(x, onehot), 1)),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(dy.expandDims(1), tf.sub(saved[0]!, saved[1]!)), tf.zerosLike(saved[1]!)],
  };
}) as (x: tf.Tensor2D, onehot: tf.Tensor2D) => tf.Tensor1D;

/**
 * −log softmax(logits)[t, targets[t]] for every row t of `logits` [T, vocab]: the one token-NLL computation, shared
 * by evaluation (tokenNll) and training (tbptt's loss). Differentiable (gradient softmax − one-hot).
 */
export function nllFromLogits(logits: tf.Tensor2D, targets: readonly number[]): tf.Tensor1D {
  return tf.tidy(() => {
    const onehot = tf.oneHot(tf.tensor1d(Array.from(targets), "int32"), logits.shape[1]) as tf.Tensor2D;
    return nllOfOneHot(logits, tf.cast(onehot, "float32") as tf.Tensor2D);
  });
}

/**
 * Per-token negative log-likelihood −log p(targets[t] | ·) from hidden states [T, D], computed in row chunks so the
 * [T, vocab] logits never exist at once for long inputs. Reads asynchronously (works on webgpu) and fails loudly
 * when a value is not finite or the webgpu device reported errors (`what` names the input in that message).
 */
export async function tokenNll(model: LlamaModel, hidden: tf.Tensor2D, targets: readonly number[], chunkRows = 512, what = "token NLL"): Promise<Float32Array> {
  const T = targets.length;
  const out = new Float32Array(T);
  for (let r0 = 0; r0 < T; r0 += chunkRows) {
    const n = Math.min(chunkRows, T - r0);
    const values = tf.tidy(() => {
      const logits = model.logits(tf.slice(hidden, [r0, 0], [n, hidden.shape[1]]));
      return nllFromLogits(logits, targets.slice(r0, r0 + n));
    });
    try {
      out.set((await values.data()) as Float32Array, r0);
    } finally {
      values.dispose();
    }
  }
  // NaN/±Inf logits give a non-finite NLL: checking the NLL checks the logits it was computed from.
  assertFinite(out, what);
  return out;
}

/** One window of windowedNll: the tokens it feeds (BOS or the token before first) and where its scored tokens start. */
export interface NllWindow {
  ids: number[];
  /** Index in the text of the window's first scored token (ids[1]). */
  first: number;
}

/**
 * The windows windowedNll scores `ids` in: independent windows of `context` tokens, each starting with BOS (with `bos`
 * null, for tokenizers without one such as Qwen's, with the token before the window's first scored one).
 */
export function nllWindows(ids: readonly number[], context: number, bos: number | null): NllWindow[] {
  if (!Number.isInteger(context) || context < 2) throw new Error(`context ${context} must be an integer ≥ 2`);
  const out: NllWindow[] = [];
  for (let s = 1; s < ids.length; s += context - 1) out.push({ ids: [bos ?? ids[s - 1]!, ...ids.slice(s, s + context - 1)], first: s });
  return out;
}

/**
 * NLL of every token of `ids` but the first with the plain backbone, in independent windows of `context` tokens
 * (nllWindows): what `edgeinf ppl --method full` reports. windowedNllBatch of one text, one window per forward.
 */
export async function windowedNll(model: LlamaModel, ids: readonly number[], context: number, bos: number | null): Promise<number[]> {
  return (await windowedNllBatch(model, [ids], context, bos, 1))[0]!;
}

/**
 * windowedNll of several texts, up to `batchSize` windows of equal length per forward (LlamaModel.forwardBatch):
 * a text's full-length windows batch with each other and with other texts', its shorter last window with
 * windows of the same length. Returns each text's NLL, equal to windowedNll of that text (exactly on cpu and wasm:
 * batched rows equal single forwards, test/backbone-batch.test.ts).
 */
export async function windowedNllBatch(
  model: LlamaModel,
  texts: readonly (readonly number[])[],
  context: number,
  bos: number | null,
  batchSize: number,
): Promise<number[][]> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size ${batchSize} must be an integer ≥ 1`);
  const out = texts.map((ids) => new Array<number>(Math.max(0, ids.length - 1)));
  const jobs = texts.flatMap((ids, text) => nllWindows(ids, context, bos).map((w) => ({ ...w, text })));
  for (const group of equalLengthBatches(jobs, batchSize)) {
    const span = (w: (typeof group)[number]) => `${w.first}..${w.first + w.ids.length - 2}`;
    const what = texts.length === 1 && group.length === 1 ? `NLL of tokens ${span(group[0]!)}` : `NLL of ${group.map((w) => `tokens ${span(w)} of text ${w.text + 1}`).join(", ")}`;
    const nll = await batchNll(model, group.map((w) => w.ids), what);
    let at = 0;
    for (const w of group) {
      const n = w.ids.length - 1;
      for (let i = 0; i < n; i++) out[w.text]![w.first - 1 + i] = nll[at + i]!;
      at += n;
    }
  }
  return out;
}

/**
 * `items` cut into batches of at most `batchSize` whose `ids` have equal lengths (forwardBatch takes no padding),
 * in order of first appearance of each length and, within a length, in input order.
 */
export function equalLengthBatches<W extends { ids: readonly number[] }>(items: readonly W[], batchSize: number): W[][] {
  const byLength = new Map<number, W[]>();
  for (const w of items) {
    const same = byLength.get(w.ids.length);
    if (same) same.push(w);
    else byLength.set(w.ids.length, [w]);
  }
  const out: W[][] = [];
  for (const same of byLength.values()) for (let i = 0; i < same.length; i += batchSize) out.push(same.slice(i, i + batchSize));
  return out;
}

/** f over `items` in equal-length batches of at most `batchSize` (equalLengthBatches); results in input order. */
export async function mapInEqualLengthBatches<W extends { ids: readonly number[] }, R>(
  items: readonly W[],
  batchSize: number,
  f: (batch: W[]) => Promise<R[]>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  const indexed = items.map((item, i) => ({ item, i, ids: item.ids }));
  for (const group of equalLengthBatches(indexed, batchSize)) {
    const r = await f(group.map((g) => g.item));
    group.forEach((g, j) => (out[g.i] = r[j]!));
  }
  return out;
}

/** NLL of tokens 1.. of each of equal-length windows, rows concatenated (window b's first, b·(T−1)). */
async function batchNll(model: LlamaModel, windows: readonly number[][], what: string): Promise<Float32Array> {
  const T = windows[0]!.length;
  // The whole window goes through the forward, its last token too (its row is not scored): with a length-dependent
  // RoPE (dynamic NTK, longrope) the frequencies depend on the call's length, and transformers' NLL is the forward
  // of all the ids (test/cli-families.test.ts, llama-dynamic).
  const h = tf.tidy(() => {
    const all = model.forwardBatch(windows);
    const D = all.shape[2];
    return tf.slice(all, [0, 0, 0], [windows.length, T - 1, D]).reshape([windows.length * (T - 1), D]) as tf.Tensor2D;
  });
  try {
    return await tokenNll(model, h, windows.flatMap((w) => w.slice(1)), 512, what);
  } finally {
    h.dispose();
  }
}
