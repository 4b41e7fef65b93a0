/**
 * Backbone weights as host arrays (what loaders produce) and as frozen tf tensors (what the model uses).
 * Layout follows Hugging Face Llama: linear weights are stored [out, in] like torch.nn.Linear and are
 * transposed once on upload to [in, out] so the forward pass does plain x·W products.
 */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

export interface HostLayerWeights {
  attnNorm: HostTensor; // [d]
  wq: HostTensor; // [numHeads*headDim, d]
  wk: HostTensor; // [numKvHeads*headDim, d]
  wv: HostTensor; // [numKvHeads*headDim, d]
  wo: HostTensor; // [d, numHeads*headDim]
  ffnNorm: HostTensor; // [d]
  wGate: HostTensor; // [ffn, d]  (w1)
  wUp: HostTensor; // [ffn, d]    (w3)
  wDown: HostTensor; // [d, ffn]  (w2)
  /** Family extras (architecture.ts says which are present). Biases [out]; q/k norms [headDim]. */
  bq?: HostTensor;
  bk?: HostTensor;
  bv?: HostTensor;
  bo?: HostTensor;
  qNorm?: HostTensor;
  kNorm?: HostTensor;
  /** Gemma's norms on the attention and MLP outputs, before the residual adds. */
  postAttnNorm?: HostTensor;
  postFfnNorm?: HostTensor;
}

export interface HostWeights {
  embed: HostTensor; // [vocab, d]
  layers: HostLayerWeights[];
  finalNorm: HostTensor; // [d]
  lmHead: HostTensor | null; // [vocab, d]; null when tied to embed
}
