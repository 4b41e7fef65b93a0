import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { loadBackbone, readHuggingFaceModel } from "../src/loaders/index.js";
import { loadHuggingFaceTokenizer } from "../src/tokenizers/hf-tokenizer.js";
import { LlamaModel } from "../src/backbone/model.js";
import { CachedSession } from "../src/cache/cached-session.js";
import { fullPolicy } from "../src/cache/full.js";
import { createPolicy } from "../src/cache/registry.js";
import { causalMask, groupedAttention } from "../src/backbone/attention.js";
import type { CachePolicy } from "../src/cache/policy.js";
import { generate } from "../src/backbone/generate.js";
import { parameterCount, stopTokenIds } from "../src/backbone/config.js";
import { parseHuggingFaceConfig } from "../src/loaders/huggingface.js";
import { FAMILY_CONFIGS, familyConfig, writeFamilyCheckpoint, type Json } from "./fixtures/family-checkpoints.js";
import { EdgeInfError } from "../src/util/errors.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig } from "../src/memory/config.js";
import { sequenceGradients } from "../src/training/tbptt.js";
import { createSession } from "../src/eval/methods.js";
import { knownMethods } from "../src/eval/suite.js";
import { familyForward64, nll64 } from "./reference/families64.js";
import { retrievalScores } from "../src/memory/retrieval-heads.js";

