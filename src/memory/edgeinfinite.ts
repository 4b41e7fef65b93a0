import * as tf from "../tf.js";
import { equalRowLength, type LlamaModel } from "../backbone/model.js";
import type { InferenceSession } from "../backbone/session.js";
import { CachedSession } from "../cache/cached-session.js";
import { fullPolicy } from "../cache/full.js";
import type { KVCache } from "../backbone/kv-cache.js";
import type { MemoryGatingModule } from "./module.js";
import { edgeInfiniteLayer, type SegmentOptions } from "./edgeinfinite-attention.js";
import {
  initialState,
  keepState,
  disposeReplaced,
  disposeState,
  totalStateBytes,
  segmentPeakBytes,
  accounting,
  stateBatch,
  type EdgeInfiniteState,
  type LayerState,
  type LayerAccounting,
} from "./state.js";
import { writeEvicted } from "./memory-step.js";
import { layerConfig } from "./config.js";
import { tokenNll } from "../backbone/nll.js";

/**
 * Runs one segment (all layers) through EdgeInfinite attention. Returns the final-normed hidden states [T, D] and
 * the next state. Nothing is kept: call inside tf.tidy / tf.variableGrads and keep what must outlive it.
 * forwardSegmentBatch of one sequence.
 */
export function forwardSegment(
  model: LlamaModel,
  module: MemoryGatingModule,
  state: EdgeInfiniteState,
  ids: readonly number[],
  options: SegmentOptions = {},
): { hidden: tf.Tensor2D; state: EdgeInfiniteState } {
  return forwardSegmentBatch(model, module, state, [ids], options);
}

/**
 * One segment of B equal-length sequences stepped together: `state` holds all B (initialState(c, φ, B)), `rows`
 * their next segment each. Returns the final-normed hidden states [B·T, D] (row b·T + t) and the next state. Every
 * op outside attention is row-wise, so the decoder runs on the B·T rows at once (LlamaModel.forwardBatch's way);
 * edgeInfiniteLayer keeps the sequences apart. Nothing is kept, as in forwardSegment.
 */
export function forwardSegmentBatch(
  model: LlamaModel,
  module: MemoryGatingModule,
  state: EdgeInfiniteState,
  rows: readonly (readonly number[])[],
  options: SegmentOptions = {},
): { hidden: tf.Tensor2D; state: EdgeInfiniteState } {
  const T = equalRowLength(rows);
  const batch = stateBatch(state, model.config);
  if (batch !== rows.length) throw new Error(`segment: ${rows.length} rows for a state of ${batch} sequences`);
  const next: LayerState[] = [];
  const hidden = model.runLayers(model.embed(rows.flat()), (layer, p) => {
    const r = edgeInfiniteLayer(model, module, layer, p, state.layers[layer]!, options, batch);
    next.push(r.next);
    return r.out;
  }, false);
  // Every layer compresses the same number of tokens: read it off layer 0's window arithmetic (tokens that left the
  // window and are not held by the exact cache went into memory).
  const before = state.layers[0]!;
  const after = next[0]!;
  const entered = T - (after.sinkLength - before.sinkLength);
  const compressed = before.windowLength + before.exactLength + entered - after.windowLength - after.exactLength;
  return {
    hidden,
    state: { layers: next, tokensSeen: state.tokensSeen + T, tokensCompressed: state.tokensCompressed + compressed },
  };
}

/**
 * NLL of every token of `ids` but the first through EdgeInfinite, segment by segment over the whole text (what
 * `edgeinf ppl --method edgeinfinite` reports). Reads asynchronously; fails loudly on a non-finite value.
 * edgeInfiniteNllBatch of one text.
 */
export async function edgeInfiniteNll(model: LlamaModel, module: MemoryGatingModule, ids: readonly number[], options: SegmentOptions = {}): Promise<number[]> {
  return (await edgeInfiniteNllBatch(model, module, [ids], options))[0]!;
}

/**
 * edgeInfiniteNll of B equal-length texts stepped together (forwardSegmentBatch, one state of B sequences): each
 * text's NLL, equal to edgeInfiniteNll of it alone (exactly on cpu and wasm, test/memory-batch.test.ts).
 */
