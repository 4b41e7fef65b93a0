/**
 * The built CLI on every model family, on the tiny checkpoints made by transformers itself (test/fixtures/families,
 * scripts/make-family-fixtures.py):
 * - every family: `edgeinf info` describes the config and file, `generate` gives transformers' 8 greedy ids, `ppl`
 *   its per-token NLL within 1e-4;
 * - Phi-3, Gemma 2 and Gemma 3: `edgeinf train` of a tiny recipe on the fixture, `eval` of a tiny suite (full,
 *   streaming, snapkv, edgeinfinite with the trained checkpoint), `export onnx` of the checkpoint, loaded and run in
 *   onnxruntime.
 * The float64 reference of every family (test/reference/families64.ts) runs in-process in test/families.test.ts.
 */
import { describe, it, expect } from "vitest";
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import * as ort from "onnxruntime-web";
import { ROOT, runCli, useCliTestDir, type CliResult } from "./fixtures/cli.js";
import { segmentInputs, startMemory } from "./fixtures/module-step-inputs.js";
import { Rng } from "../src/util/rng.js";

const tmp = useCliTestDir("edgeinf-cli-families-");
const SHARED = resolve(ROOT, "../shared");
const FIXTURES = join(ROOT, "test/fixtures/families");

function expectOk(r: CliResult): void {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.code, `stderr:\n${r.stderr}`).toBe(0);
}

// The tests of a describe below run concurrently, but at most two CLI processes at a time: each is one busy core,
// and most of a run is process start and model load, so two overlap well on a 2-core machine without starving it.
let free = 2;
const waiting: (() => void)[] = [];
async function cli(args: readonly string[]): Promise<CliResult> {
  if (free > 0) free--;
  else await new Promise<void>((go) => waiting.push(go));
  try {
    return await runCli(args);
  } finally {
    const next = waiting.shift();
    if (next) next();
    else free++;
  }
}

/** Tests that queue for cli() wait for the runs before them: their time limit covers the whole describe. */
const QUEUED_TIMEOUT_MS = 300_000;

interface FamilyRef {
  prompt: string;
  text: string;
  prompt_ids_transformers: number[];
  ids: number[];
  dtypes: { fp32: { nll: number[]; greedy_full: number[] } };
}
type Json = Record<string, unknown>;

const fixtureNames = existsSync(FIXTURES) ? readdirSync(FIXTURES).filter((n) => existsSync(join(FIXTURES, n, "reference.json"))).sort() : [];
const fixture = (name: string) => {
  const dir = join(FIXTURES, name, "fp32");
  const json = (file: string) => JSON.parse(readFileSync(file, "utf8")) as Json;
  return { dir, ref: json(join(FIXTURES, name, "reference.json")) as unknown as FamilyRef, config: json(join(dir, "config.json")), generation: json(join(dir, "generation_config.json")) };
};

/** Parameters stored in a safetensors file (transformers writes each tensor once: no tied lm_head, no RoPE buffers). */
function storedParameters(file: string): number {
  const buf = readFileSync(file);
  const header = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString("utf8")) as Record<string, { shape?: number[] }>;
  return Object.entries(header).reduce((a, [k, t]) => (k === "__metadata__" ? a : a + t.shape!.reduce((x, y) => x * y, 1)), 0);
}

const ids = (v: unknown): number[] => (v === undefined || v === null ? [] : Array.isArray(v) ? (v as number[]) : [v as number]);

interface Info {
  architecture: string;
  family: string;
  layers: number;
  parameters: number;
  trainedContext: number;
  eosTokenIds: number[];
  slidingWindowLayers: { layer: number; window: number }[];
  heads: number;
  kvHeads: number;
  headDim: number;
}

