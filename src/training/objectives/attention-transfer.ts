import * as tf from "../../tf.js";
import type { LlamaModel, Projections } from "../../backbone/model.js";
import type { MemoryGatingModule } from "../../memory/module.js";
import { edgeInfiniteLayer } from "../../memory/edgeinfinite-attention.js";
import { initialState, type LayerState } from "../../memory/state.js";
import type { BatchGradients, SequenceGradients } from "../tbptt.js";
import { z } from "zod";
import type { Objective } from "./index.js";

/**
 * Attention transfer (LoLCATs, arXiv 2410.10254, stage 1): train the module so that each layer's EdgeInfinite
 * attention output matches the frozen backbone's own full softmax attention output, on sequences inside the
 * trained context (where full attention is the right answer).
 *
 *   loss = Σ_layers  Σ_t w_t ‖A_edge(t) − A_full(t)‖² / (Σ_t w_t · ‖A_full‖²_mean)
 *
 * Layers train in parallel from the teacher's hidden states: one forward of the backbone with full attention gives
 * every layer's pre-RoPE q/k/v and its attention output; each layer's student then runs segment by segment over
 * those same projections (memory carried across all segments: full BPTT within the sequence), one layer's tape at a
 * time (layerByLayer). Gradients never reach the backbone (plain tensors) and the teacher's forward is not on the
 * tape. Each layer's loss is divided by the teacher output's mean square, so layers of different scale weigh alike.
 *
 * Positions near a retrieval question matter most (the teacher's attention there points at a needle that left the
 * window): w_t = answerWeight on the last `querySpan` tokens before and on the answer (lossMask = 1) tokens, 1
 * elsewhere.
 */
export interface AttentionTransferOptions {
  /** Weight of question/answer positions relative to the others (1 = uniform). */
  answerWeight: number;
  /** Tokens before the first answer token that count as the question. */
  querySpan: number;
}

export const DEFAULT_ATTENTION_TRANSFER: AttentionTransferOptions = { answerWeight: 20, querySpan: 24 };

/** Per-position weights w_t for the N input positions (lossMask on the N+1 ids: 1 on answer tokens). */
export function positionWeights(n: number, lossMask: readonly number[] | undefined, o: AttentionTransferOptions): Float32Array {
  const w = new Float32Array(n).fill(1);
  if (!lossMask) return w;
  const first = lossMask.findIndex((m) => m > 0);
  if (first < 0) return w;
  // input position t predicts id t+1: the answer's first token is predicted at first − 1; the answer ends the row
  for (let t = Math.max(0, first - 1 - o.querySpan); t < n; t++) w[t] = o.answerWeight;
  return w;
}

interface TeacherLayer {
  p: Projections;
  /** Full causal attention output [B·N, H·d] (row b·N + t). */
  out: tf.Tensor2D;
}

/** The loss f() and its gradient for every trainable variable of the module (zeros where f does not reach it). */
async function lossAndGradients(module: MemoryGatingModule, f: () => tf.Scalar): Promise<{ loss: number; grads: Map<string, tf.Tensor> }> {
  const variables = [...module.trainableVariables().values()];
  const names = [...module.trainableVariables().keys()];
  const { value, grads } = tf.variableGrads(f, variables);
  const loss = (await value.data())[0]!;
  value.dispose();
  const out = new Map<string, tf.Tensor>();
  for (let i = 0; i < names.length; i++) out.set(names[i]!, grads[variables[i]!.name] ?? tf.zerosLike(variables[i]!));
  return { loss, grads: out };
}

/**
 * Σ over layers of layerLoss(layer) and its gradients, one layer's tape at a time. A layer's student reads only its
 * own parameters and the teacher's cached projections, so the gradient of the sum is the sum of the per-layer
 * gradients (each parameter gets exactly its own layer's, plus zeros); peak memory is one layer's tape instead of all
 * of them (8 layers × 16 segments of 128 tokens did not fit wasm's 4 GiB heap as one tape).
 */