const root = mkdtempSync(join(tmpdir(), "edgeinf-families-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function argmax(v: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

// Short: past every sliding window (4). Long: past llama-dynamic's 8, yarn's 16 and phi3's original 32 positions.
const SHORT = [256, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 10];
const LONG = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % 256);

describe("model families against an independent float64 forward (written from transformers' modeling files)", () => {
  beforeAll(async () => {
    await initBackend("cpu");
  });

  for (const name of Object.keys(FAMILY_CONFIGS)) {
    it(`${name}: logits of every position within 1e-4, NLL within 1e-4, cached greedy = full re-forward greedy`, async () => {
      const dir = join(root, name);
      const { config, tensors } = writeFamilyCheckpoint(dir, name);
      const b = await loadBackbone(dir);
      const model = LlamaModel.fromHost(b.config, b.weights);
      for (const ids of [SHORT, LONG]) {
        const ref = familyForward64(config, tensors, ids);
        const got = tf.tidy(() => model.logits(model.forward(ids))).arraySync() as number[][];
        expect(maxAbsDiff(got.flat(), ref.flat())).toBeLessThan(1e-4);
        const gotNll = nll64(got, ids);
        expect(maxAbsDiff(gotNll, nll64(ref, ids))).toBeLessThan(1e-4);
      }
      const before = tf.memory().numTensors; // RoPE tables now exist; nothing else may stay
      // Greedy through the KV cache (the generate path) equals greedy by full float64 re-forward.
      const prompt = SHORT.slice(0, 6);
      const want: number[] = [];
      const seq = [...prompt];
      for (let i = 0; i < 8; i++) {
        const next = argmax(familyForward64(config, tensors, seq).at(-1)!);
        want.push(next);
        seq.push(next);
      }
      const s = new CachedSession(model, fullPolicy());
      const r = await generate(s, prompt, { maxNewTokens: 8, temperature: 0, stopIds: [] });
      s.dispose();
      expect(r.ids).toEqual(want);
      expect(tf.memory().numTensors).toBe(before);
      model.dispose();
    });
  }

  for (const [name, dtype] of [["qwen3", "F16"], ["gemma2", "BF16"], ["phi3", "BF16"], ["llama3", "F16"]] as const) {
    it(`${name} from an ${dtype} file: logits within 1e-4 of the float64 forward of the stored values`, async () => {
      const dir = join(root, `${name}-${dtype}`);
      const { config, tensors } = writeFamilyCheckpoint(dir, name, { dtype });
      const b = await loadBackbone(dir);
      const model = LlamaModel.fromHost(b.config, b.weights);
      const got = tf.tidy(() => model.logits(model.forward(SHORT))).arraySync() as number[][];
      expect(maxAbsDiff(got.flat(), familyForward64(config, tensors, SHORT).flat())).toBeLessThan(1e-4);
      model.dispose();
    });
  }

  it("reads several EOS ids (config.json list, generation_config.json) and the tokenizer's BOS convention", async () => {
    const b = await loadBackbone(join(root, "llama3"));
    expect(stopTokenIds(b.config)).toEqual([257, 258]);
    expect(b.tokenizer.eosIds).toEqual([257, 258]);
    expect(b.tokenizer.encode("hi", { bos: true })).toEqual([256, 104, 105]);
    const q = await loadBackbone(join(root, "qwen2"));
    // Qwen's tokenizer adds no BOS (as transformers encodes it); EOS is <eot> then generation_config's ids.
    expect(q.tokenizer.encode("hi", { bos: true })).toEqual([104, 105]);
    expect(q.tokenizer.eosId).toBe(258);
    expect(q.tokenizer.eosIds).toEqual([258, 257]);
  });
});

/** Fixtures made by transformers itself (scripts/make-family-fixtures.py), when present in the checkout. */
const fixtureRoot = join(__dirname, "fixtures/families");
interface DtypeRef {
  nll: number[];
  last_logits: number[];
  long_nll: number[];
  long_last_logits: number[];
  greedy_full: number[];
  greedy_generate?: number[];
}
interface FamilyRef {
  family: string;
  transformers: string;
  text: string;
  prompt: string;
  text_ids_transformers: number[];
  prompt_ids_transformers: number[];
  ids: number[];
  long_ids: number[];
  dtypes: Record<string, DtypeRef>;
}
const fixtureNames = existsSync(fixtureRoot) ? readdirSync(fixtureRoot).filter((n) => existsSync(join(fixtureRoot, n, "reference.json"))).sort() : [];

describe.skipIf(fixtureNames.length === 0)("model families against transformers itself (tiny checkpoints saved by transformers, fp32/fp16/bf16 files)", () => {
  beforeAll(async () => {
    await initBackend("cpu");
  });

  for (const name of fixtureNames) {
    it(`${name}: tokenizer ids, per-token NLL and last logits within 1e-4, greedy continuations equal`, async () => {
      const ref = JSON.parse(readFileSync(join(fixtureRoot, name, "reference.json"), "utf8")) as FamilyRef;
      const tok = await loadHuggingFaceTokenizer(join(fixtureRoot, name, "fp32"));
      expect(tok.encode(ref.text, { bos: true })).toEqual(ref.text_ids_transformers);
      expect(tok.encode(ref.prompt, { bos: true })).toEqual(ref.prompt_ids_transformers);
      for (const [dtype, want] of Object.entries(ref.dtypes)) {
        const { config, weights } = readHuggingFaceModel(join(fixtureRoot, name, dtype));
        const model = LlamaModel.fromHost(config, weights);
        for (const [ids, nll, last] of [
          [ref.ids, want.nll, want.last_logits],
          [ref.long_ids, want.long_nll, want.long_last_logits],
        ] as const) {
          const got = tf.tidy(() => model.logits(model.forward(ids))).arraySync() as number[][];
          expect(maxAbsDiff(nll64(got, ids), nll), `${name} ${dtype} NLL`).toBeLessThan(1e-4);
          expect(maxAbsDiff(got.at(-1)!, last), `${name} ${dtype} last logits`).toBeLessThan(1e-4);
        }
        const s = new CachedSession(model, fullPolicy());
        const r = await generate(s, ref.prompt_ids_transformers, { maxNewTokens: want.greedy_full.length, temperature: 0, stopIds: [] });
        s.dispose();
        expect(r.ids, `${name} ${dtype} greedy`).toEqual(want.greedy_full);
        model.dispose();
      }
    });
  }
});

function expectOneLineError(fn: () => unknown, ...fragments: string[]): void {
  let err: unknown = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(EdgeInfError);
  const message = (err as Error).message;
  expect(message).not.toContain("\n");
  for (const f of fragments) expect(message).toContain(f);
}

describe("bad input for each family: one line naming the key or tensor and the file", () => {
  const bad = (name: string, opts: Parameters<typeof writeFamilyCheckpoint>[2]) => {
    const dir = mkdtempSync(join(root, `bad-${name}-`));
    writeFamilyCheckpoint(dir, name, opts);
    return dir;
  };

  for (const name of Object.keys(FAMILY_CONFIGS)) {
    it(`${name}: a config key the loader does not implement`, () => {
      const dir = bad(name, { config: { ...familyConfig(name), attn_temperature_tuning: true } });
      expectOneLineError(() => readHuggingFaceModel(dir), `config key "attn_temperature_tuning"`, join(dir, "config.json"));
    });
  }

  it("wrong shapes of Phi-3's fused qkv_proj and gate_up_proj", () => {
    for (const tensor of ["model.layers.1.self_attn.qkv_proj.weight", "model.layers.0.mlp.gate_up_proj.weight"]) {
      const dir = bad("phi3", { edit: (t) => t.set(tensor, { shape: [8, 32], data: new Float32Array(256) }) });
      expectOneLineError(() => readHuggingFaceModel(dir), tensor, "[8, 32]", join(dir, "model.safetensors"), join(dir, "config.json"));
    }
  });

  it("a missing Qwen2 bias or Qwen3 q/k norm names the tensor, the file and the architecture", () => {
    const noBias = bad("qwen2", { edit: (t) => t.delete("model.layers.0.self_attn.k_proj.bias") });
    expectOneLineError(() => readHuggingFaceModel(noBias), "model.layers.0.self_attn.k_proj.bias", join(noBias, "config.json"), "Qwen2ForCausalLM", "biases");
    const noNorm = bad("qwen3", { edit: (t) => t.delete("model.layers.1.self_attn.q_norm.weight") });
    expectOneLineError(() => readHuggingFaceModel(noNorm), "model.layers.1.self_attn.q_norm.weight", "Qwen3ForCausalLM");
  });

  it("values that would change the forward in ways not implemented", () => {
    const cases: [string, Json, string][] = [
      ["gemma2", { hidden_activation: "gelu" }, `"hidden_activation"`],
      ["llama", { mlp_bias: true }, `"mlp_bias"`],
      ["llama", { hidden_act: "relu" }, `"hidden_act"`],
      ["qwen2", { use_mrope: true }, `"use_mrope"`],
      ["llama3", { rope_scaling: { rope_type: "mrope", factor: 2 } }, "mrope"],
      ["phi3", { rope_scaling: { type: "longrope", short_factor: [1, 2], long_factor: [1, 2, 3] } }, "rope_scaling.short_factor"],
      ["gemma3", { layer_types: ["sliding_attention", "chunked_attention"] }, `"layer_types"`],
      ["smollm3", { no_rope_layers: [1] }, `"no_rope_layers"`],
      // keys transformers 5 saves: accepted at their causal / agreeing values (the fixtures above), refused otherwise
      ["gemma2", { use_bidirectional_attention: true }, `"use_bidirectional_attention"`],
      ["gemma3", { use_bidirectional_attention: true }, `"use_bidirectional_attention"`],
      ["gemma3", { layer_types: undefined, sliding_window_pattern: 2, _sliding_window_pattern: 3 }, `"_sliding_window_pattern"`],
    ];
    for (const [name, over, fragment] of cases) {
      const dir = bad(name, { config: { ...familyConfig(name), ...over } });
      expectOneLineError(() => readHuggingFaceModel(dir), fragment, join(dir, "config.json"));
    }
  });
});

describe("retrieval heads on families (edgeinf retrieval-heads): scores against the float64 family forward", () => {
  beforeAll(async () => {
    await initBackend("cpu");
  });
  // gemma2: sliding window on even layers, logit soft-capping, query_pre_attn_scalar; gemma3: q/k norms, local RoPE
  // base; qwen3: q/k norms; mistral-sliding: a window of 4 in every layer (sources 10+ tokens back get nothing there).
  for (const name of ["gemma2", "gemma3", "qwen3", "mistral-sliding"]) {
    it(`${name}: each head's largest mass of a copying row on the sources, within 1e-5`, async () => {
      const dir = join(root, `heads-${name}`);
      const { config, tensors } = writeFamilyCheckpoint(dir, name, { seed: 9 });
      const b = await loadBackbone(dir);
      const model = LlamaModel.fromHost(b.config, b.weights);
      const probe = { ids: LONG.slice(0, 30), queryRows: [22, 27] as [number, number], sources: [[3, 6], [24, 25]] as [number, number][] };
      const got = retrievalScores(model, [probe]);
      const want = Array.from({ length: b.config.numLayers }, () => new Array<number>(b.config.numHeads).fill(0));
      familyForward64(config, tensors, probe.ids, (li, i, h, probs) => {
        if (i < probe.queryRows[0] || i >= probe.queryRows[1]) return;
        const mass = probe.sources.reduce((acc, [a, z]) => acc + probs.slice(a, z).reduce((x, y) => x + y, 0), 0);
        want[li]![h] = Math.max(want[li]![h]!, mass);
      });
      expect(maxAbsDiff(got.flat(), want.flat())).toBeLessThan(1e-5);
      expect(Math.max(...want.flat())).toBeGreaterThan(1e-3); // the check compares something
      model.dispose();
    });
  }
});

describe("structural: a training step and an eval of every method on a tiny checkpoint of each family", () => {
  beforeAll(async () => {
    await initBackend("cpu");
  });
  const families = ["llama3", "mistral-sliding", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "smollm3"];
  const ids = Array.from({ length: 21 }, (_, i) => (i * 29 + 3) % 256);

  for (const name of families) {
    it(`${name}: EdgeInfinite gradients are finite, every method prefills and decodes, memory maps follow the head layout`, async () => {
      const dir = join(root, `structural-${name}`);
      writeFamilyCheckpoint(dir, name, { seed: 5 });
      const backbone = await loadBackbone(dir);
      const model = LlamaModel.fromHost(backbone.config, backbone.weights);
      const c = backbone.config;
      model.forward(ids).dispose(); // builds the RoPE tables, which live with the model
      const before = tf.memory().numTensors;
      const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ sinkTokens: 2, windowTokens: 4, segmentLength: 4 }));
      // The module's maps are per head of the family's own head_dim (12 for Qwen3/Gemma, not hidden/heads = 8).
      expect(module.layers[0]!.queryMap.shape).toEqual([c.numHeads, c.headDim, c.headDim]);
      expect(module.layers[0]!.keyMap.shape).toEqual([c.numKvHeads, c.headDim, c.headDim]);
      const g = await sequenceGradients(model, module, ids, 2);
      expect(Number.isFinite(g.loss)).toBe(true);
      for (const t of g.grads.values()) expect(Array.from(await t.data()).every(Number.isFinite)).toBe(true);
      tf.dispose([...g.grads.values()]);
      module.dispose();
      for (const method of knownMethods()) {
        const spec =
          method === "full" ? { name: method } : method === "edgeinfinite" ? { name: method, sinkTokens: 2, windowTokens: 4, segmentLength: 4 } : { name: method, budget: 8 };
        const session = createSession(spec, { model, backbone, promptTokens: ids.length });
        const r = await generate(session, ids, { maxNewTokens: 3, temperature: 0, stopIds: [] });
        expect(r.ids, `${name} ${method}`).toHaveLength(3);
        session.dispose();
      }
      expect(tf.memory().numTensors).toBe(before);
      model.dispose();
    });
  }
});

