import { EdgeInfError } from "../util/errors.js";
import type { ArchitectureSpec } from "./architecture.js";

/** Architecture of a Llama-family decoder (RoPE, RMSNorm, SwiGLU, grouped-query attention). */
export interface LlamaConfig {
  /** Architecture name as the source declared it (e.g. "LlamaForCausalLM", "llama2.c"). */
  architecture: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Trained context length (max_position_embeddings / llama2.c seq_len). */
  maxPositions: number;
  ropeTheta: number;
  /** Optional RoPE scaling ("linear" divides positions by factor; "llama3" rescales frequencies). */
  ropeScaling: RopeScaling | null;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  bosTokenId: number;
  eosTokenId: number;
  /** Every id that ends generation (Llama 3 and Qwen list several); eosTokenId is the first. Default [eosTokenId]. */
  eosTokenIds?: readonly number[];
  /** How this family differs from the Llama forward (architecture.ts); absent = plain Llama. */
  family?: ArchitectureSpec;
}

export type RopeScaling =
  | { type: "linear"; factor: number }
  /** Dynamic NTK: past originalMaxPositions the base grows with the sequence length (transformers "dynamic"). */
  | { type: "dynamic"; factor: number; originalMaxPositions: number }
  | {
      type: "yarn";
      factor: number;
      originalMaxPositions: number;
      betaFast: number;
      betaSlow: number;
      /** Multiplies cos and sin (so attention logits by its square). */
      attentionFactor: number;
      truncate: boolean;
    }
  /** Phi-3 "longrope"/"su": per-frequency divisors, the long set once the sequence passes originalMaxPositions. */
  | { type: "longrope"; shortFactor: readonly number[]; longFactor: readonly number[]; originalMaxPositions: number; attentionFactor: number }
  | {
      type: "llama3";
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositions: number;
    };

export function validateConfig(c: LlamaConfig, source: string): void {
  const bad = (what: string) => {
    throw new EdgeInfError(`${source}: ${what}`, "check the model's config/header");
  };
  for (const k of ["vocabSize", "hiddenSize", "intermediateSize", "numLayers", "numHeads", "numKvHeads", "headDim"] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) bad(`${k} must be a positive integer, got ${c[k]}`);
  }
  if (c.numHeads % c.numKvHeads !== 0) bad(`num heads ${c.numHeads} is not a multiple of KV heads ${c.numKvHeads}`);
  if (c.headDim % 2 !== 0) bad(`head dim ${c.headDim} must be even for RoPE`);
}

/** The ids that end generation: eosTokenIds when the model lists several, else eosTokenId. */
export function stopTokenIds(c: LlamaConfig): number[] {
  return c.eosTokenIds && c.eosTokenIds.length > 0 ? [...c.eosTokenIds] : [c.eosTokenId];
}

/** Parameter count of the backbone (tied head counted once), with each family's biases and extra norms. */
export function parameterCount(c: LlamaConfig): number {
  const d = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const f = c.family;
  const biases = f ? (f.qkvBias ? q + 2 * kv : 0) + (f.outputBias ? d : 0) : 0;
  const extraNorms = f ? (f.qkNorm ? 2 * c.headDim : 0) + (f.sandwichNorms ? 2 * d : 0) : 0;
  const perLayer = d * q + 2 * d * kv + q * d + 3 * d * c.intermediateSize + 2 * d + biases + extraNorms;
  return c.vocabSize * d * (c.tieWordEmbeddings ? 1 : 2) + c.numLayers * perLayer + d;
}
