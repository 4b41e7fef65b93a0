import { fail } from "../util/errors.js";
import type { RopeScaling } from "../backbone/config.js";
import type { ArchitectureSpec, LayerSpec, RopeSpec } from "../backbone/architecture.js";

/**
 * The model families a Hugging Face config.json may declare, and how each one's keys become an ArchitectureSpec.
 * Every key a family's forward depends on is read here; keys that do not change the forward are listed as such;
 * any other key is refused (one line naming the key and the file), so nothing that changes the forward is ignored.
 */

type JsonObject = Record<string, unknown>;

export interface FamilyDef {
  /** transformers model_type. */
  modelType: string;
  /** The architecture class saved in config.json's "architectures". */
  architecture: string;
  /** Config keys this family reads beyond the common ones (COMMON_KEYS). */
  keys: readonly string[];
  /** transformers' config-class defaults for keys a hand-written config.json may leave out. */
  defaults: JsonObject;
}

/** Keys every family reads (parseHuggingFaceConfig and describeFamily). */
export const COMMON_KEYS = [
  "architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
  "num_key_value_heads", "head_dim", "max_position_embeddings", "rope_theta", "rope_scaling", "rope_parameters", "rms_norm_eps",
  "tie_word_embeddings", "bos_token_id", "eos_token_id", "hidden_act", "attention_bias", "mlp_bias", "sliding_window",
  "layer_types", "partial_rotary_factor",
] as const;

/** Keys that do not change the eval-mode forward (dropout, init, bookkeeping, generation defaults). */
export const FORWARD_NEUTRAL_KEYS = new Set([
  "transformers_version", "torch_dtype", "dtype", "use_cache", "initializer_range", "attention_dropout", "pad_token_id",
  "_name_or_path", "pretraining_tp", "embd_pdrop", "resid_pdrop", "hidden_dropout", "hidden_dropout_prob", "auto_map",
  "cache_implementation", "return_dict", "output_attentions", "output_hidden_states", "torchscript", "use_bfloat16",
  "tokenizer_class", "id2label", "label2id", "decoder_start_token_id", "sep_token_id", "is_decoder", "is_encoder_decoder",
  "add_cross_attention", "tie_encoder_decoder", "chunk_size_feed_forward", "pruned_heads", "problem_type", "finetuning_task",
  "task_specific_params", "prefix", "max_length", "min_length", "do_sample", "early_stopping", "num_beams", "num_beam_groups",
  "diversity_penalty", "temperature", "top_k", "top_p", "typical_p", "repetition_penalty", "length_penalty",
  "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences", "output_scores",
  "return_dict_in_generate", "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
  "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens", "tf_legacy_loss", "torch_compile",
  "_attn_implementation_autoset", "unsloth_version", "unsloth_fixed", "quantization_method",
]);

const GEMMA_DEFAULTS: JsonObject = { head_dim: 256, query_pre_attn_scalar: 256, sliding_window: 4096, tie_word_embeddings: true, hidden_activation: "gelu_pytorch_tanh" };

export const FAMILIES: readonly FamilyDef[] = [
  { modelType: "llama", architecture: "LlamaForCausalLM", keys: [], defaults: {} },
  { modelType: "mistral", architecture: "MistralForCausalLM", keys: [], defaults: {} },
  { modelType: "qwen2", architecture: "Qwen2ForCausalLM", keys: ["use_sliding_window", "max_window_layers", "use_mrope"], defaults: { use_sliding_window: false, max_window_layers: 28 } },
  { modelType: "qwen3", architecture: "Qwen3ForCausalLM", keys: ["use_sliding_window", "max_window_layers"], defaults: { head_dim: 128, use_sliding_window: false, max_window_layers: 28 } },
  // Phi-4-mini's config also carries its remote code's lm_head_bias, full_attn_mod and interpolate_factor: accepted
  // only with the values under which that code computes what transformers' Phi3 computes.
  { modelType: "phi3", architecture: "Phi3ForCausalLM", keys: ["original_max_position_embeddings", "lm_head_bias", "full_attn_mod", "interpolate_factor"], defaults: { rms_norm_eps: 1e-5 } },
  {
    modelType: "gemma2", architecture: "Gemma2ForCausalLM",
    keys: ["hidden_activation", "query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping", "use_bidirectional_attention"],
    defaults: { ...GEMMA_DEFAULTS, attn_logit_softcapping: 50, final_logit_softcapping: 30 },
  },
  {
    modelType: "gemma3_text", architecture: "Gemma3ForCausalLM",
    keys: ["hidden_activation", "query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping", "rope_local_base_freq", "sliding_window_pattern", "_sliding_window_pattern", "use_bidirectional_attention"],
    defaults: { ...GEMMA_DEFAULTS, rope_theta: 1_000_000, rope_local_base_freq: 10_000, sliding_window_pattern: 6 },
  },
  { modelType: "smollm3", architecture: "SmolLM3ForCausalLM", keys: ["use_sliding_window", "max_window_layers", "no_rope_layers", "no_rope_layer_interval"], defaults: { tie_word_embeddings: true, no_rope_layer_interval: 4, use_sliding_window: false } },
];

