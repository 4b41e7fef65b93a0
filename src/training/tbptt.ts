import * as tf from "../tf.js";
import { equalRowLength, type LlamaModel } from "../backbone/model.js";
import { nllFromLogits } from "../backbone/nll.js";
import type { MemoryGatingModule } from "../memory/module.js";
import { edgeInfiniteNllBatch, forwardSegmentBatch, segmentsOf } from "../memory/edgeinfinite.js";
import { initialState, keepState, disposeReplaced, disposeState, type EdgeInfiniteState } from "../memory/state.js";
import type { SegmentOptions } from "../memory/edgeinfinite-attention.js";
import { addNLimited } from "../backend/add-n.js";
import { addGradient } from "./gradient-sums.js";

export interface SequenceGradients {
  /** Mean NLL over the sequence's (masked) target tokens. */
  loss: number;
  /** Target tokens that counted. */
  tokens: number;
  /** d(mean loss)/d(variable), truncated as described below; caller disposes. */
  grads: Map<string, tf.Tensor>;
}

/**
 * Lets the event loop run once. On the cpu and wasm backends a training step never leaves the microtask queue
 * (their reads resolve at once), so without this, signals (Ctrl-C) and timers would wait for the whole run.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Σ of scalars kept on the device, read with one asynchronous read (works on webgpu) and summed on the host in
 * order, in float64 (as a host loop over per-block reads would). Disposes them.
 */
async function readSum(scalars: tf.Scalar[]): Promise<number> {
  if (scalars.length === 0) return 0;
  const stacked = tf.stack(scalars);
  tf.dispose(scalars);
  try {
    let sum = 0;
    for (const x of await stacked.data()) sum += x;
    return sum;
  } finally {
    stacked.dispose();
  }
}

/**
 * Σ −log p(target) · mask over each sequence's rows of hidden [B·T, D] (row b·T + t; targets and mask likewise
 * concatenated): B scalars (differentiable). One sequence: one sum over all rows.
 */
function nllSums(model: LlamaModel, hidden: tf.Tensor2D, batch: number, targets: number[], mask: number[]): tf.Scalar[] {
  // −Σ m·log p equals Σ m·(−log p) exactly: negation is exact in floating point.
  return tf.tidy(() => {
    const weighted = tf.mul(nllFromLogits(model.logits(hidden), targets), tf.tensor1d(mask));
    if (batch === 1) return [tf.sum(weighted) as tf.Scalar];
    return tf.unstack(tf.sum(weighted.reshape([batch, -1]), 1)) as tf.Scalar[];
  });
}

/** A sequence of a batch: ids and, optionally, its loss mask (1 = the target counts; entry 0 is the first input's). */
export interface GradientSequence {
  ids: readonly number[];
  lossMask?: readonly number[];
}

/** What sequenceGradientsBatch returns: Σ over the batch of each sequence's mean loss, and of its gradients. */
export interface BatchGradients {
  /** Σ_b (mean NLL of sequence b over its counted targets). */
  lossSum: number;
  /** Counted target tokens of each sequence. */
  tokens: number[];
  /** Σ_b d(mean loss of b)/d(variable), truncated as sequenceGradients describes; caller disposes. */
  grads: Map<string, tf.Tensor>;
}

/**
 * Segment-wise truncated backprop through time for one sequence.
 *
 * The inputs ids[0..N−2] predict ids[1..N−1]. Segments are processed in order with the memory state carried; they
 * are grouped in blocks of `tbpttSegments` (k): inside a block gradients flow through the carried state, at a block
 * boundary the state enters the next block as a constant (stop-gradient). So each segment's loss back-propagates
 * through at most k segments of memory, and the tape (peak memory) holds at most k segments whatever N is.
 * k = 1 is what public Infini-attention reimplementations do; k ≥ number of segments is full BPTT.
 * sequenceGradientsBatch of one sequence.
 */
export async function sequenceGradients(
  model: LlamaModel,
  module: MemoryGatingModule,
  ids: readonly number[],
  tbpttSegments: number,
  lossMask?: readonly number[],
  options: SegmentOptions = {},
): Promise<SequenceGradients> {
  const r = await sequenceGradientsBatch(model, module, [lossMask ? { ids, lossMask } : { ids }], tbpttSegments, options);
  return { loss: r.lossSum, tokens: r.tokens[0]!, grads: r.grads };
}

/**
 * sequenceGradients of B equal-length sequences in one forward/backward per block (forwardSegmentBatch, one state
 * of B sequences), each with its own loss mask: the loss differentiated is Σ_b (mean loss of b), so the gradients
 * are the sum of the B sequences' own (to float32 rounding: the sum is taken inside the backward pass).
 */
