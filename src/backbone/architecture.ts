import type { LlamaConfig, RopeScaling } from "./config.js";

/**
 * How a model family's forward differs from the Llama one. The forward in model.ts consults this description at
 * the few places the families differ; the loader (src/loaders/families.ts) builds it from config.json.
 */

/** Rotary embedding of one layer: base, scaling and how many leading dims of each head rotate (Phi-3's partial). */
export interface RopeSpec {
  theta: number;
  scaling: RopeScaling | null;
  /** Leading dims of a head that rotate (headDim · partial_rotary_factor); the rest pass through. */
  rotaryDim: number;
}

/** Attention of one layer: an optional sliding window and its RoPE (null: the layer has no position embedding). */
export interface LayerSpec {
  /** A query at position p sees keys at positions p − window + 1 … p (transformers' sliding_window); null: all. */
  window: number | null;
  rope: RopeSpec | null;
}

export interface ArchitectureSpec {
  /** Family name as the loader recognised it ("llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "smollm3", …). */
  name: string;
  /** q/k/v projections carry biases (Qwen2; Llama with attention_bias). */
  qkvBias: boolean;
  /** The output projection carries a bias (Llama with attention_bias). */
  outputBias: boolean;
  /** RMSNorm over each head's dims on q and k, before RoPE (Qwen3, Gemma 3). */
  qkNorm: boolean;
  /** Norms on the attention and MLP outputs before their residual adds (Gemma 2/3 "sandwich" norms). */
  sandwichNorms: boolean;
  /** Gate activation of the gated MLP: silu (SwiGLU) or tanh-approximated gelu (GeGLU). */
  activation: "silu" | "gelu_tanh";
  /** Token embeddings are multiplied by this (Gemma: √hidden); 1 elsewhere. */
  embedScale: number;
  /** Multiplies q·k (default 1/√headDim; Gemma: query_pre_attn_scalar^-½). */
  queryScale: number;
  /** Attention logits become cap·tanh(logits/cap) before the mask (Gemma 2); null: none. */
  attnLogitSoftcap: number | null;
  /** Output logits become cap·tanh(logits/cap) (Gemma 2); null: none. */
  finalLogitSoftcap: number | null;
  /** Norm weights as stored are offsets from 1 (Gemma's x·(1 + w)); the loader adds the 1 once. */
  normWeightOffset: 0 | 1;
  layers: LayerSpec[];
}

/** The plain Llama layout of a config (every layer the same RoPE, full attention). */
export function llamaArchitecture(c: LlamaConfig): ArchitectureSpec {
  const rope: RopeSpec = { theta: c.ropeTheta, scaling: c.ropeScaling, rotaryDim: c.headDim };
  return {
    name: "llama",
    qkvBias: false,
    outputBias: false,
    qkNorm: false,
    sandwichNorms: false,
    activation: "silu",
    embedScale: 1,
    queryScale: 1 / Math.sqrt(c.headDim),
    attnLogitSoftcap: null,
    finalLogitSoftcap: null,
    normWeightOffset: 0,
    layers: Array.from({ length: c.numLayers }, () => ({ window: null, rope })),
  };
}

/** The family description of a config (plain Llama when the loader recorded none). */
export function architectureOf(c: LlamaConfig): ArchitectureSpec {
  return c.family ?? llamaArchitecture(c);
}

/** Layers that attend through a sliding window, with their window (for info and docs). */
export function slidingLayers(spec: ArchitectureSpec): { layer: number; window: number }[] {
  return spec.layers.flatMap((l, layer) => (l.window === null ? [] : [{ layer, window: l.window }]));
}