describe("a layer that already has a sliding window, in each method (docs/loaders.md)", () => {
  beforeAll(async () => {
    await initBackend("cpu");
  });

  it("full KV is the model's window; StreamingLLM and H2O that keep the newest ≥ window tokens give full KV's logits", async () => {
    // mistral-sliding: every layer has window 4, so each query sees only the 4 newest keys. A method whose kept cache
    // ends with those 4 tokens (in position order) therefore computes exactly what full KV computes.
    const dir = join(root, "window-methods");
    writeFamilyCheckpoint(dir, "mistral-sliding", { seed: 3 });
    const backbone = await loadBackbone(dir);
    const model = LlamaModel.fromHost(backbone.config, backbone.weights);
    const prompt = Array.from({ length: 24 }, (_, i) => (i * 13 + 5) % 256);
    const next = [17, 99, 200, 3, 64];
    const run = async (policy: CachePolicy) => {
      const s = new CachedSession(model, policy);
      const out: number[][] = [Array.from(await readAndDispose(await s.prefill(prompt)))];
      for (const id of next) out.push(Array.from(await readAndDispose(await s.step(id))));
      const kept = s.cache.layers[0]!.length;
      s.dispose();
      return { out, kept };
    };
    const full = await run(fullPolicy());
    expect(full.kept).toBe(prompt.length + next.length);
    for (const [name, opts] of [
      ["streaming", { budgetTokens: 8, sinkTokens: 2 }],
      ["h2o", { budgetTokens: 8, recentTokens: 4 }],
    ] as const) {
      const evicting = await run(createPolicy(name, opts));
      expect(evicting.kept, name).toBeLessThanOrEqual(8);
      for (let i = 0; i < full.out.length; i++) expect(maxAbsDiff(evicting.out[i]!, full.out[i]!), `${name} step ${i}`).toBeLessThan(1e-4);
    }
    model.dispose();
  });
});

