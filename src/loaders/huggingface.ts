import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fail } from "../util/errors.js";
import { validateConfig, type LlamaConfig, type RopeScaling } from "../backbone/config.js";
import type { HostLayerWeights, HostTensor, HostWeights } from "../backbone/weights.js";
import { readSafetensors, readSafetensorsHeader } from "./safetensors.js";
import { checkConfigAgainstTensorNames } from "./config-check.js";

/**
 * Hugging Face Llama-family checkpoint: config.json + model.safetensors (or a sharded
 * model.safetensors.index.json). Linear weights keep torch's [out, in] layout.
 */

export const SUPPORTED_ARCHITECTURES = ["LlamaForCausalLM", "MistralForCausalLM"] as const;

type JsonObject = Record<string, unknown>;

function readJsonObject(path: string, what: string): JsonObject {
  if (!existsSync(path)) fail(`${what} ${path} does not exist`, "pass a Hugging Face model directory");
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    fail(`${what} ${path} is not valid JSON (${(e as Error).message.split("\n")[0]})`, "re-download the file");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) fail(`${what} ${path} is not a JSON object`, "re-download the file");
  return parsed as JsonObject;
}

function firstInt(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isInteger(v)) return v;
  if (Array.isArray(v) && typeof v[0] === "number" && Number.isInteger(v[0])) return v[0];
  return undefined;
}

/** Parses rope_scaling (transformers ≤4) or rope_parameters (transformers 5) into RopeScaling. */
export function parseRopeScaling(raw: unknown, source: string, maxPositions: number): RopeScaling | null {
  if (raw === null || raw === undefined) return null;
  if (typeof raw !== "object" || Array.isArray(raw)) fail(`${source}: rope_scaling must be an object or null`, "fix config.json");
  const r = raw as JsonObject;
  const type = (r.rope_type ?? r.type ?? "default") as unknown;
  const num = (key: string, fallback?: number): number => {
    const v = r[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) fail(`${source}: rope scaling "${String(type)}" needs a positive number ${key}, got ${JSON.stringify(r[key])}`, "fix config.json");
    return v;
  };
  switch (type) {
    case "default":
      return null;
    case "linear":
      return { type: "linear", factor: num("factor") };
    case "llama3":
      return {
        type: "llama3",
        factor: num("factor"),
        lowFreqFactor: num("low_freq_factor"),
        highFreqFactor: num("high_freq_factor"),
        originalMaxPositions: num("original_max_position_embeddings", maxPositions),
      };
    default:
      return fail(`${source}: rope scaling type "${String(type)}" is not supported`, "supported: default, linear, llama3");
  }
}