async function layerByLayer(module: MemoryGatingModule, layers: number, layerLoss: (layer: number) => tf.Scalar): Promise<{ loss: number; grads: Map<string, tf.Tensor> }> {
  let loss = 0;
  let grads: Map<string, tf.Tensor> | null = null;
  try {
    for (let layer = 0; layer < layers; layer++) {
      const r = await lossAndGradients(module, () => layerLoss(layer));
      loss += r.loss;
      if (!grads) {
        grads = r.grads;
        continue;
      }
      for (const [name, g] of r.grads) {
        const prev = grads.get(name)!;
        grads.set(name, tf.add(prev, g));
        tf.dispose([prev, g]);
      }
    }
  } catch (e) {
    if (grads) tf.dispose([...grads.values()]);
    throw e;
  }
  return { loss, grads: grads! };
}

/**
 * One forward of the frozen backbone with full attention over B equal-length sequences (LlamaModel.fullAttention with
 * a batch), keeping each layer's projections [n, B·N, d] and attention output [B·N, H·d], row b·N + t.
 */
function teacherPass(model: LlamaModel, rows: readonly (readonly number[])[]): TeacherLayer[] {
  const layers: TeacherLayer[] = [];
  const attend = model.fullAttention(0, undefined, rows.length);
  tf.tidy(() => {
    model.runLayers(model.embed(rows.flat()), (layer, p, x) => {
      const out = attend(layer, p, x);
      layers.push({ p: { q: tf.keep(p.q.clone()), k: tf.keep(p.k.clone()), v: tf.keep(p.v.clone()) }, out: tf.keep(out.clone()) });
      return out;
    });
  });
  return layers;
}

/** Tokens start..start+n−1 of each of B sequences stored as rows b·N + t: [h, B·N, d] → [h, B·n, d]. */
function sliceRows(x: tf.Tensor3D, batch: number, start: number, n: number): tf.Tensor3D {
  const [h, rows, d] = x.shape;
  return tf.slice(x.reshape([h, batch, rows / batch, d]), [0, 0, start, 0], [h, batch, n, d]).reshape([h, batch * n, d]);
}

/**
 * The student: one layer of EdgeInfinite attention over all segments of the teacher's projections, for B sequences
 * at once (edgeInfiniteLayer with a batch; B = 1: one sequence) → [B·N, H·d], row b·N + t.
 */
function studentLayer(model: LlamaModel, module: MemoryGatingModule, layer: number, p: Projections, batch = 1): tf.Tensor2D {
  const N = p.q.shape[1] / batch;
  const L = module.config.segmentLength;
  let st: LayerState = initialState(model.config, module.config.featureMap, batch).layers[layer]!;
  const outs: tf.Tensor3D[] = [];
  for (let t0 = 0; t0 < N; t0 += L) {
    const n = Math.min(L, N - t0);
    const seg = { q: sliceRows(p.q, batch, t0, n), k: sliceRows(p.k, batch, t0, n), v: sliceRows(p.v, batch, t0, n) };
    const r = edgeInfiniteLayer(model, module, layer, seg, st, { constantLocal: true }, batch);
    outs.push(r.out.reshape([batch, n, r.out.shape[1]]));
    st = r.next;
  }
  const HD = outs[0]!.shape[2];
  return tf.concat(outs, 1).reshape([batch * N, HD]) as tf.Tensor2D;
}

/**
 * attentionTransferGradients of B equal-length sequences in one forward/backward (`training.batchSize` > 1): the
 * teacher runs once on B·N rows, each layer's student steps all B sequences' segments together, and each sequence's
 * loss keeps its own weights and normaliser. Returns Σ_b loss_b and Σ_b of its gradients (as the one-by-one path
 * sums them).
 */
