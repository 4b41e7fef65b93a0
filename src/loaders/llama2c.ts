import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { endianness } from "node:os";
import { fail } from "../util/errors.js";
import { validateConfig, type LlamaConfig } from "../backbone/config.js";
import type { HostLayerWeights, HostTensor, HostWeights } from "../backbone/weights.js";

/**
 * Reader for Karpathy's llama2.c fp32 checkpoint ("legacy" / version 0 export):
 * 7 int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative
 * vocab_size means the classifier is not tied to the embedding), then float32 arrays in llama2.c order.
 */

export interface Llama2cHeader {
  dim: number;
  hiddenDim: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  vocabSize: number;
  seqLen: number;
  /** True when the classifier reuses the token embedding (vocab_size > 0 in the header). */
  sharedClassifier: boolean;
}

const HEADER_BYTES = 7 * 4;
/** "ak42" — the magic of llama2.c's newer export versions (1, 2), which this reader does not handle. */
const LLAMA2C_V1_MAGIC = 0x616b3432;

export function parseLlama2cHeader(bytes: Uint8Array, binPath: string): Llama2cHeader {
  if (bytes.byteLength < HEADER_BYTES) {
    fail(`llama2.c model ${binPath} is truncated: ${bytes.byteLength} bytes, expected at least the ${HEADER_BYTES}-byte header`, "re-download or re-export the model");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const ints = Array.from({ length: 7 }, (_, i) => view.getInt32(i * 4, true));
  if (view.getUint32(0, true) === LLAMA2C_V1_MAGIC) {
    fail(`llama2.c model ${binPath} uses the versioned export format (magic "ak42")`, "export it with llama2.c's export.py --version 0 (legacy fp32)");
  }
  const [dim, hiddenDim, numLayers, numHeads, numKvHeads, vocabRaw, seqLen] = ints as [number, number, number, number, number, number, number];
  const bad = (what: string): never => fail(`llama2.c model ${binPath} has an invalid header: ${what}`, "is this a llama2.c fp32 checkpoint?");
  for (const [name, v] of [["dim", dim], ["hidden_dim", hiddenDim], ["n_layers", numLayers], ["n_heads", numHeads], ["n_kv_heads", numKvHeads], ["seq_len", seqLen]] as const) {
    if (v <= 0) bad(`${name} = ${v}`);
  }
  if (vocabRaw === 0) bad("vocab_size = 0");
  if (dim % numHeads !== 0) bad(`dim ${dim} is not a multiple of n_heads ${numHeads}`);
  if (numHeads % numKvHeads !== 0) bad(`n_heads ${numHeads} is not a multiple of n_kv_heads ${numKvHeads}`);
  if ((dim / numHeads) % 2 !== 0) bad(`head size ${dim / numHeads} is odd`);
  return { dim, hiddenDim, numLayers, numHeads, numKvHeads, vocabSize: Math.abs(vocabRaw), seqLen, sharedClassifier: vocabRaw > 0 };
}

/** Float32 count of each array in file order; the sum × 4 + header is the exact file size. */
export function llama2cArraySizes(h: Llama2cHeader): Array<[string, number]> {
  const headSize = h.dim / h.numHeads;
  const kvDim = h.numKvHeads * headSize;
  const L = h.numLayers;
  const sizes: Array<[string, number]> = [
    ["token_embedding_table", h.vocabSize * h.dim],
    ["rms_att_weight", L * h.dim],
    ["wq", L * h.dim * h.dim],
    ["wk", L * kvDim * h.dim],
    ["wv", L * kvDim * h.dim],
    ["wo", L * h.dim * h.dim],
    ["rms_ffn_weight", L * h.dim],
    ["w1", L * h.hiddenDim * h.dim],
    ["w2", L * h.dim * h.hiddenDim],
    ["w3", L * h.hiddenDim * h.dim],
    ["rms_final_weight", h.dim],
    ["freq_cis_real", (h.seqLen * headSize) / 2],
    ["freq_cis_imag", (h.seqLen * headSize) / 2],
  ];
  if (!h.sharedClassifier) sizes.push(["wcls", h.vocabSize * h.dim]);
  return sizes;
}

export function llama2cExpectedBytes(h: Llama2cHeader): number {
  return HEADER_BYTES + 4 * llama2cArraySizes(h).reduce((a, [, n]) => a + n, 0);
}

/**
 * Reorders the rows of a q or k projection [numHeads*headSize, dim] from llama2.c's interleaved RoPE
 * pairs (2i, 2i+1) to Hugging Face's half-split pairs (i, i+headSize/2): within each head, new row j is
 * old row 2j and new row headSize/2+j is old row 2j+1. Both pairs rotate by the same frequency, so
 * q·k scores are unchanged — this is the inverse of HF's convert_llama_weights_to_hf permutation.
 */
export function interleavedToHalfSplitRows(w: Float32Array, numHeads: number, headSize: number, inDim: number): Float32Array {
  if (w.length !== numHeads * headSize * inDim) fail(`RoPE permutation: weight has ${w.length} values, expected ${numHeads}×${headSize}×${inDim}`, "internal shape error");
  const out = new Float32Array(w.length);
  const half = headSize / 2;
  for (let h = 0; h < numHeads; h++) {
    const base = h * headSize;
    for (let j = 0; j < half; j++) {
      out.set(w.subarray((base + 2 * j) * inDim, (base + 2 * j + 1) * inDim), (base + j) * inDim);
      out.set(w.subarray((base + 2 * j + 1) * inDim, (base + 2 * j + 2) * inDim), (base + half + j) * inDim);
    }
  }
  return out;
}

function headerToConfig(h: Llama2cHeader): LlamaConfig {
  return {
    architecture: "llama2.c",
    vocabSize: h.vocabSize,
    hiddenSize: h.dim,
    intermediateSize: h.hiddenDim,
    numLayers: h.numLayers,
    numHeads: h.numHeads,
    numKvHeads: h.numKvHeads,
    headDim: h.dim / h.numHeads,
    maxPositions: h.seqLen,
    ropeTheta: 10000,
    ropeScaling: null,
    rmsNormEps: 1e-5,
    tieWordEmbeddings: h.sharedClassifier,
    bosTokenId: 1,
    eosTokenId: 2,
  };
}

/** Reads the 28-byte header of a llama2.c checkpoint without loading the weights. */
export function readLlama2cHeader(binPath: string): Llama2cHeader {
  checkBinPath(binPath);
  const fd = openSync(binPath, "r");
  try {
    const bytes = new Uint8Array(HEADER_BYTES);
    const n = readSync(fd, bytes, 0, HEADER_BYTES, 0);
    return parseLlama2cHeader(bytes.subarray(0, n), binPath);
  } finally {
    closeSync(fd);
  }
}

/**
 * The config of a llama2.c checkpoint from its header alone (no weights read), after the same size check
 * readLlama2cModel makes (a truncated or over-long file is refused the same way).
 */
export function readLlama2cConfig(binPath: string): LlamaConfig {
  const h = readLlama2cHeader(binPath);
  checkSize(binPath, statSync(binPath).size, llama2cExpectedBytes(h));
  const config = headerToConfig(h);
  validateConfig(config, binPath);
  return config;
}

function checkSize(binPath: string, size: number, expected: number): void {
  if (size < expected) {
    fail(`llama2.c model ${binPath} is truncated: expected ${expected} bytes from its header, got ${size}`, "re-download or re-export the model");
  }
  if (size > expected) {
    fail(`llama2.c model ${binPath} has ${size - expected} trailing bytes: expected ${expected} bytes from its header, got ${size}`, "the header does not match the weights; re-export the model (fp32, --version 0)");
  }
}

function checkBinPath(binPath: string): void {
  if (!existsSync(binPath)) fail(`llama2.c model ${binPath} does not exist`, "check the path to the .bin file");
  if (statSync(binPath).isDirectory()) fail(`llama2.c model ${binPath} is a directory`, "pass the .bin file");
}

function readBinFile(binPath: string): Uint8Array {
  checkBinPath(binPath);
  return new Uint8Array(readFileSync(binPath));
}

/** Loads a llama2.c fp32 checkpoint, converting q/k rows to the Hugging Face RoPE layout. */
export function readLlama2cModel(binPath: string): { config: LlamaConfig; weights: HostWeights } {
  if (endianness() !== "LE") fail("llama2.c reading needs a little-endian host", "run on x86-64 or arm64");
  const bytes = readBinFile(binPath);
  const h = parseLlama2cHeader(bytes, binPath);
  const expected = llama2cExpectedBytes(h);
  checkSize(binPath, bytes.byteLength, expected);
  const config = headerToConfig(h);
  validateConfig(config, binPath);
  // Copy the float region once into an aligned buffer (the header is 28 bytes, so offsets stay 4-aligned).
  const floats = new Float32Array(bytes.buffer.slice(bytes.byteOffset + HEADER_BYTES, bytes.byteOffset + expected));
  const arrays = new Map<string, Float32Array>();
  let pos = 0;
  for (const [name, n] of llama2cArraySizes(h)) {
    arrays.set(name, floats.subarray(pos, pos + n));
    pos += n;
  }
  const arr = (name: string): Float32Array => arrays.get(name)!;
  const headSize = h.dim / h.numHeads;
  const kvDim = h.numKvHeads * headSize;
  const perLayer = (name: string, layer: number, rows: number, cols: number): HostTensor => {
    const n = rows * cols;
    return { shape: rows === 1 ? [cols] : [rows, cols], data: arr(name).slice(layer * n, (layer + 1) * n) };
  };
  const layers: HostLayerWeights[] = [];
  for (let l = 0; l < h.numLayers; l++) {
    const wq = perLayer("wq", l, h.dim, h.dim);
    const wk = perLayer("wk", l, kvDim, h.dim);
    layers.push({
      attnNorm: perLayer("rms_att_weight", l, 1, h.dim),
      wq: { shape: wq.shape, data: interleavedToHalfSplitRows(wq.data, h.numHeads, headSize, h.dim) },
      wk: { shape: wk.shape, data: interleavedToHalfSplitRows(wk.data, h.numKvHeads, headSize, h.dim) },
      wv: perLayer("wv", l, kvDim, h.dim),
      wo: perLayer("wo", l, h.dim, h.dim),
      ffnNorm: perLayer("rms_ffn_weight", l, 1, h.dim),
      wGate: perLayer("w1", l, h.hiddenDim, h.dim),
      wUp: perLayer("w3", l, h.hiddenDim, h.dim),
      wDown: perLayer("w2", l, h.dim, h.hiddenDim),
    });
  }
  const weights: HostWeights = {
    embed: { shape: [h.vocabSize, h.dim], data: arr("token_embedding_table").slice() },
    layers,
    finalNorm: { shape: [h.dim], data: arr("rms_final_weight").slice() },
    lmHead: h.sharedClassifier ? null : { shape: [h.vocabSize, h.dim], data: arr("wcls").slice() },
  };
  return { config, weights };
}