export const SUPPORTED_ARCHITECTURES: readonly string[] = FAMILIES.map((f) => f.architecture);

/** The family config.json declares (architectures[0], else model_type); a one-line error for any other. */
export function familyOf(raw: JsonObject, source: string): FamilyDef {
  const archs = raw.architectures;
  const arch = Array.isArray(archs) && typeof archs[0] === "string" ? archs[0] : undefined;
  const family = arch !== undefined ? FAMILIES.find((f) => f.architecture === arch) : FAMILIES.find((f) => f.modelType === raw.model_type);
  if (!family) {
    const what = arch ?? `model_type ${String(raw.model_type ?? "unknown")}`;
    return fail(`unsupported architecture ${what} in ${source}`, `supported: ${SUPPORTED_ARCHITECTURES.join(", ")}`);
  }
  return family;
}

/** Refuses any key that is neither read by the family nor known not to change the forward. */
export function refuseUnknownKeys(raw: JsonObject, family: FamilyDef, source: string): void {
  const known = new Set<string>([...COMMON_KEYS, ...family.keys]);
  for (const key of Object.keys(raw)) {
    if (known.has(key) || FORWARD_NEUTRAL_KEYS.has(key)) continue;
    fail(`config key "${key}" in ${source} is not implemented for ${family.architecture}`, "edgeinfinite would compute a different forward than the model's; remove the key only if it does not change the forward");
  }
}

/** Reads config keys with the family's defaults; every read names the key and the file when it fails. */
export class ConfigReader {
  constructor(readonly raw: JsonObject, readonly family: FamilyDef, readonly source: string) {}

  value(key: string): unknown {
    const v = this.raw[key];
    return v === undefined ? this.family.defaults[key] : v;
  }

  bad(key: string, want: string): never {
    return fail(`${this.source}: config key "${key}" must be ${want}, got ${JSON.stringify(this.raw[key])}`, "fix config.json");
  }

  posInt(key: string, fallback?: number): number {
    const v = this.value(key) ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) this.bad(key, "a positive integer");
    return v;
  }

  posNumber(key: string, fallback?: number): number {
    const v = this.value(key) ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) this.bad(key, "a positive number");
    return v;
  }

  /** A positive number, or null when the key is null/absent (optional features such as soft-capping). */
  optionalNumber(key: string): number | null {
    const v = this.value(key);
    if (v === null || v === undefined) return null;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) this.bad(key, "a positive number or null");
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.value(key) ?? fallback;
    if (typeof v !== "boolean") this.bad(key, "true or false");
    return v;
  }

  /** A key that must have one value because other values change the forward in ways not implemented. */
  require(key: string, allowed: readonly unknown[], fallback: unknown): void {
    const v = this.value(key) ?? fallback;
    if (!allowed.includes(v)) {
      fail(`config key "${key}" = ${JSON.stringify(v)} in ${this.source} is not implemented for ${this.family.architecture}`, `supported: ${allowed.map((a) => JSON.stringify(a)).join(", ")}`);
    }
  }
}

function isObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

const ROPE_KEYS: Record<string, readonly string[]> = {
  default: [],
  linear: ["factor"],
  dynamic: ["factor", "original_max_position_embeddings"],
  llama3: ["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"],
  yarn: ["factor", "original_max_position_embeddings", "beta_fast", "beta_slow", "attention_factor", "mscale", "mscale_all_dim", "truncate"],
  longrope: ["short_factor", "long_factor", "factor", "original_max_position_embeddings", "attention_factor"],
};

/** yarn's default attention factor (transformers' get_mscale). */
function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

/**
 * Parses rope_scaling (transformers ≤4) or rope_parameters (transformers 5) into RopeScaling. `rotaryDim` is the
 * rotating part of a head (longrope has one factor per frequency); `originalMax` Phi-3's top-level
 * original_max_position_embeddings when present.
 */
