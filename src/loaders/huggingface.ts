import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fail } from "../util/errors.js";
import { validateConfig, type LlamaConfig } from "../backbone/config.js";
import { architectureOf } from "../backbone/architecture.js";
import type { HostLayerWeights, HostTensor, HostWeights } from "../backbone/weights.js";
import { readSafetensors, readSafetensorsHeader } from "./safetensors.js";
import { checkConfigAgainstTensorNames } from "./config-check.js";
import { ConfigReader, describeFamily, familyOf, layerTensorNames, refuseUnknownKeys } from "./families.js";

/**
 * Hugging Face checkpoint of a supported family (families.ts): config.json + model.safetensors (or a sharded
 * model.safetensors.index.json). Linear weights keep torch's [out, in] layout; fused projections are split and
 * Gemma's (1 + w) norm weights get their 1 added here, so the forward sees one layout.
 */

export { SUPPORTED_ARCHITECTURES, parseRopeScaling } from "./families.js";

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

/** Validates a Hugging Face config.json object and maps it to LlamaConfig (with its family description). */
export function parseHuggingFaceConfig(raw: JsonObject, source: string): LlamaConfig {
  const family = familyOf(raw, source);
  refuseUnknownKeys(raw, family, source);
  const r = new ConfigReader(raw, family, source);
  const hiddenSize = r.posInt("hidden_size");
  const numHeads = r.posInt("num_attention_heads");
  const maxPositions = r.posInt("max_position_embeddings");
  const params = raw.rope_parameters;
  const paramsObj = params !== null && typeof params === "object" && !Array.isArray(params) ? (params as JsonObject) : null;
  const nested = paramsObj !== null && ("full_attention" in paramsObj || "sliding_attention" in paramsObj);
  const globalParams = nested ? (paramsObj.full_attention as JsonObject | undefined) ?? null : paramsObj;
  const theta = globalParams?.rope_theta ?? r.value("rope_theta") ?? 10000;
  if (typeof theta !== "number" || !(theta > 0)) fail(`${source}: rope_theta must be a positive number, got ${JSON.stringify(theta)}`, "fix config.json");
  // rope_scaling (older transformers) wins when set; rope_parameters carries the same fields in transformers 5.
  const ropeScalingRaw = raw.rope_scaling ?? globalParams;
  const eps = r.posNumber("rms_norm_eps", 1e-6);
  const headDim = r.value("head_dim") === null || r.value("head_dim") === undefined ? Math.floor(hiddenSize / numHeads) : r.posInt("head_dim");
  const numLayers = r.posInt("num_hidden_layers");
  // Per-layer settings are sized by this count before any weight is read: bound it (no released decoder has 1024).
  if (numLayers > MAX_LAYERS) {
    fail(
      `${source}: config.json says num_hidden_layers ${numLayers}, more than any released decoder has (at most ${MAX_LAYERS})`,
      "the config does not belong to these weights; restore the model's own config.json",
    );
  }
  const spec = describeFamily(r, { numLayers, headDim, hiddenSize, maxPositions, ropeTheta: theta, ropeScalingRaw });
  const firstRope = spec.layers.find((l) => l.rope !== null)?.rope ?? null;
  const eosIds = intList(raw.eos_token_id);
  const config: LlamaConfig = {
    architecture: family.architecture,
    vocabSize: r.posInt("vocab_size"),
    hiddenSize,
    intermediateSize: r.posInt("intermediate_size"),
    numLayers,
    numHeads,
    numKvHeads: r.posInt("num_key_value_heads", numHeads),
    headDim,
    maxPositions,
    ropeTheta: firstRope?.theta ?? theta,
    ropeScaling: firstRope?.scaling ?? null,
    rmsNormEps: eps,
    // transformers' LlamaConfig defaults tie_word_embeddings to false (Gemma and SmolLM3 to true).
    tieWordEmbeddings: r.value("tie_word_embeddings") === true,
    bosTokenId: firstInt(raw.bos_token_id) ?? 1,
    eosTokenId: eosIds[0] ?? 2,
    eosTokenIds: eosIds.length > 0 ? eosIds : [2],
    family: spec,
  };
  validateConfig(config, source);
  return config;
}

function intList(v: unknown): number[] {
  if (typeof v === "number" && Number.isInteger(v)) return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number" && Number.isInteger(x));
  return [];
}

/** Tensor name → expected shape, from the config and its family (biases, q/k norms, Gemma's extra norms, fused projections). */
/** More decoder layers than any released model has: a config claiming more is refused before anything is sized by it. */
const MAX_LAYERS = 1024;

