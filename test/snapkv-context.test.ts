/**
 * Question-agnostic SnapKV (observation "context", kvpress's setting): the session prefills the context, SnapKV
 * compresses it with the window at the end of the context, then the question enters and attends to the compressed
 * cache. Checked on a hand-made attention pattern (a one-layer stand-in model with one-hot keys, so each query's
 * logits are written directly) against float64 SnapKV (test/reference/scorers64.ts) and a float64 softmax over what
 * stays; where eval samples mark the question (checked by hand on a one-id-per-character tokenizer, a real
 * tokenizer, truncation and a chat template); the harness and registry paths; no tensor leaks.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import type { LlamaModel } from "../src/backbone/model.js";
import { LlamaModel as Model } from "../src/backbone/model.js";
import { loadBackbone, type LoadedBackbone } from "../src/loaders/index.js";
import { CachedSession } from "../src/cache/cached-session.js";
import { snapkvPolicy } from "../src/cache/snapkv.js";
import { methodByName } from "../src/cache/registry.js";
import { parseMethodOptions } from "../src/cache/method.js";
import { methodOptionFlags } from "../src/cli/commands/generate.js";
import { createSession, prepareMethod } from "../src/eval/methods.js";
import { runSample } from "../src/eval/harness.js";
import { samplesForTask, type EvalSample } from "../src/eval/samples.js";
import { parseSuite } from "../src/eval/suite.js";
import { generateTask } from "../src/datasets/synthetic/index.js";
import { loadCorpus } from "../src/datasets/manifest.js";
import { applyChatTemplate } from "../src/eval/longbench-chat.js";
import { loadHuggingFaceTokenizer } from "../src/tokenizers/hf-tokenizer.js";
import type { Tokenizer } from "../src/tokenizers/tokenizer.js";
import { Rng } from "../src/util/rng.js";
import { snapkv64, topN, type Mat } from "./reference/scorers64.js";
import { charTokenizer } from "./fixtures/char-tokenizer.js";

const Hkv = 2;
const g = 2;
const N = 20; // prompt tokens (token id = position)
const C = 16; // context tokens; the question is 16..19
const d = N; // one-hot keys
const W = 2;
const B = 6;

beforeAll(async () => {
  await initBackend("cpu");
});

/** Logits of a query row over the N tokens: `peak` at one token per KV head, a small ramp elsewhere. */
function row(peak: number): number[] {
  return Array.from({ length: N }, (_, i) => (i === peak ? 6 : 0.1 * ((i * 5) % 7)));
}

/**
 * Queries [H][N][d] (float32, logits·√d so that softmax(q·k/√d) has those logits): the context's last W rows look at
 * token 3 (KV head 0) / 7 (KV head 1); the question rows at `questionPeaks`; other rows are zero.
 */
function queries(questionPeaks: [number, number]): Mat[] {
  return Array.from({ length: Hkv * g }, (_, h) => {
    const kv = Math.floor(h / g);
    return Array.from({ length: N }, (_, t) => {
      const logits = t >= C ? row(questionPeaks[kv]!) : t >= C - W ? row([3, 7][kv]!) : new Array<number>(N).fill(0);
      return logits.map((x) => Math.fround(x * Math.sqrt(d)));
    });
  });
}

const keys: Mat[] = Array.from({ length: Hkv }, () => Array.from({ length: N }, (_, i) => Array.from({ length: d }, (_, c) => (c === i ? 1 : 0))));
const rng = new Rng(4);
const values: Mat[] = Array.from({ length: Hkv }, () => Array.from({ length: N }, () => Array.from({ length: d }, () => Math.fround(rng.normal()))));

/**
 * A one-layer stand-in for LlamaModel: token ids are positions; q/k/v rows come from the tables, RoPE is the
 * identity, and the "logits" are the attention output of the last token [H·d].
 */