async function readAndDispose(t: tf.Tensor1D): Promise<Float32Array> {
  const v = (await t.data()) as Float32Array;
  t.dispose();
  return v;
}

describe("published configs of the families people bring", () => {
  const common = { attention_dropout: 0, initializer_range: 0.02, torch_dtype: "bfloat16", transformers_version: "4.45.0", use_cache: true };

  it("Llama 3.2 1B, Qwen2.5 0.5B and Gemma 2 2B parse with every key accounted for, to their published parameter counts", () => {
    const llama = parseHuggingFaceConfig({
      ...common, architectures: ["LlamaForCausalLM"], model_type: "llama", attention_bias: false, mlp_bias: false, pretraining_tp: 1, vocab_size: 128256, hidden_size: 2048,
      intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, tie_word_embeddings: true, max_position_embeddings: 131072,
      rope_theta: 500000, rope_scaling: { factor: 32, high_freq_factor: 4, low_freq_factor: 1, original_max_position_embeddings: 8192, rope_type: "llama3" },
      rms_norm_eps: 1e-5, bos_token_id: 128000, eos_token_id: [128001, 128008, 128009], hidden_act: "silu",
    }, "llama-3.2-1b/config.json");
    const qwen = parseHuggingFaceConfig({
      ...common, architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", vocab_size: 151936, hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24,
      num_attention_heads: 14, num_key_value_heads: 2, max_position_embeddings: 32768, rope_theta: 1000000, sliding_window: 32768, use_sliding_window: false,
      max_window_layers: 21, tie_word_embeddings: true, rms_norm_eps: 1e-6, bos_token_id: 151643, eos_token_id: 151643, hidden_act: "silu",
    }, "qwen2.5-0.5b/config.json");
    const gemma = parseHuggingFaceConfig({
      ...common, architectures: ["Gemma2ForCausalLM"], model_type: "gemma2", attention_bias: false, attn_logit_softcapping: 50, cache_implementation: "hybrid",
      final_logit_softcapping: 30, head_dim: 256, hidden_act: "gelu_pytorch_tanh", hidden_activation: "gelu_pytorch_tanh", vocab_size: 256000, hidden_size: 2304,
      intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8, num_key_value_heads: 4, query_pre_attn_scalar: 256, sliding_window: 4096,
      max_position_embeddings: 8192, rms_norm_eps: 1e-6, rope_theta: 10000, bos_token_id: 2, eos_token_id: 1, pad_token_id: 0,
    }, "gemma-2-2b/config.json");
    // The model cards' counts (tied embeddings counted once).
    expect(parameterCount(llama)).toBe(1_235_814_400);
    expect(parameterCount(qwen)).toBe(494_032_768);
    expect(parameterCount(gemma)).toBe(2_614_341_888);
    expect(stopTokenIds(llama)).toEqual([128001, 128008, 128009]);
    expect(qwen.family!.layers.every((l) => l.window === null)).toBe(true);
    expect(gemma.family!.layers.map((l) => l.window).slice(0, 4)).toEqual([4096, null, 4096, null]);
    expect(gemma.family!.attnLogitSoftcap).toBe(50);
  });

  it("Gemma 3 1B: local layers every layer but each sixth, with their own RoPE base; Phi-3.5-mini: longrope attention factor", () => {
    const gemma3 = parseHuggingFaceConfig({
      ...common, architectures: ["Gemma3ForCausalLM"], model_type: "gemma3_text", attention_bias: false, attn_logit_softcapping: null, cache_implementation: "hybrid",
      final_logit_softcapping: null, head_dim: 256, hidden_activation: "gelu_pytorch_tanh", hidden_size: 1152, intermediate_size: 6912, max_position_embeddings: 32768,
      num_attention_heads: 4, num_hidden_layers: 26, num_key_value_heads: 1, pad_token_id: 0, query_pre_attn_scalar: 256, rms_norm_eps: 1e-6, rope_local_base_freq: 10000,
      rope_scaling: null, rope_theta: 1000000, sliding_window: 512, sliding_window_pattern: 6, vocab_size: 262144, bos_token_id: 2, eos_token_id: [1, 106],
    }, "gemma-3-1b/config.json");
    const layers = gemma3.family!.layers;
    expect(layers.flatMap((l, i) => (l.window === null ? [i] : []))).toEqual([5, 11, 17, 23]);
    expect(layers[0]!.rope!.theta).toBe(10000);
    expect(layers[5]!.rope!.theta).toBe(1000000);
    const phi = parseHuggingFaceConfig({
      ...common, architectures: ["Phi3ForCausalLM"], model_type: "phi3", auto_map: {}, attention_bias: false, embd_pdrop: 0, resid_pdrop: 0, hidden_act: "silu", hidden_size: 3072,
      intermediate_size: 8192, max_position_embeddings: 131072, original_max_position_embeddings: 4096, num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 32,
      rms_norm_eps: 1e-5, rope_theta: 10000, sliding_window: 262144, tie_word_embeddings: false, vocab_size: 32064, bos_token_id: 1, eos_token_id: 32000, pad_token_id: 32000,
      rope_scaling: { type: "longrope", short_factor: Array(48).fill(1), long_factor: Array(48).fill(2) },
    }, "phi-3.5-mini/config.json");
    const scaling = phi.family!.layers[0]!.rope!.scaling;
    expect(scaling?.type).toBe("longrope");
    expect(scaling?.type === "longrope" && scaling.attentionFactor).toBeCloseTo(Math.sqrt(1 + Math.log(32) / Math.log(4096)), 12);
  });
});

