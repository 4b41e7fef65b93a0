/**
 * RULER, InfiniteBench and LongBench v2 as suite sources: the schema (one-line errors), prompts sized to the length
 * with the backbone's tokenizer and equal to the builders' (which equal the official ones, test/ruler-niah.test.ts,
 * test/infinitebench-*.test.ts), scoring through the one dispatch against the official scorers' fixtures, and tiny
 * runs on stories260K through the harness for each source, resumed.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../src/backend/select.js";
import { LlamaModel } from "../src/backbone/model.js";
import { loadBackbone, type LoadedBackbone } from "../src/loaders/index.js";
import { infiniteBenchPrompt, kvRetrievalRecord, passkeyRecord, type InfiniteBenchModel, type InfiniteBenchTask } from "../src/datasets/infinitebench.js";
import { infiniteBenchFileAnswers, type InfiniteBenchFileTask, type InfiniteBenchLabel } from "../src/datasets/infinitebench-files.js";
import { RULER_NOISE, seededRulerRandom } from "../src/datasets/ruler/common.js";
import { rulerVtIclNumNoises } from "../src/datasets/ruler/variable-tracking.js";
import { buildRulerRecord, defaultRulerCommonWords, defaultRulerWords, RULER_TASK_NAMES, RULER_TASKS } from "../src/datasets/ruler/tasks.js";
import { runSuite } from "../src/eval/harness.js";
import { longBenchV2Breakdowns, type LongBenchV2Judged } from "../src/eval/longbench-v2.js";
import { pythonRound } from "../src/eval/metrics/python-round.js";
import { samplesForTask, type SampleSources } from "../src/eval/samples.js";
import type { SampleRow } from "../src/eval/samples-log.js";
import { scoreSample } from "../src/eval/score-sample.js";
import { generatedBuilder, infiniteBenchSized } from "../src/eval/sources/infinitebench.js";
import { rulerResources, rulerSized, suiteVtIclNumNoises } from "../src/eval/sources/ruler.js";
import { sampleSeed } from "../src/eval/sources/fit.js";
import { parseSuite, type Suite, type TaskOf, type TaskSpec } from "../src/eval/suite.js";
import { EdgeInfError } from "../src/util/errors.js";

const repo = resolve(import.meta.dirname, "..");
const storiesPath = resolve(repo, "../shared/models/stories260K/stories260K.bin");
const fixtures = join(import.meta.dirname, "fixtures");
const work = mkdtempSync(join(tmpdir(), "edgeinf-sources-"));
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

function suite(tasks: unknown[], extra: Record<string, unknown> = {}): Suite {
  return parseSuite({ name: "sources", backbone: storiesPath, seed: 11, lengths: [320], tasks, methods: [{ name: "full" }], generation: { maxNewTokens: 6, temperature: 0 }, warmup: false, ...extra }, "<test>", repo);
}

function oneLineError(body: () => unknown): string {
  try {
    body();
  } catch (e) {
    expect(e).toBeInstanceOf(EdgeInfError);
    expect((e as Error).message).not.toContain("\n");
    return `${(e as Error).message} — ${(e as EdgeInfError & { fix?: string }).fix ?? ""}`;
  }
  throw new Error("no error");
}

const sources = (): SampleSources => ({ tokenizer: backbone.tokenizer, corpus: () => [], newlineIds: [] });

describe("suite schema: the new sources", () => {
  it("accepts each source with its own keys and defaults", () => {
    const s = suite([
      { name: "niah_single_1", source: "ruler" },
      { name: "ib-kv", source: "infinitebench", task: "kv_retrieval", depths: [0.5] },
      { name: "qa", source: "infinitebench", task: "longbook_qa_eng", path: "data/qa.jsonl", template: "gpt4" },
      { name: "v2", source: "longbench-v2", path: "data.json" },
    ]);
    expect(s.tasks.map((t) => t.source)).toEqual(["ruler", "infinitebench", "infinitebench", "longbench-v2"]);
    expect(s.tasks[1]).toMatchObject({ template: "yarn-mistral" });
    expect(s.tasks[2]).toMatchObject({ path: resolve(repo, "data/qa.jsonl") });
    expect(s.tasks[3]).toMatchObject({ prompt: "0shot", onError: "stop" });
  });

  it("accepts longbook_sum_eng (scored by rougeLsum, test/infinitebench-rouge.test.ts)", () => {
    const s = suite([{ name: "sum", source: "infinitebench", task: "longbook_sum_eng", path: "data/sum.jsonl" }]);
    expect(s.tasks[0]).toMatchObject({ template: "yarn-mistral", path: resolve(repo, "data/sum.jsonl") });
  });

  it("refuses bad entries with one line naming the field and the fix", () => {
    const cases: [unknown, RegExp][] = [
      [{ name: "x", source: "rulr" }, /tasks\[0\]: unknown source "rulr" — known sources: synthetic, longbench, ruler, infinitebench, longbench-v2/],
      [{ name: "x" }, /tasks\[0\]: "source" is missing — add source: one of synthetic/],
      [{ name: "niah_single_1", source: "ruler", path: "x.jsonl" }, /tasks\[0\]: "path" does not apply to source ruler \(it is a key of longbench, infinitebench, longbench-v2\) — remove "path"; keys of source ruler: .*task, targetTokens/],
      [{ name: "passkey", source: "synthetic", template: "gpt4" }, /"template" does not apply to source synthetic/],
      [{ name: "niah_single_9", source: "ruler" }, /unknown RULER task "niah_single_9" — known RULER tasks: niah_single_1, niah_single_2, niah_single_3, .*, qa_2/],
      [{ name: "niah_single_2", source: "ruler" }, /tasks\[0\]: RULER niah_single_2 reads the essay file — add files: \{ essay: PATH \}/],
      [{ name: "qa_2", source: "ruler", files: { squad: "s.json" } }, /RULER qa_2 reads the hotpotqa file/],
      [{ name: "vt", source: "ruler", files: { esay: "e.json" } }, /unknown key "tasks\[0\]\.files\.esay"/],
      [{ name: "longbook_qa_eng", source: "infinitebench" }, /InfiniteBench task "longbook_qa_eng" needs "path" — give its JSONL file/],
      [{ name: "longbook_qa_eng", source: "infinitebench", path: "q.jsonl", template: "kimi" }, /kimi template of longbook_qa_eng cannot be filled .* — use template: yarn-mistral or gpt4/],
      [{ name: "longbook_sum_eng", source: "infinitebench" }, /InfiniteBench task "longbook_sum_eng" needs "path"/],
      [{ name: "longbook_sum_eng", source: "infinitebench", path: "s.jsonl", template: "kimi" }, /kimi template of longbook_sum_eng cannot be filled/],
      [{ name: "passkey", source: "infinitebench", path: "p.jsonl", depths: [0.5] }, /"depths" applies only to generated InfiniteBench tasks/],
      [{ name: "nope", source: "infinitebench" }, /unknown InfiniteBench task "nope" — known InfiniteBench tasks: passkey, number_string, kv_retrieval, longbook_qa_eng/],
      [{ name: "v2", source: "longbench-v2" }, /tasks\[0\]\.path is missing — expected a non-empty string — add it/],
      [{ name: "v2", source: "longbench-v2", path: "d.json", prompt: "0shot_rag" }, /tasks\[0\]\.prompt is "0shot_rag" — allowed values: 0shot, 0shot_cot, 0shot_no_context/],
      [{ name: "v2", source: "longbench-v2", path: "d.json", promt: "0shot" }, /unknown key "tasks\[0\]\.promt" \(did you mean "prompt"\?\)/],
    ];
    for (const [task, pattern] of cases) expect(oneLineError(() => suite([task])), JSON.stringify(task)).toMatch(pattern);
  });
});

describe("prompts sized to the length are the builders' prompts", () => {
  it("RULER: every one of the 13 tasks sized to the length (one more overflows), the prompt the registry builds from the same seed", () => {
    // Tiny stand-ins for the user's files: an essay, SQuAD v2 dev and HotpotQA dev.
    const dir = mkdtempSync(join(tmpdir(), "ruler-files-"));
    const sentence = (i: number): string => `The river ran past mill number ${i} and the miller counted his sacks again. `;
    writeFileSync(join(dir, "essay.json"), JSON.stringify({ text: Array.from({ length: 400 }, (_, i) => sentence(i)).join("") }));
    const paragraph = (i: number): unknown => ({ context: `Paragraph ${i} says the bridge was built in year ${1800 + i}.`, qas: [{ question: `When was bridge ${i} built?`, is_impossible: false, answers: [{ text: `${1800 + i}` }] }] });
    writeFileSync(join(dir, "squad.json"), JSON.stringify({ data: [{ paragraphs: Array.from({ length: 30 }, (_, i) => paragraph(i)) }] }));
    const hotpot = (i: number): unknown => ({ question: `Who kept lighthouse ${i}?`, answer: `keeper ${i}`, context: [[`Lighthouse ${i}`, [`Lighthouse ${i} was kept by keeper ${i}.`, " It stood on a rock."]]] });
    writeFileSync(join(dir, "hotpotqa.json"), JSON.stringify(Array.from({ length: 30 }, (_, i) => hotpot(i))));
    const files = { essay: join(dir, "essay.json"), squad: join(dir, "squad.json"), hotpotqa: join(dir, "hotpotqa.json") };
    try {
      for (const name of RULER_TASK_NAMES) {
        const task = suite([{ name, source: "ruler", files }]).tasks[0] as TaskOf<"ruler">;
        const resources = rulerResources(name, task);
        // stories260K's 512-token vocabulary spends many tokens per word: vt's smallest prompt (its one-shot example) passes 1024.
        for (const length of [2048, 3072]) {
          const vtIcl = name === "vt" ? rulerVtIclNumNoises((text) => backbone.tokenizer.encode(text, { bos: false }).length, seededRulerRandom(sampleSeed("ruler-vt-icl", 11))) : undefined;
          expect(vtIcl).toBe(name === "vt" ? suiteVtIclNumNoises(11, sources()) : undefined);
          const sized = rulerSized(name, 11, length, 0, sources(), resources, vtIcl);
          const request = (size: number) => ({ size, maxSeqLength: length, index: 0, ...(vtIcl === undefined ? {} : { vtIclNumNoises: vtIcl }) });
          const again = buildRulerRecord(name, request(sized.size), seededRulerRandom(sized.seed), resources);
          expect(again.prompt).toBe(sized.prompt);
          expect(again.answers).toEqual(sized.answers);
          expect(sized.ids).toEqual(backbone.tokenizer.encode(again.prompt, { bos: true }));
          expect(sized.ids.length).toBeLessThanOrEqual(length);
          if (name === "cwe" && sized.size === resources.commonWords!.length) {
            // cwe ran out of distinct words before the length: the whole default list is used.
            expect(defaultRulerCommonWords().length).toBe(sized.size);
          } else {
            const bigger = buildRulerRecord(name, request(sized.size + 1), seededRulerRandom(sized.seed), resources);
            expect(backbone.tokenizer.encode(bigger.prompt, { bos: true }).length, `${name}@${length}`).toBeGreaterThan(length);
          }
          if (RULER_TASKS[name].kind !== "qa") for (const a of sized.answers) expect(sized.prompt).toContain(a);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const words = defaultRulerWords();
    expect(words.length).toBeGreaterThan(100);
    // vt's in-context example: the most noise sentences within the token limit, at least RULER's incremental 5.
    const noiseTokens = (text: string): number => 10 * text.split(RULER_NOISE).length - 10; // 10 "tokens" per noise sentence
    expect(rulerVtIclNumNoises(noiseTokens, seededRulerRandom(1))).toBe(50);
    expect(rulerVtIclNumNoises(noiseTokens, seededRulerRandom(1), undefined, 123)).toBe(12);
    expect(rulerVtIclNumNoises(noiseTokens, seededRulerRandom(1), undefined, 20)).toBe(5);
    const edgeIcl = rulerVtIclNumNoises((text) => backbone.tokenizer.encode(text, { bos: false }).length, seededRulerRandom(2));
    expect(edgeIcl).toBeGreaterThanOrEqual(5);
    const s = suite([{ name: "niah_multikey_3", source: "ruler", count: 2 }], { lengths: [640] });
    const samples = samplesForTask(s, s.tasks[0]!, sources());
    expect(samples.map((x) => x.sampleId)).toEqual(["niah_multikey_3_640_11_0", "niah_multikey_3_640_11_1"]);
    expect(samples[0]!.promptIds).toEqual(rulerSized("niah_multikey_3", 11, 640, 0, sources(), {}).ids);
    // vt through the source: the in-context example fitted once per task (suiteVtIclNumNoises).
    const vtSuite = suite([{ name: "vt", source: "ruler", count: 1 }], { lengths: [2048] });
    const vtTask = vtSuite.tasks[0] as TaskOf<"ruler">;
    expect(samplesForTask(vtSuite, vtTask, sources())[0]!.promptIds).toEqual(rulerSized("vt", 11, 2048, 0, sources(), rulerResources("vt", vtTask), suiteVtIclNumNoises(11, sources())).ids);
    expect(samples[0]!.maxNewTokens).toBe(6); // generation.maxNewTokens over RULER's 128
    expect(samples[0]!.stopIds).toEqual([backbone.tokenizer.eosId]); // RULER stops at EOS only
    expect(samples[0]!.answers).not.toEqual(samples[1]!.answers);
    // stopAtNewline: EOS and every newline id the harness found, for any source.
    const lined = suite([{ name: "niah_single_1", source: "ruler", count: 1, stopAtNewline: true }, { name: "passkey", source: "infinitebench", count: 1 }], { lengths: [448] });
    const src = { ...sources(), newlineIds: [13, 99] };
    expect(samplesForTask(lined, lined.tasks[0]!, src)[0]!.stopIds).toEqual([backbone.tokenizer.eosId, 13, 99]);
    expect(samplesForTask(lined, lined.tasks[1]!, src)[0]!.stopIds).toEqual([backbone.tokenizer.eosId]);
  });

  it("InfiniteBench generated: the noise lines / pairs that fit, with the needle at the depth, in the template's prompt", () => {
    for (const [task, template] of [["passkey", "yarn-mistral"], ["number_string", "kimi"], ["kv_retrieval", "gpt4"]] as [InfiniteBenchTask, InfiniteBenchModel][]) {
      const build = generatedBuilder(task, 5, 0.25);
      const sized = infiniteBenchSized(task, template, build, 320, sources());
      expect(sized.prompt).toBe(infiniteBenchPrompt(task, template, build(sized.size)));
      expect(sized.ids.length).toBeLessThanOrEqual(320);
      expect(backbone.tokenizer.encode(infiniteBenchPrompt(task, template, build(sized.size + 1)), { bos: true }).length).toBeGreaterThan(320);
      expect(sized.prompt).toContain(sized.record.answer);
    }
    // passkey: noise * round(depth·n) + needle + the rest, as build_passkey lays it out.
    const build = generatedBuilder("passkey", 5, 0.25);
    const sized = infiniteBenchSized("passkey", "yarn-mistral", build, 320, sources());
    expect(sized.record).toEqual(passkeyRecord(sized.record.answer, sized.size, Math.round(0.25 * sized.size)));
    // kv_retrieval: a smaller size keeps a prefix of the same pairs, the asked pair at floor(depth·n).
    const kv = generatedBuilder("kv_retrieval", 5, 0.5);
    const four = kv(4);
    const pairs = [...four.context.matchAll(/"([0-9a-f-]{36})": "([0-9a-f-]{36})"/g)].map((m) => [m[1]!, m[2]!] as [string, string]);
    expect(four).toEqual(kvRetrievalRecord(pairs, 4, 2));
    expect(kv(2).context).toBe(kvRetrievalRecord(pairs, 2, 1).context);
  });
});

describe("scores through the one dispatch equal the official scorers", () => {
  const ruler: TaskSpec = { name: "niah_single_1", source: "ruler", onError: "stop" };
  it("RULER: per-sample string_match_all on postprocess_pred, ×100 averaged, equals evaluate.py on 400 files", () => {
    const { files } = JSON.parse(readFileSync(join(fixtures, "ruler-official", "scores.json"), "utf8")) as { files: Array<{ preds: string[]; refs: string[][]; string_match_all: number }> };
    const wrong = files.filter((f) => {
      const total = f.preds.reduce((sum, p, i) => sum + scoreSample(ruler, { dataset: "niah_single_1", answers: f.refs[i]!, allClasses: null }, p), 0);
      return Math.abs(pythonRound((total / f.preds.length) * 100, 2) - f.string_match_all) > 1e-9;
    });
    expect(files).toHaveLength(400);
    expect(wrong).toEqual([]);
  });

  it("InfiniteBench: generated and file tasks equal compute_scores.py", () => {
    const generated = JSON.parse(readFileSync(join(fixtures, "infinitebench-official", "generated.json"), "utf8")) as { scores: Array<{ task: string; pred: string; label: string; score: number }> };
    const files = JSON.parse(readFileSync(join(fixtures, "infinitebench-official", "files.json"), "utf8")) as { scores: Array<{ task: InfiniteBenchFileTask; model: InfiniteBenchModel; pred: string; label: InfiniteBenchLabel; score: number }> };
    const spec = (task: string, template: InfiniteBenchModel): TaskSpec => ({ name: task, source: "infinitebench", template, onError: "stop" });
    const wrongGenerated = generated.scores.filter((c) => scoreSample(spec(c.task, "yarn-mistral"), { dataset: c.task, answers: [c.label], allClasses: null }, c.pred) !== c.score);
    const wrongFiles = files.scores.filter((c) => scoreSample(spec(c.task, c.model), { dataset: c.task, answers: infiniteBenchFileAnswers(c.task, { answer: c.label, options: [] }), allClasses: null }, c.pred) !== c.score);
    expect(wrongGenerated).toEqual([]);
    expect(wrongFiles).toEqual([]);
  });

  it("LongBench v2: extract_answer == answer per sample; the breakdown is result.py's table", () => {
    const fixture = JSON.parse(readFileSync(join(fixtures, "longbench-v2-official", "v2.json"), "utf8")) as { runs: Record<string, Array<LongBenchV2Judged & { answer: string }>>; resultTxt: string };
    const v2: TaskSpec = { name: "v2", source: "longbench-v2", path: "x", prompt: "0shot", onError: "stop" };
    for (const line of fixture.resultTxt.split("\n").slice(1)) {
      const [name, ...values] = line.split("\t");
      const rows = fixture.runs[name!]!.map((j) => ({
        task: "v2", length: 2048, method: name!, source: "longbench-v2", answers: [j.answer], groups: { difficulty: j.difficulty, length: j.length },
        prediction: j.pred === null ? "I cannot tell." : `**The correct answer is (${j.pred})**`,
      }));
      for (const [i, r] of rows.entries()) expect(scoreSample(v2, { dataset: "longbench-v2", answers: r.answers, allClasses: null }, r.prediction)).toBe(fixture.runs[name!]![i]!.judge ? 1 : 0);
      const [cell] = longBenchV2Breakdowns(rows);
      const a = cell!.accuracy;
      expect([a.overall, a.easy, a.hard, a.short, a.medium, a.long].map((v) => v.toFixed(1))).toEqual(values);
    }
  });
});

describe("tiny runs on stories260K through the harness", () => {
  const qaRows = [
    { id: 0, context: "Tom had a red ball. ".repeat(120), input: "What color was the ball?", answer: ["red"], options: [] },
    { id: 1, context: "Lily saw a big dog. ".repeat(5), input: "What did Lily see?", answer: ["a big dog"], options: [] },
  ];
  const v2Items = ["easy", "hard", "easy"].map((difficulty, i) => ({
    _id: `v2-${i}`, domain: "d", sub_domain: "s", difficulty, length: ["short", "medium", "long"][i], question: `Question ${i}?`,
    choice_A: "red", choice_B: "blue", choice_C: "green", choice_D: "gold", answer: "ABC"[i], context: "Once upon a time there was a cat. ".repeat(40 * (i + 1)),
  }));

  function tasks(): unknown[] {
    const qa = join(work, "longbook_qa_eng.jsonl");
    writeFileSync(qa, qaRows.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const data = join(work, "data.json");
    writeFileSync(data, JSON.stringify(v2Items));
    return [
      { name: "niah_single_1", source: "ruler", count: 2, stopAtNewline: true },
      { name: "passkey", source: "infinitebench", count: 2, depths: [0.1, 0.9] },
      { name: "longbook_qa_eng", source: "infinitebench", path: qa },
      { name: "v2", source: "longbench-v2", path: data },
    ];
  }

  it("every source runs, rows are scored by the dispatch, LongBench v2 is broken down, and a rerun skips every row", async () => {
    const s = suite(tasks(), { lengths: [480] });
    const runDir = join(work, "run");
    const first = await runSuite(s, { runDir, backbone, model, progress: "none", warn: () => {} });
    expect(first.newSamples).toBe(2 + 2 + 2 + 3);
    const rows = readFileSync(join(runDir, "samples.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as SampleRow);
    expect(rows.map((r) => `${r.source}:${r.sampleId}`)).toEqual([
      "ruler:niah_single_1_480_11_0", "ruler:niah_single_1_480_11_1",
      "infinitebench:passkey_480_11_0_d0.1", "infinitebench:passkey_480_11_1_d0.9",
      "infinitebench:0", "infinitebench:1",
      "longbench-v2:v2-0", "longbench-v2:v2-1", "longbench-v2:v2-2",
    ]);
    for (const r of rows) {
      expect(r.promptTokens).toBeLessThanOrEqual(480);
      expect(r.newTokens).toBeLessThanOrEqual(6);
      const task = s.tasks.find((t) => t.name === r.task)!;
      expect(r.score).toBe(scoreSample(task, { dataset: r.dataset, answers: r.answers, allClasses: null }, r.prediction));
    }
    // The long book row and the long v2 items were cut in the middle to 480 tokens; the short book row was not.
    expect(rows.filter((r) => r.truncated).map((r) => r.sampleId)).toEqual(["0", "v2-0", "v2-1", "v2-2"]);
    expect(rows.find((r) => r.sampleId === "v2-1")!.groups).toEqual({ difficulty: "hard", length: "medium" });
    const results = JSON.parse(readFileSync(join(runDir, "results.json"), "utf8")) as { longBenchV2: Array<{ task: string; n: number; accuracy: Record<string, number | null> }> };
    expect(results.longBenchV2).toHaveLength(1);
    expect(results.longBenchV2[0]).toMatchObject({ task: "v2", n: 3 });
    expect(Object.keys(results.longBenchV2[0]!.accuracy)).toEqual(["overall", "easy", "hard", "short", "medium", "long"]);
    expect(readFileSync(join(runDir, "results.md"), "utf8")).toContain("## LongBench v2 accuracy by difficulty and length");

    const again = await runSuite(s, { runDir, backbone, model, progress: "none", warn: () => {} });
    expect(again.newSamples).toBe(0);
    expect(again.resumedSamples).toBe(9);
  });
});