function stubModel(q: Mat[]): LlamaModel {
  let ids: readonly number[] = [];
  const rows = (table: Mat[]) => tf.tensor3d(table.map((m) => ids.map((t) => m[t]!)).flat(2), [table.length, ids.length, d]);
  const identity = { apply: (x: tf.Tensor3D) => x.clone() };
  return {
    config: { numLayers: 1, numKvHeads: Hkv, headDim: d },
    embed: (t: readonly number[]) => ((ids = t), tf.zeros([t.length, 1])),
    ropeFor: () => identity,
    attentionOptions: () => ({}),
    async runLayersAsync(x: tf.Tensor2D, attend: (l: number, p: object, x: tf.Tensor2D) => tf.Tensor2D, after: (l: number) => Promise<void>) {
      const h = tf.tidy(() => attend(0, { q: rows(q), k: rows(keys), v: rows(values) }, x));
      await after(0);
      return h;
    },
    logits: (hidden: tf.Tensor2D) => hidden.clone(),
  } as unknown as LlamaModel;
}

/** Cached positions per KV head after prefilling the N tokens, and the returned output of the last token. */
async function prefilled(q: Mat[], observation: "question" | "context", questionStart?: number): Promise<{ kept: number[][]; out: number[] }> {
  const s = new CachedSession(stubModel(q), snapkvPolicy({ budgetTokens: B, observationWindow: W, kernelSize: 1, observation }), undefined, questionStart);
  const logits = await s.prefill(Array.from({ length: N }, (_, i) => i));
  const out = Array.from(await logits.data());
  logits.dispose();
  const L = s.cache.layers[0]!;
  const kept = Array.from({ length: Hkv }, (_, h) => Array.from(L.positions.subarray(h * L.length, (h + 1) * L.length)));
  s.dispose();
  return { kept, out };
}

