import { EdgeInfError } from "../util/errors.js";

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
}

export type RopeScaling =
  | { type: "linear"; factor: number }
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

/** Parameter count of the backbone (tied head counted once). */
export function parameterCount(c: LlamaConfig): number {
  const d = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const perLayer = d * q + 2 * d * kv + q * d + 3 * d * c.intermediateSize + 2 * d;
  return c.vocabSize * d * (c.tieWordEmbeddings ? 1 : 2) + c.numLayers * perLayer + d;
}