export function expectedTensorShapes(c: LlamaConfig): Map<string, number[]> {
  const d = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const ffn = c.intermediateSize;
  const arch = architectureOf(c);
  const family = familyOf({ architectures: [c.architecture] }, c.architecture);
  const m = new Map<string, number[]>();
  m.set("model.embed_tokens.weight", [c.vocabSize, d]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}`;
    const names = layerTensorNames(family, p);
    if ("fused" in names.qkv) m.set(names.qkv.fused, [q + 2 * kv, d]);
    else {
      m.set(names.qkv.q, [q, d]);
      m.set(names.qkv.k, [kv, d]);
      m.set(names.qkv.v, [kv, d]);
    }
    m.set(`${p}.self_attn.o_proj.weight`, [d, q]);
    if (arch.qkvBias) {
      m.set(`${p}.self_attn.q_proj.bias`, [q]);
      m.set(`${p}.self_attn.k_proj.bias`, [kv]);
      m.set(`${p}.self_attn.v_proj.bias`, [kv]);
    }
    if (arch.outputBias) m.set(`${p}.self_attn.o_proj.bias`, [d]);
    if (arch.qkNorm) {
      m.set(`${p}.self_attn.q_norm.weight`, [c.headDim]);
      m.set(`${p}.self_attn.k_norm.weight`, [c.headDim]);
    }
    if ("fused" in names.gateUp) m.set(names.gateUp.fused, [2 * ffn, d]);
    else {
      m.set(names.gateUp.gate, [ffn, d]);
      m.set(names.gateUp.up, [ffn, d]);
    }
    m.set(`${p}.mlp.down_proj.weight`, [d, ffn]);
    m.set(`${p}.input_layernorm.weight`, [d]);
    m.set(`${p}.post_attention_layernorm.weight`, [d]);
    if (arch.sandwichNorms) {
      m.set(`${p}.pre_feedforward_layernorm.weight`, [d]);
      m.set(`${p}.post_feedforward_layernorm.weight`, [d]);
    }
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
    fail(`missing tensors in ${dir}: ${shown} (${join(dir, "config.json")} declares ${config.architecture}${biasNote(config)})`, "the checkpoint is incomplete or does not match its config.json");
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
  return { config, weights: assembleWeights(config, tensors) };
}

function biasNote(c: LlamaConfig): string {
  const arch = architectureOf(c);
  if (arch.qkvBias) return c.architecture === "Qwen2ForCausalLM" ? ", which has q/k/v biases" : " with attention_bias: true";
  return "";
}

/** Rows [start, start+n) of a [rows, cols] host tensor (splitting fused projections). */
function rowSlice(t: HostTensor, start: number, n: number): HostTensor {
  const cols = t.shape[1]!;
  return { shape: [n, cols], data: t.data.slice(start * cols, (start + n) * cols) };
}

/** Gemma stores norm weights as offsets from 1 (x·(1 + w)); adding the 1 once keeps one RMSNorm in the forward. */
function withNormOffset(t: HostTensor, offset: number): HostTensor {
  if (offset === 0) return t;
  return { shape: t.shape, data: t.data.map((v) => v + offset) };
}

/** Host weights in the forward's layout from the checkpoint's tensors (all present and shape-checked). */
function assembleWeights(config: LlamaConfig, tensors: Map<string, HostTensor>): HostWeights {
  const get = (name: string): HostTensor => tensors.get(name)!;
  const arch = architectureOf(config);
  const norm = (name: string) => withNormOffset(get(name), arch.normWeightOffset);
  const family = familyOf({ architectures: [config.architecture] }, config.architecture);
  const q = config.numHeads * config.headDim;
  const kv = config.numKvHeads * config.headDim;
  const layers: HostLayerWeights[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}`;
    const names = layerTensorNames(family, p);
    const qkv = "fused" in names.qkv ? get(names.qkv.fused) : null;
    const gateUp = "fused" in names.gateUp ? get(names.gateUp.fused) : null;
    const layer: HostLayerWeights = {
      attnNorm: norm(`${p}.input_layernorm.weight`),
      wq: qkv ? rowSlice(qkv, 0, q) : get(`${p}.self_attn.q_proj.weight`),
      wk: qkv ? rowSlice(qkv, q, kv) : get(`${p}.self_attn.k_proj.weight`),
      wv: qkv ? rowSlice(qkv, q + kv, kv) : get(`${p}.self_attn.v_proj.weight`),
      wo: get(`${p}.self_attn.o_proj.weight`),
      // Gemma's post_attention_layernorm normalises the attention output; its MLP input norm is pre_feedforward.
      ffnNorm: norm(arch.sandwichNorms ? `${p}.pre_feedforward_layernorm.weight` : `${p}.post_attention_layernorm.weight`),
      wGate: gateUp ? rowSlice(gateUp, 0, config.intermediateSize) : get(`${p}.mlp.gate_proj.weight`),
      wUp: gateUp ? rowSlice(gateUp, config.intermediateSize, config.intermediateSize) : get(`${p}.mlp.up_proj.weight`),
      wDown: get(`${p}.mlp.down_proj.weight`),
    };
    if (arch.qkvBias) {
      layer.bq = get(`${p}.self_attn.q_proj.bias`);
      layer.bk = get(`${p}.self_attn.k_proj.bias`);
      layer.bv = get(`${p}.self_attn.v_proj.bias`);
    }
    if (arch.outputBias) layer.bo = get(`${p}.self_attn.o_proj.bias`);
    if (arch.qkNorm) {
      layer.qNorm = norm(`${p}.self_attn.q_norm.weight`);
      layer.kNorm = norm(`${p}.self_attn.k_norm.weight`);
    }
    if (arch.sandwichNorms) {
      layer.postAttnNorm = norm(`${p}.post_attention_layernorm.weight`);
      layer.postFfnNorm = norm(`${p}.post_feedforward_layernorm.weight`);
    }
    layers.push(layer);
  }
  return {
    embed: get("model.embed_tokens.weight"),
    layers,
    finalNorm: norm("model.norm.weight"),
    lmHead: config.tieWordEmbeddings ? null : get("lm_head.weight"),
  };
}

/** The safetensors files holding this model's weights, sorted by name (what the checkpoint hash covers). */
export function huggingFaceWeightFiles(dir: string): string[] {
  return [...new Set(locateWeightFiles(dir).values())].sort();
}