export async function edgeInfiniteNllBatch(
  model: LlamaModel,
  module: MemoryGatingModule,
  texts: readonly (readonly number[])[],
  options: SegmentOptions = {},
): Promise<number[][]> {
  equalRowLength(texts); // one segment loop serves all rows
  const L = module.config.segmentLength;
  const segments = texts.map((ids) => segmentsOf(ids.slice(0, -1), L));
  const out = texts.map((): number[] => []);
  let state = initialState(model.config, module.config.featureMap, texts.length);
  try {
    for (let i = 0; i < segments[0]!.length; i++) {
      const rows = segments.map((s) => s[i]!);
      const prev = state;
      const r = tf.scoped(() => {
        const f = forwardSegmentBatch(model, module, prev, rows, options);
        keepState(f.state);
        return { hidden: tf.keep(f.hidden), state: f.state };
      });
      disposeReplaced(prev, r.state);
      state = r.state;
      const off = i * L;
      const T = rows[0]!.length;
      const targets = texts.flatMap((ids) => ids.slice(off + 1, off + 1 + T));
      try {
        const nll = await tokenNll(model, r.hidden, targets, 512, `EdgeInfinite NLL of segment ${i}`);
        for (let b = 0; b < texts.length; b++) out[b]!.push(...nll.subarray(b * T, (b + 1) * T));
      } finally {
        r.hidden.dispose();
      }
    }
  } finally {
    disposeState(state);
  }
  return out;
}

/** Splits ids into segments of segmentLength (the last may be shorter). */
export function segmentsOf<T>(ids: readonly T[], segmentLength: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < ids.length; i += segmentLength) out.push(ids.slice(i, i + segmentLength));
  return out;
}

/**
 * Builds EdgeInfinite state from a full KV cache (short → long switch during decoding): the first sinkTokens
 * tokens become the sink, the last windowTokens the window, and the tokens between leave the window as in the
 * segment loop (memory-step.ts writeEvicted: exact cache or memory). Cached keys are pre-RoPE, as memory expects.
 */
function stateFromCache(model: LlamaModel, module: MemoryGatingModule, cache: KVCache): EdgeInfiniteState {
  const cfg = module.config;
  const state = initialState(model.config, cfg.featureMap);
  return tf.scoped(() => {
    const layers = cache.layers.map((L, i): LayerState => {
      const n = L.length;
      const s = Math.min(cfg.sinkTokens, n);
      const w = Math.min(cfg.windowTokens, n - s);
      const mid = n - s - w;
      const [Hkv, , d] = L.k!.shape;
      const part = (x: tf.Tensor3D, start: number, len: number) => (len > 0 ? tf.slice(x, [0, start, 0], [Hkv, len, d]) : null);
      let memory = state.layers[i]!.memory;
      let exact: { k: tf.Tensor3D; v: tf.Tensor3D } | null = null;
      if (mid > 0) {
        if (cfg.memoryKeys === "post-rope") {
          throw new Error("post-rope memory keys cannot be rebuilt from a cache; raise routingThreshold to sinkTokens + windowTokens");
        }
        const written = writeEvicted(module.layers[i]!, layerConfig(cfg, i), memory, null, part(L.k!, s, mid)!, part(L.v!, s, mid)!);
        if (written.memory.M !== memory.M) tf.dispose([memory.M, memory.z]);
        memory = written.memory;
        exact = written.exact;
      }
      return {
        sinkK: part(L.k!, 0, s),
        sinkV: part(L.v!, 0, s),
        exactK: exact?.k ?? null,
        exactV: exact?.v ?? null,
        windowK: part(L.k!, s + mid, w),
        windowV: part(L.v!, s + mid, w),
        memory,
        sinkLength: s,
        exactLength: exact ? exact.k.shape[1] : 0,
        windowLength: w,
      };
    });
    const compressed = layers[0] ? cache.layers[0]!.length - layers[0].sinkLength - layers[0].exactLength - layers[0].windowLength : 0;
    const next: EdgeInfiniteState = { layers, tokensSeen: cache.tokensSeen, tokensCompressed: compressed };
    return keepState(next);
  });
}

