/**
 * LongBench v2's chain-of-thought mode (pred.py --cot): both prompts and token budgets equal what pred.py's own
 * get_pred hands query_llm (scripts/make-longbench-v2-cot-fixture.py ran it with query_llm stubbed), the second pass
 * is truncated as the first, the schema takes 0shot_cot, and a tiny run on stories260K goes through both passes,
 * scores the second output and resumes.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../src/backend/select.js";
import { generate } from "../src/backbone/generate.js";
import { LlamaModel } from "../src/backbone/model.js";
import { loadBackbone, type LoadedBackbone } from "../src/loaders/index.js";
import { runSuite } from "../src/eval/harness.js";
import { extractLongBenchV2Answer, longBenchV2Prompt, type LongBenchV2Item } from "../src/eval/longbench-v2.js";
import { createSession, prepareMethod } from "../src/eval/methods.js";
import { samplesForTask, truncatedPromptIds, type SampleSources } from "../src/eval/samples.js";
import type { SampleRow } from "../src/eval/samples-log.js";
import { COT_MAX_NEW_TOKENS, cotAnswerPrompt, cotAnswerSample } from "../src/eval/sources/longbench-v2.js";
import { parseSuite, type Suite } from "../src/eval/suite.js";
import { EdgeInfError } from "../src/util/errors.js";

const repo = resolve(import.meta.dirname, "..");
const storiesPath = resolve(repo, "../shared/models/stories260K/stories260K.bin");
const fixture = JSON.parse(readFileSync(join(import.meta.dirname, "fixtures", "longbench-v2-official", "cot.json"), "utf8")) as {
  items: Array<{
    item: LongBenchV2Item;
    outputs: [string, string];
    calls: [{ prompt: string; max_new_tokens: number }, { prompt: string; max_new_tokens: number }];
    row: { response_cot: string; response: string; pred: string | null; judge: boolean };
  }>;
};
const work = mkdtempSync(join(tmpdir(), "edgeinf-v2-cot-"));
let backbone: LoadedBackbone;
let model: LlamaModel;

beforeAll(async () => {
  await initBackend("wasm", { log: () => {} });
  backbone = await loadBackbone(storiesPath);
  model = LlamaModel.fromHost(backbone.config, backbone.weights);
});
afterAll(() => {
  model?.dispose();
  rmSync(work, { recursive: true, force: true });
});

function suite(task: Record<string, unknown>, extra: Record<string, unknown> = {}): Suite {
  return parseSuite({ name: "cot", backbone: storiesPath, seed: 3, lengths: [480], tasks: [{ name: "v2", source: "longbench-v2", ...task }], methods: [{ name: "full" }], warmup: false, ...extra }, "<test>", repo);
}

const sources = (): SampleSources => ({ tokenizer: backbone.tokenizer, corpus: () => [], newlineIds: [] });

function writeItems(name: string, items: readonly unknown[]): string {
  const path = join(work, name);
  writeFileSync(path, JSON.stringify(items));
  return path;
}

describe("LongBench v2 CoT equals pred.py's get_pred", () => {
  it("first prompt, $COT$ = the first output stripped, second prompt, budgets 1024 then 128, the answer from the second output", () => {
    expect(fixture.items).toHaveLength(3);
    const s = suite({ path: writeItems("fixture.json", fixture.items.map((f) => f.item)), prompt: "0shot_cot" }, { lengths: [100000] });
    const samples = samplesForTask(s, s.tasks[0]!, sources());
    for (const [i, { item, outputs, calls, row }] of fixture.items.entries()) {
      expect(longBenchV2Prompt("0shot_cot", item)).toBe(calls[0].prompt);
      const sample = samples[i]!;
      expect(sample.maxNewTokens).toBe(calls[0].max_new_tokens);
      expect(COT_MAX_NEW_TOKENS).toBe(calls[0].max_new_tokens);
      expect(sample.promptIds).toEqual(backbone.tokenizer.encode(calls[0].prompt, { bos: true }));
      // The second prompt, character by character, from the sample's follow-up and the raw first output.
      expect(cotAnswerPrompt(sample.followUp!, outputs[0])).toBe(calls[1].prompt);
      const second = cotAnswerSample(s, sample, outputs[0], backbone.tokenizer);
      expect(second.promptIds).toEqual(backbone.tokenizer.encode(calls[1].prompt, { bos: true }));
      expect(second.maxNewTokens).toBe(calls[1].max_new_tokens);
      expect(second.stopIds).toEqual(sample.stopIds);
      expect(extractLongBenchV2Answer(outputs[1])).toBe(row.pred);
    }
  });

  it("the second pass is truncated in the middle as the first (pred.py's query_llm on every prompt), at an odd length", () => {
    const item = fixture.items[0]!.item;
    const cot = "The ball is blue. ".repeat(40);
    const s = suite({ path: writeItems("one.json", [item]), prompt: "0shot_cot" }, { lengths: [65] });
    const [sample] = samplesForTask(s, s.tasks[0]!, sources());
    const second = cotAnswerSample(s, sample!, cot, backbone.tokenizer);
    const text = fixture.items[0]!.calls[1].prompt.replace("The ball is blue, as the text says twice.", cot.trim());
    expect(cotAnswerPrompt(sample!.followUp!, cot)).toBe(text);
    const expected = truncatedPromptIds(sources(), text, 65, text.slice(text.indexOf("What is the correct answer")), null, 33);
    expect(second.promptIds).toEqual(expected.ids);
    expect(second.truncated).toBe(true);
    expect(second.questionStart).toBe(expected.questionStart);
  });

  it("task and suite maxNewTokens set both passes' limits", () => {
    const data = writeItems("limits.json", [fixture.items[0]!.item]);
    const withTask = suite({ path: data, prompt: "0shot_cot", maxNewTokens: 40 });
    const [a] = samplesForTask(withTask, withTask.tasks[0]!, sources());
    expect([a!.maxNewTokens, a!.followUp!.maxNewTokens]).toEqual([40, 40]);
    const plain = suite({ path: data });
    expect(samplesForTask(plain, plain.tasks[0]!, sources())[0]!.followUp).toBeUndefined();
  });
});

describe("suite schema", () => {
  it("accepts 0shot_cot and lists it among the allowed prompts", () => {
    expect(suite({ path: "d.json", prompt: "0shot_cot" }).tasks[0]).toMatchObject({ prompt: "0shot_cot" });
    let message = "";
    try {
      suite({ path: "d.json", prompt: "0shot_rag" });
    } catch (e) {
      expect(e).toBeInstanceOf(EdgeInfError);
      message = (e as Error).message;
    }
    expect(message).toMatch(/tasks\[0\]\.prompt is "0shot_rag" — allowed values: 0shot, 0shot_cot, 0shot_no_context/);
  });
});

describe("a tiny CoT run on stories260K through the harness", () => {
  const items = ["easy", "hard"].map((difficulty, i) => ({
    _id: `cot-${i}`, domain: "d", sub_domain: "s", difficulty, length: "short", question: `What colour was ball ${i}?`,
    choice_A: "red", choice_B: "blue", choice_C: "green", choice_D: "gold", answer: "AB"[i], context: "Tom had a red ball and a blue cat. ".repeat(30 * (i + 1)),
  }));

  it("runs both passes per sample, records both outputs, scores the second and resumes", async () => {
    const s = suite({ path: writeItems("data.json", items), prompt: "0shot_cot", maxNewTokens: 12 });
    const runDir = join(work, "run");
    const first = await runSuite(s, { runDir, backbone, model, progress: "none", warn: () => {} });
    expect(first.newSamples).toBe(2);
    const rows = readFileSync(join(runDir, "samples.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as SampleRow);
    expect(rows.map((r) => r.sampleId)).toEqual(["cot-0", "cot-1"]);
    const samples = samplesForTask(s, s.tasks[0]!, sources());
    const full = prepareMethod(s.methods[0]!, backbone);
    try {
      for (const [i, r] of rows.entries()) {
        const sample = samples[i]!;
        // First pass: the 0shot_cot prompt, cut to 480 tokens.
        expect(r.truncated).toBe(true);
        expect(r.promptTokens).toBe(sample.promptIds.length);
        expect(r.promptTokens).toBeLessThanOrEqual(480);
        expect(r.cotOutputIds!.length).toBeGreaterThan(0);
        expect(r.cotOutputIds!.length).toBeLessThanOrEqual(12);
        expect(r.cotPrediction).toBe(backbone.tokenizer.decode(r.cotOutputIds!));
        // Second pass: 0shot_cot_ans with the first output, generated afresh; the row's prediction is its output.
        const second = cotAnswerSample(s, sample, r.cotPrediction!, backbone.tokenizer);
        expect(r.answerPass!.promptTokens).toBe(second.promptIds.length);
        expect(r.answerPass!.newTokens).toBe(r.outputIds.length);
        expect(r.newTokens).toBe(r.outputIds.length);
        const session = createSession(full, { model, backbone, promptTokens: second.promptIds.length });
        try {
          const again = await generate(session, second.promptIds, { maxNewTokens: second.maxNewTokens, temperature: 0, stopIds: second.stopIds, seed: 3 });
          expect(r.outputIds).toEqual(again.ids);
        } finally {
          session.dispose();
        }
        expect(r.prediction).toBe(backbone.tokenizer.decode(r.outputIds));
        expect(r.score).toBe(extractLongBenchV2Answer(r.prediction) === r.answers[0] ? 1 : 0);
        expect(r.answerPass!.kvBytesFull).toBeGreaterThan(0);
        expect(r.leakedTensors).toBe(0);
      }
    } finally {
      full.dispose();
    }
    const results = JSON.parse(readFileSync(join(runDir, "results.json"), "utf8")) as { longBenchV2: Array<{ task: string; n: number }> };
    expect(results.longBenchV2[0]).toMatchObject({ task: "v2", n: 2 });

    const again = await runSuite(s, { runDir, backbone, model, progress: "none", warn: () => {} });
    expect(again.newSamples).toBe(0);
    expect(again.resumedSamples).toBe(2);

    // On worker threads the sample (and its follow-up, plain data) crosses to the worker, which runs both passes.
    const threaded = await runSuite(s, { runDir: join(work, "run-2"), backbone, progress: "none", warn: () => {}, workers: 2 });
    const pick = (r: SampleRow) => [r.sampleId, r.cotOutputIds, r.outputIds, r.promptTokens, r.answerPass!.promptTokens, r.score];
    expect(threaded.samples.map(pick)).toEqual(rows.map(pick));
  });
});