/** Validates a Hugging Face config.json object and maps it to LlamaConfig. */
export function parseHuggingFaceConfig(raw: JsonObject, source: string): LlamaConfig {
  const archs = raw.architectures;
  const byModelType = new Map([["llama", "LlamaForCausalLM"], ["mistral", "MistralForCausalLM"]]);
  const arch =
    Array.isArray(archs) && typeof archs[0] === "string"
      ? (archs[0] as string)
      : (byModelType.get(String(raw.model_type)) ?? `model_type ${String(raw.model_type ?? "unknown")}`);
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch)) {
    fail(`unsupported architecture ${arch} in ${source}`, `supported: ${SUPPORTED_ARCHITECTURES.join(", ")}`);
  }
  const int = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) fail(`${source}: ${key} must be a positive integer, got ${JSON.stringify(raw[key])}`, "fix config.json");
    return v;
  };
  if (raw.attention_bias === true) fail(`unsupported attention_bias: true in ${source}`, "only bias-free Llama attention is supported");
  if (raw.mlp_bias === true) fail(`unsupported mlp_bias: true in ${source}`, "only bias-free Llama MLPs are supported");
  const act = raw.hidden_act ?? "silu";
  if (act !== "silu") fail(`unsupported hidden_act ${JSON.stringify(act)} in ${source}`, "only SwiGLU (silu) MLPs are supported");
  const hiddenSize = int("hidden_size");
  const numHeads = int("num_attention_heads");
  const maxPositions = int("max_position_embeddings");
  const sliding = raw.sliding_window;
  if (typeof sliding === "number" && sliding < maxPositions && raw.use_sliding_window !== false) {
    fail(`unsupported sliding_window ${sliding} in ${source}`, "only full-attention models are supported (sliding_window null)");
  }
  const params = raw.rope_parameters;
  const paramsObj = params !== null && typeof params === "object" && !Array.isArray(params) ? (params as JsonObject) : null;
  const theta = paramsObj?.rope_theta ?? raw.rope_theta ?? 10000;
  if (typeof theta !== "number" || !(theta > 0)) fail(`${source}: rope_theta must be a positive number, got ${JSON.stringify(theta)}`, "fix config.json");
  // rope_scaling (older transformers) wins when set; rope_parameters carries the same fields in transformers 5.
  const scalingRaw = raw.rope_scaling ?? paramsObj;
  const eps = raw.rms_norm_eps ?? 1e-6;
  if (typeof eps !== "number" || !(eps > 0)) fail(`${source}: rms_norm_eps must be a positive number`, "fix config.json");
  const config: LlamaConfig = {
    architecture: arch,
    vocabSize: int("vocab_size"),
    hiddenSize,
    intermediateSize: int("intermediate_size"),
    numLayers: int("num_hidden_layers"),
    numHeads,
    numKvHeads: int("num_key_value_heads", numHeads),
    headDim: raw.head_dim === null || raw.head_dim === undefined ? Math.floor(hiddenSize / numHeads) : int("head_dim"),
    maxPositions,
    ropeTheta: theta,
    ropeScaling: parseRopeScaling(scalingRaw, source, maxPositions),
    rmsNormEps: eps,
    // transformers' LlamaConfig defaults tie_word_embeddings to false.
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    bosTokenId: firstInt(raw.bos_token_id) ?? 1,
    eosTokenId: firstInt(raw.eos_token_id) ?? 2,
  };
  validateConfig(config, source);
  return config;
}