describe.skipIf(fixtureNames.length === 0).concurrent("edgeinf info, generate and ppl on every family: transformers' own checkpoints, greedy ids and NLL", () => {
  for (const name of fixtureNames) {
    it(name, async () => {
      const { dir, ref, config, generation } = fixture(name);
      const info = await cli(["info", "-m", dir, "--backend", "cpu", "--json"]);
      expectOk(info);
      const i = JSON.parse(info.stdout) as Info;
      expect(i.architecture).toBe((config.architectures as string[])[0]);
      expect(i.layers).toBe(config.num_hidden_layers);
      expect(i.trainedContext).toBe(config.max_position_embeddings);
      expect(i.parameters).toBe(storedParameters(join(dir, "model.safetensors")));
      expect(i.eosTokenIds).toEqual(expect.arrayContaining(ids(config.eos_token_id)));
      // Window layers: those layer_types calls sliding, else every layer when sliding_window is set (Mistral).
      const types = config.layer_types as string[] | undefined;
      const sliding = types ? types.flatMap((t, l) => (t === "sliding_attention" ? [l] : [])) : config.sliding_window ? [...Array(i.layers).keys()] : [];
      expect(i.slidingWindowLayers.map((w) => w.layer)).toEqual(sliding);

      const gen = await cli(["generate", "-m", dir, "--backend", "cpu", "-p", ref.prompt, "-n", "8", "--json"]);
      expectOk(gen);
      const got = JSON.parse(gen.stdout) as { ids: number[]; promptTokens: number };
      expect(got.promptTokens).toBe(ref.prompt_ids_transformers.length);
      // transformers' greedy ids were taken without stop ids: the CLI stops early only at one of the model's EOS ids.
      const want = ref.dtypes.fp32.greedy_full;
      expect(got.ids).toEqual(want.slice(0, got.ids.length));
      if (got.ids.length < want.length) expect([...i.eosTokenIds, ...ids(generation.eos_token_id)]).toContain(got.ids.at(-1));

      // transformers scored ref.ids (the text's first tokens) in one forward: the default window (the trained
      // context) holds them, except llama-dynamic's 32 tokens: there one window as long as them, where its RoPE
      // rescales with the length as transformers' does (the CLI warns and goes on).
      const textFile = join(tmp(), `${name}.txt`);
      const nllFile = join(tmp(), `${name}.nll.json`);
      writeFileSync(textFile, ref.text);
      const n = ref.ids.length;
      const context = n > i.trainedContext ? ["--context", String(n)] : [];
      const ppl = await cli(["ppl", "-m", dir, "--backend", "cpu", "-f", textFile, "--max-tokens", String(n), ...context, "--json", nllFile]);
      expectOk(ppl);
      const perToken = JSON.parse(readFileSync(nllFile, "utf8")) as { ids: number[]; nll: number[] };
      expect(perToken.ids).toEqual(ref.ids.slice(1));
      expect(perToken.nll).toHaveLength(ref.dtypes.fp32.nll.length);
      perToken.nll.forEach((v, t) => expect(Math.abs(v - ref.dtypes.fp32.nll[t]!), `${name} token ${t}`).toBeLessThan(1e-4));
    }, QUEUED_TIMEOUT_MS);
  }
});

// Train, eval and export where the layouts differ most: Phi-3 (fused projections, partial rotary, longrope), Gemma 2
// (soft-capping, window layers shorter than the module's sink + window, norms on attention outputs) and Gemma 3 (q/k
// norms, local layers with a RoPE table of their own). test/families.test.ts trains and runs every method in-process
// on every family; here the CLI's path: recipe → checkpoint → suite → ONNX file.
const TRAINED = ["phi3", "gemma2", "gemma3"].filter((n) => fixtureNames.includes(n));
const METHODS = ["full", "streaming", "snapkv", "edgeinfinite"];