/** Float64 attention output [H·d] of query row `t` over each KV head's `kept` tokens. */
function attention64(q: Mat[], t: number, kept: number[][]): number[] {
  return q.flatMap((rows, h) => {
    const kv = Math.floor(h / g);
    const logits = kept[kv]!.map((i) => keys[kv]![i]!.reduce((s, x, c) => s + x * rows[t]![c]!, 0) / Math.sqrt(d));
    const m = Math.max(...logits);
    const e = logits.map((x) => Math.exp(x - m));
    const z = e.reduce((a, b) => a + b, 0);
    return Array.from({ length: d }, (_, c) => kept[kv]!.reduce((s, i, j) => s + (e[j]! / z) * values[kv]![i]![c]!, 0));
  });
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe("snapkv observation context on a hand-made attention pattern", () => {
  it("votes with the context's last tokens, keeps the question, and the question attends to the compressed cache", async () => {
    const q = queries([9, 13]);
    const { kept, out } = await prefilled(q, "context", C);
    // float64 SnapKV over the context alone (its first C queries and keys): the window C−W..C−1 votes.
    const scores = snapkv64(q.map((m) => m.slice(0, C)), keys.map((m) => m.slice(0, C)), W, 1);
    const want = scores.map((s) => [...topN(s, B - W), ...range(C - W, C), ...range(C, N)]);
    expect(kept).toEqual(want);
    expect(want[0]).toContain(3); // what the context's end looks at …
    expect(want[1]).toContain(7);
    expect(want[0]).not.toContain(9); // … not what the question looks at
    expect(want[1]).not.toContain(13);
    // The last question token saw only the kept context and the question.
    attention64(q, N - 1, want).forEach((x, i) => expect(Math.abs(out[i]! - x)).toBeLessThan(1e-5));
    // Another question: the same context tokens stay.
    expect((await prefilled(queries([12, 1]), "context", C)).kept).toEqual(want);
  });

  it("question (the default) votes with the prompt's last tokens; context without a known question does the same", async () => {
    const q = queries([9, 13]);
    const want = snapkv64(q, keys, W, 1).map((s) => [...topN(s, B - W), ...range(N - W, N)]);
    expect(want[0]).toContain(9);
    expect(want[1]).toContain(13);
    const aware = await prefilled(q, "question", C); // questionStart is ignored
    expect(aware.kept).toEqual(want);
    // Prefilled whole, the last token saw the whole prompt (SnapKV evicts after prefill).
    attention64(q, N - 1, [range(0, N), range(0, N)]).forEach((x, i) => expect(Math.abs(aware.out[i]! - x)).toBeLessThan(1e-5));
    expect((await prefilled(q, "context")).kept).toEqual(want);
  });

  it("leaks no tensor through the split prefill", async () => {
    await prefilled(queries([9, 11]), "context", C); // kernels and backend state warmed
    const before = tf.memory().numTensors;
    await prefilled(queries([9, 11]), "context", C);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("where eval samples mark the question", () => {
  const work = mkdtempSync(join(tmpdir(), "edgeinf-question-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  // charTokenizer: one id per character after BOS, so token index = character index + 1.
  const record = { input: "Who?", context: "word ".repeat(40), answers: ["x"], all_classes: ["x"], length: 40, _id: "r1" };

  function samples(tokenizer: Tokenizer, tasks: string[], extra: Record<string, unknown> = {}, chat = false): EvalSample[] {
    const data = join(work, "data.jsonl");
    writeFileSync(data, JSON.stringify(record) + "\n");
    const suite = parseSuite({ name: "q", backbone: "/x", lengths: [100000], tasks: tasks.map((name) => ({ name, source: "longbench", path: data })), methods: [{ name: "full" }], ...extra }, "<test>", work);
    const chatTemplate = chat
      ? { name: "default", source: "{% for m in messages %}<|user|>{{ m['content'] }}<|end|>{% endfor %}<|assistant|>", bosToken: "<s>", eosToken: "</s>" }
      : null;
    return suite.tasks.flatMap((t) => samplesForTask(suite, t, { tokenizer, corpus: () => [], newlineIds: [], chatTemplate }));
  }

  it("at the record's input as the template places it (LongBench dataset2prompt, written out by hand)", () => {
    const [hotpot, trec, gov] = samples(charTokenizer, ["hotpotqa", "trec", "gov_report"]);
    const instruction = "Answer the question based on the given passages. Only give me the answer and do not output any other words.";
    const before = `${instruction}\n\nThe following are given passages.\n${record.context}\n\n${instruction}\n\nQuestion: `;
    expect(hotpot!.questionStart).toBe(1 + before.length);
    expect(charTokenizer.decode(hotpot!.promptIds.slice(hotpot!.questionStart!))).toBe("Who?\nAnswer:");
    const trecBefore = `Please determine the type of the question below. Here are some examples of questions.\n\n${record.context}\n`;
    expect(trec!.questionStart).toBe(1 + trecBefore.length);
    expect(gov!.questionStart).toBeNull(); // a summary: no {input}, no question
  });

  it("follows maxLength truncation and a chat template", () => {
    const [cut] = samples(charTokenizer, ["hotpotqa"], { maxLength: 60 });
    expect(cut!.promptIds.length).toBe(60);
    expect(cut!.questionStart).toBe(60 - "Who?\nAnswer:".length);
    const [chat] = samples(charTokenizer, ["hotpotqa"], {}, true);
    expect(charTokenizer.decode(chat!.promptIds.slice(chat!.questionStart!))).toBe("Who?\nAnswer:<|end|><|assistant|>");
  });

  it("with a real tokenizer: synthetic passkey (stories260K) and truncated LongBench text (edge-lm)", async () => {
    const { tokenizer } = await loadBackbone(resolve(__dirname, "../../shared/models/stories260K/stories260K.bin"));
    const corpusPath = resolve(__dirname, "../../shared/corpora/gutenberg/heldout");
    const suite = parseSuite({ name: "p", backbone: "/x", corpus: corpusPath, seed: 7, lengths: [200], tasks: [{ name: "passkey", source: "synthetic", count: 2, depths: [0.3] }], methods: [{ name: "full" }] });
    const texts = loadCorpus(corpusPath).texts;
    const got = samplesForTask(suite, suite.tasks[0]!, { tokenizer, corpus: () => texts, newlineIds: [] });
    const records = generateTask("passkey", { tokenizer, corpus: texts, targetTokens: 200, count: 2, seed: 7, depths: [0.3] });
    got.forEach((s, i) => {
      expect(tokenizer.decode(s.promptIds.slice(s.questionStart!)).trim()).toBe(records[i]!.input.trim());
      expect(tokenizer.decode(s.promptIds.slice(0, s.questionStart!)).trim()).toBe(records[i]!.context.trim());
    });
    const edge = await loadHuggingFaceTokenizer(join(import.meta.dirname, "..", "..", "shared", "models", "edge-lm"));
    const [lb] = samples(edge, ["hotpotqa"], { lengths: [64] });
    expect(lb!.truncated).toBe(true);
    expect(edge.decode(lb!.promptIds.slice(lb!.questionStart!)).trim()).toBe("Who?\nAnswer:");
  });
});

describe("snapkv observation context through the registry, the harness and stories260K", () => {
  let backbone: LoadedBackbone;
  let model: Model;
  let prompt: number[];
  const Q = 8;

  beforeAll(async () => {
    backbone = await loadBackbone(resolve(__dirname, "../../shared/models/stories260K/stories260K.bin"));
    model = Model.fromHost(backbone.config, backbone.weights);
    const text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog Max. ";
    prompt = backbone.tokenizer.encode(text + text + text, { bos: true }).slice(0, 64);
  });
  afterAll(() => model?.dispose());

  it("parses from a suite entry and --method-option; refuses other values in one line", () => {
    const descriptor = methodByName("snapkv");
    expect(parseMethodOptions(descriptor, { budget: 16, ...methodOptionFlags(["observation=context"]) })).toEqual({ budget: 16, observation: "context" });
    expect(() => parseMethodOptions(descriptor, { budget: 16, ...methodOptionFlags(["observation=prompt"]) })).toThrow(/method snapkv: observation/);
    const base = { name: "s", backbone: "/x", lengths: [64], tasks: [{ name: "passkey", source: "synthetic" }], corpus: "/c" };
    for (const name of ["snapkv", "pyramidkv", "chunkkv", "adakv"]) {
      expect(parseSuite({ ...base, methods: [{ name, budget: 16, observation: "context" }] }).methods[0]).toMatchObject({ observation: "context" });
      expect(methodByName(name).policy!({ budget: 16, observation: "context" }, 64, `method ${name}`).contextOnly).toBe(true);
      expect(methodByName(name).policy!({ budget: 16 }, 64, `method ${name}`).contextOnly).toBeUndefined();
    }
  });

  it("a session from SessionContext.questionStart holds budget + question after prefill; no tensor leaks", async () => {
    const { numLayers } = model.config;
    const open = () => createSession({ name: "snapkv", budget: 24, observation: "context" }, { model, backbone, promptTokens: prompt.length, questionStart: prompt.length - Q });
    const warm = open(); // the model's RoPE tables grow on first use of a position
    (await warm.prefill(prompt)).dispose();
    (await warm.step(prompt[0]!)).dispose();
    warm.dispose();
    const before = tf.memory().numTensors;
    const s = open();
    (await s.prefill(prompt)).dispose();
    const cached = s as CachedSession;
    expect(cached.cache.layers.map((L) => L.length)).toEqual(Array(numLayers).fill(24 + Q));
    const steps = tf.memory().numTensors;
    (await s.step(prompt[0]!)).dispose();
    expect(tf.memory().numTensors).toBe(steps);
    s.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("the harness hands the sample's questionStart to the method (KV after prefill: budget + question)", async () => {
    const suite = parseSuite({ name: "h", backbone: "/x", lengths: [64], tasks: [{ name: "passkey", source: "synthetic" }], corpus: "/c", methods: [{ name: "full" }], generation: { maxNewTokens: 2 } });
    const method = prepareMethod({ name: "snapkv", budget: 24, observation: "context" }, backbone);
    const sample: EvalSample = {
      task: "passkey", dataset: "passkey", source: "synthetic", length: 64, sampleId: "s", depth: null, promptIds: prompt, truncated: false,
      answers: ["x"], allClasses: null, maxNewTokens: 2, stopIds: [], questionStart: prompt.length - Q,
    };
    const ctx = { model, backbone, backend: "cpu", taskHash: "t", methodHash: "m" };
    const { numLayers, numKvHeads, headDim } = model.config;
    const token = 2 * numKvHeads * headDim * 4;
    expect((await runSample(suite, sample, method, ctx)).kvBytesAfterPrefill).toBe(numLayers * (24 + Q) * token);
    expect((await runSample(suite, { ...sample, questionStart: null }, method, ctx)).kvBytesAfterPrefill).toBe(numLayers * 24 * token);
    method.dispose();
  });
});