export function parseRopeScaling(raw: unknown, source: string, maxPositions: number, rotaryDim?: number, originalMax?: number): RopeScaling | null {
  if (raw === null || raw === undefined) return null;
  if (!isObject(raw)) return fail(`${source}: rope_scaling must be an object or null`, "fix config.json");
  let type = String(raw.rope_type ?? raw.type ?? "default");
  if (type === "su") type = "longrope"; // Phi-3's first name for longrope
  const allowed = ROPE_KEYS[type];
  if (!allowed) return fail(`${source}: rope scaling type "${type}" (config key rope_scaling.rope_type) is not supported`, `supported: ${Object.keys(ROPE_KEYS).join(", ")}, su`);
  for (const key of Object.keys(raw)) {
    if (key !== "type" && key !== "rope_type" && key !== "rope_theta" && key !== "partial_rotary_factor" && !allowed.includes(key)) {
      fail(`config key "rope_scaling.${key}" in ${source} is not implemented for rope type "${type}"`, `known keys: ${allowed.join(", ") || "none"}`);
    }
  }
  const num = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) fail(`${source}: rope scaling "${type}" needs a positive number ${key}, got ${JSON.stringify(raw[key])}`, "fix config.json");
    return v;
  };
  switch (type) {
    case "default":
      return null;
    case "linear":
      return { type: "linear", factor: num("factor") };
    case "dynamic":
      return { type: "dynamic", factor: num("factor"), originalMaxPositions: num("original_max_position_embeddings", maxPositions) };
    case "llama3":
      return {
        type: "llama3",
        factor: num("factor"),
        lowFreqFactor: num("low_freq_factor"),
        highFreqFactor: num("high_freq_factor"),
        originalMaxPositions: num("original_max_position_embeddings", maxPositions),
      };
    case "yarn": {
      // transformers: with an original length given, the factor used is the ratio of the two lengths.
      const orig = typeof raw.original_max_position_embeddings === "number" ? num("original_max_position_embeddings") : maxPositions;
      const factor = typeof raw.original_max_position_embeddings === "number" ? maxPositions / orig : num("factor");
      const mscale = raw.mscale, mscaleAll = raw.mscale_all_dim;
      const attentionFactor =
        raw.attention_factor !== undefined && raw.attention_factor !== null
          ? num("attention_factor")
          : typeof mscale === "number" && typeof mscaleAll === "number" && mscale > 0 && mscaleAll > 0
            ? yarnMscale(factor, mscale) / yarnMscale(factor, mscaleAll)
            : yarnMscale(factor);
      return {
        type: "yarn", factor, originalMaxPositions: orig, betaFast: num("beta_fast", 32), betaSlow: num("beta_slow", 1), attentionFactor,
        truncate: raw.truncate !== false,
      };
    }
    case "longrope": {
      const orig = originalMax ?? num("original_max_position_embeddings", maxPositions);
      const factors = (key: string): number[] => {
        const v = raw[key];
        const want = rotaryDim === undefined ? undefined : rotaryDim / 2;
        if (!Array.isArray(v) || v.some((x) => typeof x !== "number" || !(x > 0)) || (want !== undefined && v.length !== want)) {
          fail(`${source}: config key "rope_scaling.${key}" must be ${want ?? "a list of"} positive numbers (one per rotary frequency), got ${Array.isArray(v) ? `${v.length} values` : JSON.stringify(v)}`, "fix config.json");
        }
        return v as number[];
      };
      // transformers' _compute_longrope_parameters: the factor is the ratio of the extended to the original length.
      const factor = originalMax !== undefined ? maxPositions / originalMax : typeof raw.factor === "number" ? raw.factor : 1;
      const attentionFactor =
        typeof raw.attention_factor === "number" ? raw.attention_factor : factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(orig));
      return { type: "longrope", shortFactor: factors("short_factor"), longFactor: factors("long_factor"), originalMaxPositions: orig, attentionFactor };
    }
    default:
      return fail(`${source}: rope scaling type "${type}" is not supported`, "supported: default, linear, dynamic, llama3, yarn, longrope");
  }
}

/** What parseHuggingFaceConfig already read, that the family description builds on. */
export interface BaseShape {
  numLayers: number;
  headDim: number;
  hiddenSize: number;
  maxPositions: number;
  ropeTheta: number;
  /** rope_scaling, or rope_parameters when it is one flat object. */
  ropeScalingRaw: unknown;
}