describe.skipIf(TRAINED.length === 0).concurrent("edgeinf train, eval and export on Phi-3, Gemma 2 and Gemma 3", () => {
  for (const name of TRAINED) {
    it(name, async () => {
      const { dir } = fixture(name);
      const work = join(tmp(), `run-${name}`);
      mkdirSync(work, { recursive: true });
      const ckpt = join(work, "ckpt");
      // Sequences of 32 tokens = 4 segments of 8, past sink + window (18), so memory is written; sink + window +
      // segment (26) fits the trained context (128). One sequence per step, one worker: no thread start to wait for.
      const recipe = join(work, "recipe.yaml");
      writeFileSync(
        recipe,
        `name: fam-${name}
seed: 3
backend: cpu
backbone: ${dir}
data:
  sequenceLength: 32
  mixture:
    - { source: text, path: ${SHARED}/corpora/gutenberg/train/Peter_Pan.txt, weight: 1 }
  heldout: { path: ${SHARED}/corpora/gutenberg/heldout/Treasure_Island.txt, sequences: 1 }
edgeinfinite: { sinkTokens: 2, windowTokens: 16, segmentLength: 8 }
training:
  steps: 2
  tbpttSegments: 2
  workers: 1
  optimizer: { lr: 0.01 }
  evalInterval: 2
  checkpointInterval: 2
output: ${ckpt}
`,
      );
      const train = await cli(["train", "--recipe", recipe]);
      expectOk(train);
      const t = JSON.parse(train.stdout) as { steps: number; finalLoss: number; heldoutLoss: number; baselineHeldoutLoss: number };
      expect(t.steps).toBe(2);
      expect([t.finalLoss, t.heldoutLoss, t.baselineHeldoutLoss].every(Number.isFinite)).toBe(true);

      // The byte-level tokenizer of the fixtures spends ~1.5 characters a token: 112 tokens hold a passkey prompt
      // without the intro, inside the trained context. Budget 32 < prompt, so streaming and snapkv evict.
      const suite = join(work, "suite.yaml");
      writeFileSync(
        suite,
        `name: fam-${name}
backbone: ${dir}
corpus: ${SHARED}/corpora/gutenberg/heldout/Treasure_Island.txt
seed: 5
lengths: [112]
tasks:
  - { name: passkey, source: synthetic, count: 1, intro: false, digits: [3, 3] }
methods:
  - { name: full }
  - { name: streaming, budget: 32, sinkTokens: 2 }
  - { name: snapkv, budget: 32 }
  - { name: edgeinfinite, checkpoint: ${ckpt} }
generation: { maxNewTokens: 4 }
warmup: false
`,
      );
      const runDir = join(work, "eval");
      const ev = await cli(["eval", "--suite", suite, "--backend", "cpu", "--run-dir", runDir, "--progress", "none", "--workers", "1"]);
      expectOk(ev);
      const results = JSON.parse(readFileSync(join(runDir, "results.json"), "utf8")) as {
        aggregates: { method: string; n: number }[];
        samples: { method: string; promptTokens: number; kvBytesAfterPrefill: number; kvBytesFull: number; leakedTensors: number; outputIds: number[] }[];
      };
      // edgeinfinite (not edgeinfinite-untrained): the trained checkpoint loaded.
      expect(results.aggregates.map((a) => [a.method, a.n])).toEqual(METHODS.map((m) => [m, 1]));
      for (const s of results.samples) {
        expect(s.promptTokens, s.method).toBeLessThanOrEqual(128);
        expect(s.outputIds.length, s.method).toBeGreaterThan(0);
        if (s.method !== "full") expect(s.kvBytesAfterPrefill, s.method).toBeLessThan(s.kvBytesFull);
        // Gemma 3's local RoPE table once grew during its first sample and counted as 2 leaked tensors.
        expect(s.leakedTensors, s.method).toBe(0);
      }

      const onnx = join(work, "memory.onnx");
      const ex = await cli(["export", "onnx", "--checkpoint", ckpt, "--out", onnx]);
      expectOk(ex);
      const summary = JSON.parse(ex.stdout) as { inputs: string[]; outputs: string[]; layers: number[] };
      expect(statSync(onnx).size).toBeGreaterThan(0);
      // One step of both layers in onnxruntime, at the family's head counts and head size (Gemma's 16 ≠ 48 / 4 heads).
      const { config } = fixture(name);
      const dims = { H: config.num_attention_heads as number, HKV: config.num_key_value_heads as number, D: (config.head_dim as number | undefined) ?? (config.hidden_size as number) / (config.num_attention_heads as number) };
      const session = await ort.InferenceSession.create(onnx);
      try {
        expect([...session.inputNames]).toEqual(summary.inputs);
        expect([...session.outputNames]).toEqual(summary.outputs);
        const rng = new Rng(7);
        const feeds: Record<string, ort.Tensor> = {};
        for (const l of summary.layers) {
          const x = segmentInputs(rng, dims, 1, 3, 2);
          const m = startMemory(rng, dims, 1);
          for (const [k, h] of Object.entries({ q: x.q, k: x.k, v: x.v, local_attn_out: x.local, M: m.M, z: m.z })) feeds[`layer${l}.${k}`] = new ort.Tensor("float32", h.data, h.dims);
        }
        const out = await session.run(feeds);
        for (const l of summary.layers) {
          expect(out[`layer${l}.gated_out`]!.dims).toEqual([1, dims.H, 3, dims.D]);
          expect(out[`layer${l}.M_out`]!.dims).toEqual([1, dims.HKV, dims.D, dims.D]);
          for (const k of ["gated_out", "M_out", "z_out"]) expect((out[`layer${l}.${k}`]!.data as Float32Array).every(Number.isFinite), k).toBe(true);
        }
      } finally {
        await session.release();
      }
    }, QUEUED_TIMEOUT_MS);
  }
});