/**
 * EdgeInfinite inference with the paper's long/short routing: an input of at most routingThreshold tokens runs
 * the plain backbone (bit-identical outputs); a longer one is processed segment by segment with bounded KV and
 * memory. Decoding continues in whichever mode, switching to memory once the KV would outgrow sink + window.
 * Nothing is read from the device (prefill/step are async only to share InferenceSession with the cached methods).
 */
export class EdgeInfiniteSession implements InferenceSession {
  readonly method = "edgeinfinite";
  private short: CachedSession | null = null;
  private state: EdgeInfiniteState | null = null;
  private peak = 0;

  /**
   * `decodeSegment`: decoded tokens leave the window in blocks of this many. Default 1: one eviction (and one
   * exact-cache choice) per token. The module's segmentLength makes decoding build segments as prefill processes
   * them: 2–3× faster decode on edge-lm, up to segmentLength − 1 more tokens held per layer, and on the retrieval
   * suite 3 answers of 240 different (docs/edgeinfinite.md, "What it costs at decode").
   */
  constructor(readonly model: LlamaModel, readonly module: MemoryGatingModule, readonly options: SegmentOptions & { decodeSegment?: number } = {}) {}

  /** "short" while the plain backbone runs, "long" once memory is in use. */
  mode(): "short" | "long" | "empty" {
    return this.state ? "long" : this.short ? "short" : "empty";
  }

  private runLong(ids: readonly number[], options: SegmentOptions = this.options): tf.Tensor1D {
    let logits: tf.Tensor1D | null = null;
    for (const seg of segmentsOf(ids, this.module.config.segmentLength)) {
      logits?.dispose();
      const prev = this.state!;
      const r = tf.scoped(() => {
        const { hidden, state } = forwardSegment(this.model, this.module, prev, seg, options);
        keepState(state);
        const last = tf.slice(hidden, [seg.length - 1, 0], [1, hidden.shape[1]]);
        return { logits: tf.keep(this.model.logits(last).reshape([-1]) as tf.Tensor1D), state };
      });
      disposeReplaced(prev, r.state);
      this.state = r.state;
      logits = r.logits;
      this.peak = Math.max(this.peak, segmentPeakBytes(prev, r.state, seg.length, this.model.config));
    }
    return logits!;
  }

  async prefill(ids: readonly number[]): Promise<tf.Tensor1D> {
    if (ids.length === 0) throw new Error("prefill needs at least one token");
    if (this.mode() !== "empty") throw new Error("prefill may be called once per session");
    if (ids.length <= this.module.config.routingThreshold) {
      this.short = new CachedSession(this.model, fullPolicy(), this.options.maxScoreBytes);
      const out = await this.short.prefill(ids);
      this.peak = Math.max(this.peak, this.short.peakKvBytes());
      return out;
    }
    this.state = initialState(this.model.config, this.module.config.featureMap);
    return this.runLong(ids);
  }

  async step(id: number): Promise<tf.Tensor1D> {
    if (this.short) {
      if (this.short.tokensSeen() + 1 <= this.module.config.routingThreshold) {
        const out = await this.short.step(id);
        this.peak = Math.max(this.peak, this.short.peakKvBytes());
        return out;
      }
      // The cache holds keys after RoPE; memory takes them before (rotated back, float32 rounding).
      const preRope = this.short.preRopeCache();
      try {
        this.state = stateFromCache(this.model, this.module, preRope);
      } finally {
        preRope.dispose();
      }
      this.short.dispose();
      this.short = null;
    }
    if (!this.state) throw new Error("step before prefill");
    return this.runLong([id], { ...this.options, evictAtLeast: this.options.decodeSegment ?? 1 });
  }

  kvBytes(): number {
    if (this.short) return this.short.kvBytes();
    return this.state ? totalStateBytes(this.state, this.model.config) : 0;
  }

  peakKvBytes(): number {
    return this.peak;
  }

  tokensSeen(): number {
    return this.short ? this.short.tokensSeen() : (this.state?.tokensSeen ?? 0);
  }

  /** Per-layer KV bytes, memory bytes and tokens seen (long mode), or null in short mode. */
  accounting(): LayerAccounting[] | null {
    return this.state ? accounting(this.state, this.model.config) : null;
  }

  dispose(): void {
    this.short?.dispose();
    if (this.state) disposeState(this.state);
    this.short = null;
    this.state = null;
  }
}