describe("sliding-window mask", () => {
  beforeAll(async () => {
    await initBackend("cpu");
  });

  it("host and device masks agree, and a query sees exactly the keys within the window", () => {
    for (const [b0, B, past, S, window] of [[0, 6, 0, 6, 2], [2, 3, 10, 15, 4], [0, 1, 20, 21, 5], [1, 4, 3, 8, 1]] as const) {
      const host = causalMask(b0, B, past, S, false, window).arraySync();
      const device = causalMask(b0, B, past, S, true, window).arraySync();
      expect(device.map((r) => r.map((v) => v + 0))).toEqual(host); // the device mask has −0 where the host has 0
      for (let t = 0; t < B; t++) {
        const q = past + b0 + t;
        for (let j = 0; j < S; j++) expect(host[t]![j] === 0, `query ${q} key ${j}`).toBe(j <= q && q - j < window);
      }
    }
  });

  it("key buckets (webgpu's padding) do not change windowed, soft-capped attention", () => {
    const rand = (shape: [number, number, number], seed: number) => tf.randomNormal(shape, 0, 1, "float32", seed) as tf.Tensor3D;
    const [q, k, v] = [rand([4, 3, 8], 1), rand([2, 37, 8], 2), rand([2, 37, 8], 3)];
    const a = groupedAttention(q, k, v, { window: 5, logitSoftcap: 2, bucketKeys: false }).arraySync() as number[][];
    const b = groupedAttention(q, k, v, { window: 5, logitSoftcap: 2, bucketKeys: true }).arraySync() as number[][];
    expect(maxAbsDiff(a.flat(), b.flat())).toBeLessThan(1e-6);
    tf.dispose([q, k, v]);
  });
});