/** Which layers slide: layer_types when given, else the family's rule (transformers' config classes). */
function slidingFlags(r: ConfigReader, numLayers: number): boolean[] {
  const types = r.raw.layer_types;
  if (types !== undefined && types !== null) {
    if (!Array.isArray(types) || types.length !== numLayers || types.some((t) => t !== "sliding_attention" && t !== "full_attention")) {
      r.bad("layer_types", `${numLayers} entries, each "sliding_attention" or "full_attention"`);
    }
    return types.map((t) => t === "sliding_attention");
  }
  const all = (v: boolean) => Array.from({ length: numLayers }, () => v);
  switch (r.family.modelType) {
    case "gemma2":
      return Array.from({ length: numLayers }, (_, i) => i % 2 === 0);
    case "gemma3_text": {
      // transformers ≥ 5 also saves the pattern as "_sliding_window_pattern"; either names it, and they must agree
      const saved = r.raw._sliding_window_pattern;
      if (saved !== undefined && r.raw.sliding_window_pattern !== undefined && saved !== r.raw.sliding_window_pattern) {
        r.bad("_sliding_window_pattern", `the same value as sliding_window_pattern (${String(r.raw.sliding_window_pattern)})`);
      }
      const pattern = r.raw.sliding_window_pattern === undefined && saved !== undefined ? r.posInt("_sliding_window_pattern") : r.posInt("sliding_window_pattern");
      return Array.from({ length: numLayers }, (_, i) => (i + 1) % pattern !== 0);
    }
    case "qwen2":
    case "qwen3":
    case "smollm3": {
      if (!r.bool("use_sliding_window", false)) return all(false);
      const from = r.value("max_window_layers");
      const first = typeof from === "number" ? from : 0;
      return Array.from({ length: numLayers }, (_, i) => i >= first);
    }
    case "llama": // transformers' Llama has no sliding window (a sliding_window key there changes nothing)
      return all(false);
    default: // mistral, phi3: every layer slides when sliding_window is set
      return all(true);
  }
}

/** Per-layer windows as declared (null for full layers), kept even when as long as the trained context. */
function layerWindows(r: ConfigReader, flags: readonly boolean[]): (number | null)[] {
  const raw = r.value("sliding_window");
  if (raw === null || raw === undefined || !flags.some((f) => f)) return flags.map(() => null);
  const window = r.posInt("sliding_window");
  return flags.map((f) => (f ? window : null));
}

/** Per-layer RoPE: Gemma 3's local layers use rope_local_base_freq unscaled; SmolLM3's no-RoPE layers none. */
function layerRopes(r: ConfigReader, b: BaseShape, sliding: readonly boolean[]): (RopeSpec | null)[] {
  // transformers 5 moves partial_rotary_factor into rope_parameters.
  const params0 = r.raw.rope_parameters;
  const nestedFactor = isObject(params0) ? params0.partial_rotary_factor : undefined;
  const factor = r.value("partial_rotary_factor") ?? nestedFactor;
  if (factor !== undefined && factor !== null && (typeof factor !== "number" || !(factor > 0))) r.bad("partial_rotary_factor", "a positive number");
  const partial = typeof factor === "number" ? factor : 1;
  if (partial > 1) r.bad("partial_rotary_factor", "at most 1");
  const rotaryDim = Math.floor(b.headDim * partial);
  if (rotaryDim % 2 !== 0 || rotaryDim === 0) r.bad("partial_rotary_factor", `a fraction of head_dim ${b.headDim} giving an even number of dims`);
  const origTop = r.raw.original_max_position_embeddings;
  const originalMax = typeof origTop === "number" ? origTop : undefined;
  const params = r.raw.rope_parameters;
  // transformers 5 stores Gemma 3's two RoPEs as rope_parameters.{full_attention, sliding_attention}.
  if (isObject(params) && (isObject(params.full_attention) || isObject(params.sliding_attention))) {
    const parse = (kind: "full_attention" | "sliding_attention"): RopeSpec => {
      const p = params[kind];
      if (!isObject(p)) return r.bad("rope_parameters", `an object with ${kind}`);
      const theta = typeof p.rope_theta === "number" && p.rope_theta > 0 ? p.rope_theta : r.bad(`rope_parameters.${kind}.rope_theta`, "a positive number");
      return { theta, scaling: parseRopeScaling(p, r.source, b.maxPositions, rotaryDim, originalMax), rotaryDim };
    };
    const full = parse("full_attention");
    const local = isObject(params.sliding_attention) ? parse("sliding_attention") : full;
    return sliding.map((s) => (s ? local : full));
  }
  const global: RopeSpec = { theta: b.ropeTheta, scaling: parseRopeScaling(b.ropeScalingRaw, r.source, b.maxPositions, rotaryDim, originalMax), rotaryDim };
  if (r.family.modelType === "gemma3_text") {
    const local: RopeSpec = { theta: r.posNumber("rope_local_base_freq"), scaling: null, rotaryDim };
    return sliding.map((s) => (s ? local : global));
  }
  if (r.family.modelType === "smollm3") {
    const interval = r.posInt("no_rope_layer_interval");
    const flags = r.raw.no_rope_layers ?? Array.from({ length: b.numLayers }, (_, i) => ((i + 1) % interval !== 0 ? 1 : 0));
    if (!Array.isArray(flags) || flags.length !== b.numLayers || flags.some((f) => f !== 0 && f !== 1)) r.bad("no_rope_layers", `${b.numLayers} entries of 0 or 1`);
    return (flags as number[]).map((useRope) => (useRope === 1 ? global : null));
  }
  return Array.from({ length: b.numLayers }, () => global);
}

