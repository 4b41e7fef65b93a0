import { createReadStream, existsSync, readdirSync, statSync } from "node:fs";
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { fail } from "../util/errors.js";
import type { LlamaConfig } from "../backbone/config.js";
import type { HostWeights } from "../backbone/weights.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { readLlama2cTokenizer } from "../tokenizers/llama2c-tokenizer.js";
import { loadHuggingFaceTokenizer } from "../tokenizers/hf-tokenizer.js";
import { readLlama2cConfig, readLlama2cModel } from "./llama2c.js";
import { huggingFaceWeightFiles, readHuggingFaceConfig, readHuggingFaceModel } from "./huggingface.js";
import { cachedLlama2cTokenizer, resolveModelPath, type ResolveOptions } from "./hub.js";

export { readLlama2cModel } from "./llama2c.js";
export { readHuggingFaceModel } from "./huggingface.js";
export { readSafetensors, writeSafetensors } from "./safetensors.js";
export { resolveModelPath } from "./hub.js";

/** Who a backbone is: what loadBackbone records as `source` (and training records in checkpoint.json). */
export interface BackboneSource {
  format: "llama2c" | "huggingface";
  /** Local path that was loaded (the HF directory or the llama2.c .bin). */
  path: string;
  /** Readable name: the directory basename, or the .bin basename without extension. */
  id: string;
  /** Hex sha256 over the weight files (sorted by name, concatenated). */
  sha256: string;
}

export interface LoadedBackbone {
  config: LlamaConfig;
  weights: HostWeights;
  tokenizer: Tokenizer;
  source: BackboneSource;
}

/** A backbone's config and identity, without its weights or tokenizer (identifyBackbone). */
export interface BackboneIdentity extends BackboneSource {
  config: LlamaConfig;
}

export type ModelLayout =
  | { format: "huggingface"; dir: string }
  | { format: "llama2c"; bin: string };

/** Streams the files (in the order given) through one sha256. */
export async function sha256Files(files: readonly string[]): Promise<string> {
  const hash = createHash("sha256");
  for (const f of files) {
    for await (const chunk of createReadStream(f)) hash.update(chunk as Buffer);
  }
  return hash.digest("hex");
}

function isTokenizerBin(name: string): boolean {
  return name === "tokenizer.bin" || /^tok.*\.bin$/.test(name);
}

/**
 * The llama2.c tokenizer beside `bin`: the one a hub download named, else tok<vocab>.bin, else
 * tokenizer.bin, else the only tok*.bin in the folder.
 */
export function findLlama2cTokenizer(bin: string, vocabSize?: number): string {
  const fromHub = cachedLlama2cTokenizer(bin);
  if (fromHub && existsSync(fromHub)) return fromHub;
  const dir = dirname(bin);
  const candidates = readdirSync(dir).filter((n) => isTokenizerBin(n) && n !== basename(bin)).sort();
  if (vocabSize !== undefined && candidates.includes(`tok${vocabSize}.bin`)) return join(dir, `tok${vocabSize}.bin`);
  if (candidates.includes("tokenizer.bin")) return join(dir, "tokenizer.bin");
  if (candidates.length === 1) return join(dir, candidates[0]!);
  if (candidates.length === 0) fail(`no llama2.c tokenizer next to ${bin}`, "put tokenizer.bin or tok<N>.bin in the same folder");
  return fail(`several llama2.c tokenizers next to ${bin} (${candidates.join(", ")})`, `keep one, or name it tok${vocabSize ?? "<vocab>"}.bin`);
}

/** Decides how a local path is laid out (without loading weights). */
export function detectLayout(path: string): ModelLayout {
  if (!existsSync(path)) fail(`model path ${path} does not exist`, "pass a directory with config.json or a llama2.c .bin");
  const st = statSync(path);
  const expected = "expected a directory with config.json (Hugging Face), a llama2.c model .bin, or a directory with one model .bin and a tok*.bin";
  if (st.isFile()) {
    if (!path.endsWith(".bin")) fail(`cannot tell the model format of ${path}`, expected);
    return { format: "llama2c", bin: path };
  }
  if (existsSync(join(path, "config.json"))) return { format: "huggingface", dir: path };
  const bins = readdirSync(path).filter((n) => n.endsWith(".bin"));
  const models = bins.filter((n) => !isTokenizerBin(n));
  if (models.length === 1 && bins.some(isTokenizerBin)) return { format: "llama2c", bin: join(path, models[0]!) };
  if (models.length > 1) fail(`directory ${path} holds several llama2.c models (${models.join(", ")})`, "pass the .bin file you want");
  return fail(`cannot tell the model format of directory ${path}`, expected);
}

/** The identity of a detected layout: one definition of path, id and sha256 for loadBackbone and identifyBackbone. */
export async function backboneSource(layout: ModelLayout): Promise<BackboneSource> {
  if (layout.format === "huggingface") {
    return { format: "huggingface", path: layout.dir, id: basename(layout.dir), sha256: await sha256Files(huggingFaceWeightFiles(layout.dir)) };
  }
  return { format: "llama2c", path: layout.bin, id: basename(layout.bin, ".bin"), sha256: await sha256Files([layout.bin]) };
}

/**
 * Resolves `spec` like loadBackbone and returns its config and identity (the same path, id and sha256 that
 * loadBackbone records), reading only the config (config.json, or the llama2.c header) and hashing the weight files.
 */
export async function identifyBackbone(spec: string, opts?: ResolveOptions): Promise<BackboneIdentity> {
  const layout = detectLayout(await resolveModelPath(spec, opts));
  const config = layout.format === "huggingface" ? readHuggingFaceConfig(layout.dir) : readLlama2cConfig(layout.bin);
  return { config, ...(await backboneSource(layout)) };
}

/** Resolves `spec` (local path or hf:…), detects its format and loads config, weights and tokenizer. */
export async function loadBackbone(spec: string, opts?: ResolveOptions): Promise<LoadedBackbone> {
  const path = await resolveModelPath(spec, opts);
  const layout = detectLayout(path);
  if (layout.format === "huggingface") {
    const { config, weights } = readHuggingFaceModel(layout.dir);
    const tokenizer = await loadHuggingFaceTokenizer(layout.dir);
    // The model may pad its vocabulary beyond the tokenizer's, never the reverse.
    if (tokenizer.vocabSize > config.vocabSize) {
      fail(`tokenizer in ${layout.dir} has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${config.vocabSize}`, "the tokenizer does not belong to this model");
    }
    // Padding adds a few rows (to a multiple of 64 or so); a tokenizer covering under half the rows is another model's.
    if (tokenizer.vocabSize < config.vocabSize / 2) {
      fail(`tokenizer in ${layout.dir} has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${config.vocabSize}: most of the model's tokens could never be produced or read`, "the tokenizer does not belong to this model; restore its own tokenizer.json");
    }
    return { config, weights, tokenizer, source: await backboneSource(layout) };
  }
  const { config, weights } = readLlama2cModel(layout.bin);
  const tokenizer = readLlama2cTokenizer(findLlama2cTokenizer(layout.bin, config.vocabSize), config.vocabSize);
  return { config, weights, tokenizer, source: await backboneSource(layout) };
}