/** Tensor name → expected shape, from the config. */
export function expectedTensorShapes(c: LlamaConfig): Map<string, number[]> {
  const d = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const m = new Map<string, number[]>();
  m.set("model.embed_tokens.weight", [c.vocabSize, d]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}`;
    m.set(`${p}.self_attn.q_proj.weight`, [q, d]);
    m.set(`${p}.self_attn.k_proj.weight`, [kv, d]);
    m.set(`${p}.self_attn.v_proj.weight`, [kv, d]);
    m.set(`${p}.self_attn.o_proj.weight`, [d, q]);
    m.set(`${p}.mlp.gate_proj.weight`, [c.intermediateSize, d]);
    m.set(`${p}.mlp.up_proj.weight`, [c.intermediateSize, d]);
    m.set(`${p}.mlp.down_proj.weight`, [d, c.intermediateSize]);
    m.set(`${p}.input_layernorm.weight`, [d]);
    m.set(`${p}.post_attention_layernorm.weight`, [d]);
  }
  m.set("model.norm.weight", [d]);
  if (!c.tieWordEmbeddings) m.set("lm_head.weight", [c.vocabSize, d]);
  return m;
}

/** Tensor name → shard file path (absolute), from model.safetensors or the shard index. */
export function locateWeightFiles(dir: string): Map<string, string> {
  const single = join(dir, "model.safetensors");
  const indexPath = join(dir, "model.safetensors.index.json");
  const where = new Map<string, string>();
  if (existsSync(indexPath)) {
    const index = readJsonObject(indexPath, "shard index");
    const map = index.weight_map;
    if (map === null || typeof map !== "object" || Array.isArray(map)) fail(`shard index ${indexPath} has no weight_map object`, "re-download the model");
    for (const [name, file] of Object.entries(map as JsonObject)) {
      if (typeof file !== "string" || file.includes("..") || file.startsWith("/")) fail(`shard index ${indexPath}: tensor ${name} maps to invalid file ${JSON.stringify(file)}`, "re-download the model");
      where.set(name, join(dir, file));
    }
    return where;
  }
  if (existsSync(single)) {
    for (const name of readSafetensorsHeader(single).tensors.keys()) where.set(name, single);
    return where;
  }
  return fail(`no weights in ${dir}: neither model.safetensors nor model.safetensors.index.json exists`, "download the model's safetensors weights (pytorch .bin weights are not supported)");
}

/** The model config of a Hugging Face model directory (config.json only; no weights read). */
export function readHuggingFaceConfig(dir: string): LlamaConfig {
  const configPath = join(dir, "config.json");
  return parseHuggingFaceConfig(readJsonObject(configPath, "model config"), configPath);
}

/** Loads config, checks every tensor's shape against it (headers first, before reading data), loads weights. */
export function readHuggingFaceModel(dir: string): { config: LlamaConfig; weights: HostWeights } {
  const config = readHuggingFaceConfig(dir);
  const where = locateWeightFiles(dir);
  checkConfigAgainstTensorNames(config, where.keys(), dir); // before expectedTensorShapes sizes anything by the config
  const expected = expectedTensorShapes(config);
  const missing = [...expected.keys()].filter((n) => !where.has(n));
  if (missing.length > 0) {
    const shown = missing.slice(0, 3).join(", ") + (missing.length > 3 ? ` and ${missing.length - 3} more` : "");
    fail(`missing tensors in ${dir}: ${shown}`, "the checkpoint is incomplete or not a Llama model");
  }
  const byFile = new Map<string, Set<string>>();
  for (const name of expected.keys()) {
    const file = where.get(name)!;
    if (!byFile.has(file)) byFile.set(file, new Set());
    byFile.get(file)!.add(name);
  }
  for (const [file, names] of byFile) {
    if (!existsSync(file)) fail(`weight shard ${file} does not exist (named in ${join(dir, "model.safetensors.index.json")})`, "download all shards of the model");
    const header = readSafetensorsHeader(file);
    for (const name of names) {
      const entry = header.tensors.get(name);
      if (!entry) fail(`missing tensor ${name} in ${file}`, "the shard index and the shard disagree; re-download the model");
      const want = expected.get(name)!;
      if (entry.shape.length !== want.length || entry.shape.some((v, i) => v !== want[i])) {
        fail(`header/config mismatch: tensor ${name} in ${file} has shape [${entry.shape.join(", ")}], ${join(dir, "config.json")} implies [${want.join(", ")}]`, "the config does not belong to these weights");
      }
    }
  }
  const tensors = new Map<string, HostTensor>();
  for (const [file, names] of byFile) {
    for (const [name, t] of readSafetensors(file, names)) tensors.set(name, { shape: t.shape, data: t.data });
  }
  const get = (name: string): HostTensor => tensors.get(name)!;
  const layers: HostLayerWeights[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}`;
    layers.push({
      attnNorm: get(`${p}.input_layernorm.weight`),
      wq: get(`${p}.self_attn.q_proj.weight`),
      wk: get(`${p}.self_attn.k_proj.weight`),
      wv: get(`${p}.self_attn.v_proj.weight`),
      wo: get(`${p}.self_attn.o_proj.weight`),
      ffnNorm: get(`${p}.post_attention_layernorm.weight`),
      wGate: get(`${p}.mlp.gate_proj.weight`),
      wUp: get(`${p}.mlp.up_proj.weight`),
      wDown: get(`${p}.mlp.down_proj.weight`),
    });
  }
  const weights: HostWeights = {
    embed: get("model.embed_tokens.weight"),
    layers,
    finalNorm: get("model.norm.weight"),
    lmHead: config.tieWordEmbeddings ? null : get("lm_head.weight"),
  };
  return { config, weights };
}

/** The safetensors files holding this model's weights, sorted by name (what the checkpoint hash covers). */
export function huggingFaceWeightFiles(dir: string): string[] {
  return [...new Set(locateWeightFiles(dir).values())].sort();
}