/** Builds the family description from config.json (keys already screened by refuseUnknownKeys). */
export function describeFamily(r: ConfigReader, b: BaseShape): ArchitectureSpec {
  const type = r.family.modelType;
  const gemma = type === "gemma2" || type === "gemma3_text";
  r.require("mlp_bias", [false], false);
  if (type === "qwen2") r.require("use_mrope", [false], false);
  if (type === "phi3") {
    r.require("lm_head_bias", [false], false);
    r.require("full_attn_mod", [1], 1);
    r.require("interpolate_factor", [1], 1);
  }
  // transformers ≥ 5 saves use_bidirectional_attention (false/null: causal, as implemented) on both Gemma families
  if (gemma) r.require("use_bidirectional_attention", [false, null], false);
  const attentionBias = type === "qwen2" ? false : r.bool("attention_bias", false);
  if (gemma) {
    r.require("attention_bias", [false], false);
    const act = r.raw.hidden_activation ?? r.raw.hidden_act ?? r.family.defaults.hidden_activation;
    if (act !== "gelu_pytorch_tanh" && act !== "gelu_tanh") {
      fail(`config key "hidden_activation" = ${JSON.stringify(act)} in ${r.source} is not implemented for ${r.family.architecture}`, "supported: gelu_pytorch_tanh");
    }
  } else {
    r.require("hidden_act", ["silu"], "silu");
  }
  const sliding = slidingFlags(r, b.numLayers);
  const windows = layerWindows(r, sliding);
  const ropes = layerRopes(r, b, sliding);
  const layers: LayerSpec[] = windows.map((window, i) => ({ window, rope: ropes[i]! }));
  const softcap = (key: string) => (gemma ? r.optionalNumber(key) : null);
  return {
    name: type === "gemma3_text" ? "gemma3" : type,
    qkvBias: type === "qwen2" || attentionBias,
    outputBias: type !== "qwen2" && attentionBias,
    qkNorm: type === "qwen3" || type === "gemma3_text",
    sandwichNorms: gemma,
    activation: gemma ? "gelu_tanh" : "silu",
    embedScale: gemma ? Math.sqrt(b.hiddenSize) : 1,
    queryScale: gemma ? 1 / Math.sqrt(r.posNumber("query_pre_attn_scalar")) : 1 / Math.sqrt(b.headDim),
    attnLogitSoftcap: softcap("attn_logit_softcapping"),
    finalLogitSoftcap: softcap("final_logit_softcapping"),
    normWeightOffset: gemma ? 1 : 0,
    layers,
  };
}

/** Tensor names of one layer's attention and MLP in this family's checkpoint layout. */
export interface LayerTensorNames {
  /** Separate q/k/v projections, or Phi-3's fused qkv_proj (split by rows q | k | v on load). */
  qkv: { fused: string } | { q: string; k: string; v: string };
  /** Separate gate/up projections, or Phi-3's fused gate_up_proj (rows gate | up). */
  gateUp: { fused: string } | { gate: string; up: string };
}

export function layerTensorNames(family: FamilyDef, prefix: string): LayerTensorNames {
  if (family.modelType === "phi3") return { qkv: { fused: `${prefix}.self_attn.qkv_proj.weight` }, gateUp: { fused: `${prefix}.mlp.gate_up_proj.weight` } };
  return {
    qkv: { q: `${prefix}.self_attn.q_proj.weight`, k: `${prefix}.self_attn.k_proj.weight`, v: `${prefix}.self_attn.v_proj.weight` },
    gateUp: { gate: `${prefix}.mlp.gate_proj.weight`, up: `${prefix}.mlp.up_proj.weight` },
  };
}
