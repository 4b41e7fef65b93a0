import * as tf from "../tf.js";
import { sequenceMajor, type LlamaModel, type Projections } from "../backbone/model.js";
import { groupedAttention, groupedAttentionWithLse } from "../backbone/attention.js";
import { positionRange } from "../backbone/rope.js";
import type { LayerMemoryParams, MemoryGatingModule } from "./module.js";
import type { LayerState } from "./state.js";
import { readAndGate, writeEvicted } from "./memory-step.js";
import { offTape } from "../util/off-tape.js";
import { layerConfig } from "./config.js";

export interface SegmentOptions {
  maxScoreBytes?: number;
  /** Forces every gate to this value (tests: 0 gives sink+window attention exactly). */
  forceGate?: number;
  /**
   * Treat the local attention as a constant of the gradient (attention transfer, where every layer's inputs are the
   * frozen teacher's): its score tensors then stay off the tape, which otherwise holds them for every segment.
   */
  constantLocal?: boolean;
  /**
   * Tokens leave the window only once at least this many have overflowed it (default 1: at the end of every
   * segment). EdgeInfiniteSession's decoding passes its `decodeSegment` (default 1); with the segment length,
   * one-token steps build a segment the way a prefill segment is processed: each new token attends to the window plus
   * the tokens decoded since the last eviction, against the same memory, and they leave together
   * (docs/edgeinfinite.md, "What it costs at decode").
   */
  evictAtLeast?: number;
}

/** Tensors as one flat tensor (offTape carries one), and back to the given shapes. */
const pack = (parts: tf.Tensor[]): tf.Tensor1D => (parts.length === 1 ? parts[0]!.reshape([-1]) : tf.concat(parts.map((t) => t.reshape([-1])))) as tf.Tensor1D;
function unpack(flat: tf.Tensor1D, shapes: number[][]): tf.Tensor[] {
  let at = 0;
  return shapes.map((shape) => {
    const n = tf.util.sizeFromShape(shape);
    at += n;
    return tf.slice(flat, [at - n], [n]).reshape(shape);
  });
}

const cat = (parts: (tf.Tensor3D | null)[]): tf.Tensor3D | null => {
  const present = parts.filter((p): p is tf.Tensor3D => p !== null);
  return present.length === 0 ? null : present.length === 1 ? present[0]! : (tf.concat(present, 1) as tf.Tensor3D);
};
const slice3 = (x: tf.Tensor3D, start: number, n: number): tf.Tensor3D => tf.slice(x, [0, start, 0], [x.shape[0], n, x.shape[2]]);

/**
 * One layer of EdgeInfinite attention over one segment (T tokens), given its pre-RoPE projections:
 *  1. local: the segment attends (causal) over sink + exact cache + window + itself, at positions inside that span;
 *  2. memory: queries read the compressed memory of everything older (memory-step.ts, readAndGate);
 *  3. the gate mixes the two per head (same function);
 *  4. the segment joins the window (the first tokens ever seen fill the sink); tokens pushed out of the
 *     window go to the exact cache or memory (memory-step.ts, writeEvicted).
 * Returns the heads' output [T, H·d] and the layer's next state (tensors not kept: the caller keeps them).
 *
 * `batch` B > 1: the projections hold B equal-length sequences as rows b·T + t (LlamaModel.runLayers of B·T rows),
 * `st` holds B sequences' state (state.ts, initialState with a batch), and the output is [B·T, H·d]. The B
 * sequences are folded into the head axis (B·H query heads, B·Hkv KV heads, sequence-major), where every step
 * below is already per head: query head b·H + h reads KV head ⌊(b·H + h)/g⌋ = b·Hkv + ⌊h/g⌋, its own sequence's.
 */