export async function attentionTransferGradientsBatch(
  model: LlamaModel,
  module: MemoryGatingModule,
  sequences: readonly { ids: readonly number[]; lossMask?: readonly number[] | undefined }[],
  options: AttentionTransferOptions = DEFAULT_ATTENTION_TRANSFER,
): Promise<BatchGradients> {
  const batch = sequences.length;
  const inputs = sequences.map((q) => q.ids.slice(0, -1));
  const N = inputs[0]!.length;
  if (inputs.some((r) => r.length !== N)) throw new Error("attention transfer batch: sequences of different lengths");
  const teacher = teacherPass(model, inputs);
  const w = sequences.map((q) => positionWeights(N, q.lossMask, options));
  const weights = tf.tensor2d(Float32Array.from(w.flatMap((x) => [...x])), [batch * N, 1]);
  const wSums = tf.tensor1d(w.map((x) => x.reduce((a, b) => a + b, 0)));
  try {
    const { loss, grads } = await layerByLayer(module, teacher.length, (layer) => {
      const { p, out } = teacher[layer]!;
      const HD = out.shape[1];
      const student = studentLayer(model, module, layer, p, batch);
      // per sequence: Σ_t w_t ‖student − teacher‖² / (mean(teacher²) · Σ_t w_t · H·d)
      const sq = tf.sum(tf.mul(weights, tf.square(tf.sub(student, out))).reshape([batch, N * HD]), 1);
      const scale = tf.mul(tf.mean(tf.square(out).reshape([batch, N * HD]), 1), tf.mul(wSums, HD));
      return tf.sum(tf.div(sq, scale));
    });
    return { lossSum: loss, tokens: inputs.map(() => N), grads };
  } finally {
    tf.dispose([weights, wSums]);
    for (const t of teacher) tf.dispose([t.p.q, t.p.k, t.p.v, t.out]);
  }
}

/** Loss and gradients of one sequence under attention transfer (ids: N+1 tokens; the first N are the input). */
export async function attentionTransferGradients(
  model: LlamaModel,
  module: MemoryGatingModule,
  ids: readonly number[],
  lossMask: readonly number[] | undefined,
  options: AttentionTransferOptions = DEFAULT_ATTENTION_TRANSFER,
): Promise<SequenceGradients> {
  const inputs = ids.slice(0, -1);
  const N = inputs.length;
  const teacher = teacherPass(model, [inputs]);
  const w = positionWeights(N, lossMask, options);
  const weights = tf.tensor2d(w, [N, 1]);
  try {
    const wSum = w.reduce((a, b) => a + b, 0);
    const { loss, grads } = await layerByLayer(module, teacher.length, (layer) => {
      const { p, out } = teacher[layer]!;
      const student = studentLayer(model, module, layer, p);
      const sq = tf.sum(tf.mul(weights, tf.square(tf.sub(student, out))));
      const scale = tf.mul(tf.mean(tf.square(out)), wSum * out.shape[1]);
      return tf.div(sq, scale) as tf.Scalar;
    });
    return { loss, tokens: N, grads };
  } finally {
    weights.dispose();
    for (const t of teacher) tf.dispose([t.p.q, t.p.k, t.p.v, t.out]);
  }
}

const optionsSchema = z.strictObject({
  answerWeight: z.number().positive().default(DEFAULT_ATTENTION_TRANSFER.answerWeight),
  querySpan: z.number().int().nonnegative().default(DEFAULT_ATTENTION_TRANSFER.querySpan),
});

/** `training.objective: attention-transfer` (options: `training.objectiveOptions.answerWeight`, `.querySpan`). */
export const attentionTransfer: Objective<AttentionTransferOptions> = {
  summary: "per-layer MSE of the module's attention output against the frozen backbone's full attention (LoLCATs)",
  optionsSchema,
  gradients: ({ model, module, sequence, options }) => attentionTransferGradients(model, module, sequence.ids, sequence.lossMask, options),
  batchGradients: ({ model, module, sequences, options }) => attentionTransferGradientsBatch(model, module, sequences, options),
};