export async function sequenceGradientsBatch(
  model: LlamaModel,
  module: MemoryGatingModule,
  seqs: readonly GradientSequence[],
  tbpttSegments: number,
  options: SegmentOptions = {},
): Promise<BatchGradients> {
  equalRowLength(seqs.map((q) => q.ids)); // one block loop serves all rows
  const batch = seqs.length;
  const targets = seqs.map((q) => q.ids.slice(1));
  const masks = seqs.map((q, b) => (q.lossMask ? q.lossMask.slice(1).map(Number) : targets[b]!.map(() => 1)));
  const tokens = masks.map((m) => m.reduce((a, x) => a + x, 0));
  const L = module.config.segmentLength;
  const segments = seqs.map((q) => segmentsOf(q.ids.slice(0, -1), L));
  const variables = [...module.trainableVariables().values()];
  const names = [...module.trainableVariables().keys()];
  const grads = new Map<string, tf.Tensor>();
  let state: EdgeInfiniteState = initialState(model.config, module.config.featureMap, batch);
  // Block losses stay on the device until the end: one read per batch, not one per block.
  const losses: tf.Scalar[] = [];
  try {
    for (let b0 = 0; b0 < segments[0]!.length; b0 += tbpttSegments) {
      await yieldToEventLoop();
      const prev = state;
      let next = prev;
      const { value, grads: g } = tf.variableGrads(() => {
        let st = prev;
        let sums: tf.Scalar[] = seqs.map(() => tf.scalar(0));
        for (let s = b0; s < Math.min(b0 + tbpttSegments, segments[0]!.length); s++) {
          const rows = segments.map((q) => q[s]!);
          const r = forwardSegmentBatch(model, module, st, rows, options);
          const off = s * L;
          const T = rows[0]!.length;
          const part = (xs: number[][]) => xs.flatMap((x) => x.slice(off, off + T));
          const seg = nllSums(model, r.hidden, batch, part(targets), part(masks));
          sums = sums.map((sum, b) => tf.add(sum, seg[b]!));
          st = r.state;
        }
        next = keepState(st);
        const perSequence = sums.map((sum, b) => tf.div(sum, Math.max(tokens[b]!, 1)) as tf.Scalar);
        // addNLimited: one tf.addN of B ≥ 8 inputs is past webgpu's storage buffers per kernel (src/backend/add-n.ts).
        return batch === 1 ? perSequence[0]! : (addNLimited(perSequence) as tf.Scalar);
      }, variables);
      losses.push(value);
      for (const name of names) {
        const gi = g[variables[names.indexOf(name)]!.name];
        if (gi) addGradient(grads, name, gi);
      }
      disposeReplaced(prev, next);
      state = next;
    }
  } catch (e) {
    tf.dispose([...grads.values(), ...losses]);
    throw e;
  } finally {
    disposeState(state);
  }
  let lossSum: number;
  try {
    lossSum = await readSum(losses);
  } catch (e) {
    tf.dispose([...grads.values()]);
    throw e;
  }
  // With k = 1 the segment that writes memory never reads it back on the same tape, so the key/value maps get no
  // gradient at all: report zeros rather than leaving them out.
  for (let i = 0; i < names.length; i++) if (!grads.has(names[i]!)) grads.set(names[i]!, tf.zerosLike(variables[i]!));
  return { lossSum, tokens, grads };
}

/**
 * Mean NLL of a sequence through EdgeInfinite (no gradients), e.g. for held-out evaluation: the per-token NLL of
 * `edgeInfiniteNll` (the same segment loop `edgeinf ppl --method edgeinfinite` runs), averaged over the loss mask.
 */
export async function sequenceLoss(
  model: LlamaModel,
  module: MemoryGatingModule,
  ids: readonly number[],
  lossMask?: readonly number[],
  options: SegmentOptions = {},
): Promise<number> {
  return (await sequenceLossBatch(model, module, [lossMask ? { ids, lossMask } : { ids }], options))[0]!;
}

/**
 * sequenceLoss of B equal-length sequences stepped together (edgeInfiniteNllBatch), each with its own loss mask:
 * each one's loss equals sequenceLoss of it alone.
 */
export async function sequenceLossBatch(
  model: LlamaModel,
  module: MemoryGatingModule,
  seqs: readonly { ids: readonly number[]; lossMask?: readonly number[] }[],
  options: SegmentOptions = {},
): Promise<number[]> {
  const nlls = await edgeInfiniteNllBatch(model, module, seqs.map((s) => s.ids), options);
  return nlls.map((nll, b) => maskedMean(nll, seqs[b]!.lossMask));
}

/** Σ mask·nll / Σ mask (mask[t] weighs nll[t], the NLL of token t + 1: the mask's first entry is the BOS's). */
function maskedMean(nll: readonly number[], lossMask: readonly number[] | undefined): number {
  const mask = lossMask ? lossMask.slice(1).map(Number) : nll.map(() => 1);
  let sum = 0;
  let tokens = 0;
  for (let t = 0; t < nll.length; t++) {
    sum += mask[t]! * nll[t]!;
    tokens += mask[t]!;
  }
  return sum / Math.max(tokens, 1);
}