export function edgeInfiniteLayer(
  model: LlamaModel,
  module: MemoryGatingModule,
  layer: number,
  p: Projections,
  st: LayerState,
  options: SegmentOptions = {},
  batch = 1,
): { out: tf.Tensor2D; next: LayerState } {
  const cfg = layerConfig(module.config, layer); // this layer's exact-cache size
  const params = batch === 1 ? module.layers[layer]! : tileHeads(module.layers[layer]!, batch);
  if (batch > 1) p = { q: foldBatch(p.q, batch), k: foldBatch(p.k, batch), v: foldBatch(p.v, batch) };
  const [H, T, d] = p.q.shape; // H: B·H query heads when batched

  // 1. local attention over sink + exact cache + window + segment at positions 0..S-1
  const localK = cat([st.sinkK, st.exactK, st.windowK, p.k])!;
  const localV = cat([st.sinkV, st.exactV, st.windowV, p.v])!;
  const S = localK.shape[1];
  // The layer's own RoPE and attention options (families with per-layer bases, windows or soft-capping).
  const rope = model.ropeFor(layer);
  const kRot = rope.apply(localK, positionRange(0, S));
  const qRot = rope.apply(p.q, positionRange(S - T, T));
  const attentionOptions = { ...model.attentionOptions(layer), maxScoreBytes: options.maxScoreBytes };
  // The shared read also needs the local softmax's log-normaliser per query [H, T, 1], from the same logits.
  const shared = cfg.readMode === "shared";
  const local = (): tf.Tensor[] => {
    if (!shared) return [groupedAttention(qRot, kRot, localV, attentionOptions)]; // [T, H·d]
    const r = groupedAttentionWithLse(qRot, kRot, localV, attentionOptions);
    return [r.out, r.lse];
  };
  // Off the tape (constantLocal), both come out of one op: packed flat, then split back.
  const shapes = shared ? [[T, H * d], [H, T, 1]] : [[T, H * d]];
  const [aLocal, lse] = options.constantLocal ? unpack(offTape(() => pack(local()), [qRot, kRot, localV]), shapes) : local();

  // 2–3. memory read and gate
  const localHeads = tf.transpose(aLocal.reshape([T, H, d]), [1, 0, 2]) as tf.Tensor3D;
  const mixed = readAndGate(params, cfg, st.memory, { pre: p.q, rot: qRot }, localHeads, (lse as tf.Tensor3D | undefined) ?? null, options.forceGate);
  const out = batch === 1 ? (tf.transpose(mixed, [1, 0, 2]).reshape([T, H * d]) as tf.Tensor2D) : unfoldBatch(mixed, batch);

  // 4. state update: sink first, then window; overflow of the window goes to the exact cache or memory
  const toSink = Math.min(cfg.sinkTokens - st.sinkLength, T);
  let sinkK = st.sinkK;
  let sinkV = st.sinkV;
  if (toSink > 0) {
    sinkK = cat([sinkK, slice3(p.k, 0, toSink)]);
    sinkV = cat([sinkV, slice3(p.v, 0, toSink)]);
  }
  const rest = T - toSink;
  let windowK = st.windowK;
  let windowV = st.windowV;
  let windowLength = st.windowLength;
  let memory = st.memory;
  let exact = st.exactK && st.exactV ? { k: st.exactK, v: st.exactV } : null;
  if (rest > 0) {
    windowK = cat([windowK, slice3(p.k, toSink, rest)]);
    windowV = cat([windowV, slice3(p.v, toSink, rest)]);
    windowLength += rest;
    const overflow = windowLength - cfg.windowTokens;
    if (overflow > 0 && overflow >= (options.evictAtLeast ?? 1)) {
      // Keys enter memory without positions by default; "post-rope" uses their rotation in this step's local span,
      // where the window [old window | segment after the sink fill] is one run starting at old sink + toSink
      // (the sink only fills while the window is still empty; post-rope has no exact cache).
      const evictedK =
        cfg.memoryKeys === "post-rope" ? slice3(kRot, st.sinkLength + toSink, overflow) : slice3(windowK!, 0, overflow);
      const written = writeEvicted(params, cfg, memory, exact, evictedK, slice3(windowV!, 0, overflow));
      memory = written.memory;
      exact = written.exact;
      windowK = slice3(windowK!, overflow, cfg.windowTokens);
      windowV = slice3(windowV!, overflow, cfg.windowTokens);
      windowLength = cfg.windowTokens;
    }
  }
  return {
    out,
    next: {
      sinkK,
      sinkV,
      exactK: exact?.k ?? null,
      exactV: exact?.v ?? null,
      windowK,
      windowV,
      memory,
      sinkLength: st.sinkLength + toSink,
      exactLength: exact ? exact.k.shape[1] : 0,
      windowLength,
    },
  };
}

/** Heads of B sequences stored as rows b·T + t, [n, B·T, d], folded into the head axis: [B·n, T, d] (head b·n + i). */
function foldBatch(x: tf.Tensor3D, batch: number): tf.Tensor3D {
  const [n, rows, d] = x.shape;
  return sequenceMajor(x, batch).reshape([batch * n, rows / batch, d]);
}

/** Folded heads' outputs [B·H, T, d] back to rows: [B·T, H·d] (row b·T + t). */
function unfoldBatch(x: tf.Tensor3D, batch: number): tf.Tensor2D {
  const [BH, T, d] = x.shape;
  const H = BH / batch;
  return tf.transpose(x.reshape([batch, H, T, d]), [0, 2, 1, 3]).reshape([batch * T, H * d]) as tf.Tensor2D;
}

/**
 * One layer's parameters repeated for B sequences folded into the head axis (head b·H + h gets head h's). tf.tile
 * is differentiable: the gradient of each parameter sums over the B sequences.
 */
function tileHeads(params: LayerMemoryParams, batch: number): LayerMemoryParams {
  const maps = (m: tf.Tensor3D) => tf.tile(m, [batch, 1, 1]) as tf.Tensor3D;
  return {
    queryMap: maps(params.queryMap),
    keyMap: maps(params.keyMap),
    valueMap: maps(params.valueMap),
    gate: {
      bias: tf.tile(params.gate.bias, [batch]) as tf.Tensor1D,
      weight: params.gate.weight ? (tf.tile(params.gate.weight, [batch, 1]) as tf.Tensor2D) : null,
    },
  };
}
