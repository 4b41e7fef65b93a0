/**
 * LongBench data format: JSONL reading with FILE:LINE errors, prompt building (Python str.format
 * semantics, LongBench's templates), pred.py middle truncation, and prediction-file scoring.
 * Expected prompts are spelled out from LongBench/config/dataset2prompt.json by hand.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { EdgeInfError } from "../src/util/errors.js";
import { dataset2maxlen, dataset2prompt } from "../src/eval/longbench-config.js";
import {
  buildPrompt,
  firstLineDatasets,
  formatPythonTemplate,
  readLongBenchJsonl,
  truncateMiddle,
} from "../src/eval/longbench.js";
import { knownDatasets } from "../src/eval/metrics/index.js";
import { scorePredictionsFile } from "../src/eval/score.js";

const dir = mkdtempSync(path.join(tmpdir(), "edgeinf-longbench-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeLines(name: string, lines: string[]): string {
  const file = path.join(dir, name);
  writeFileSync(file, lines.join("\n") + "\n", "utf8");
  return file;
}

const good = (id: string): string =>
  JSON.stringify({ input: "Q?", context: "C", answers: ["A"], all_classes: null, length: 10, _id: id, dataset: "hotpotqa", language: "en" });

describe("readLongBenchJsonl", () => {
  it("reads records, skipping blank lines; a missing all_classes becomes null", () => {
    const noClasses = JSON.stringify({ input: "q", context: "c", answers: ["a", "b"], length: 3, _id: "x" });
    const file = writeLines("ok.jsonl", [good("r1"), "", noClasses]);
    const records = readLongBenchJsonl(file, { onError: "stop" });
    expect(records).toHaveLength(2);
    expect(records[0]).toEqual({ input: "Q?", context: "C", answers: ["A"], all_classes: null, length: 10, _id: "r1", dataset: "hotpotqa", language: "en" });
    expect(records[1]!.all_classes).toBeNull();
    expect(records[1]!.answers).toEqual(["a", "b"]);
  });

  const badFile = (): string =>
    writeLines("bad.jsonl", [
      good("r1"), // line 1
      "{not json", // line 2
      JSON.stringify({ input: "q", context: "c", length: 1, _id: "x" }), // line 3: no answers
      JSON.stringify({ input: "q", context: "c", answers: "A", length: 1, _id: "x" }), // line 4: answers not array
      "", // line 5 (blank)
      JSON.stringify({ input: 5, context: "c", answers: ["a"], length: 1, _id: "x" }), // line 6: input not string
      good("r7"), // line 7
    ]);

  it("stop: throws FILE:LINE for the first bad line", () => {
    const file = badFile();
    expect(() => readLongBenchJsonl(file, { onError: "stop" })).toThrow(EdgeInfError);
    expect(() => readLongBenchJsonl(file, { onError: "stop" })).toThrow(`${file}:2: malformed JSON`);
  });

  it("skip: warns once per bad line with its number and keeps the good records", () => {
    const file = badFile();
    const warnings: string[] = [];
    const records = readLongBenchJsonl(file, { onError: "skip", warn: (msg) => warnings.push(msg) });
    expect(records.map((r) => r._id)).toEqual(["r1", "r7"]);
    expect(warnings).toHaveLength(4);
    expect(warnings[0]).toContain(`${file}:2: malformed JSON`);
    expect(warnings[1]).toContain(`${file}:3: record has no "answers"`);
    expect(warnings[2]).toContain(`${file}:4: "answers" must be an array of strings`);
    expect(warnings[3]).toContain(`${file}:6: "input" must be a string`);
  });

  it("a missing file is a one-line EdgeInfError", () => {
    const missing = path.join(dir, "nope.jsonl");
    expect(() => readLongBenchJsonl(missing, { onError: "stop" })).toThrow(/nope\.jsonl: cannot read.*ENOENT/);
  });
});

describe("buildPrompt and formatPythonTemplate", () => {
  it("fills LongBench's lcc template; braces in the context stay as they are", () => {
    // dataset2prompt.json lcc: "Please complete the code given below. \n{context}Next line of code:\n"
    const prompt = buildPrompt("lcc", { context: "int f() { return {x}; }\n", input: "" });
    expect(prompt).toBe("Please complete the code given below. \nint f() { return {x}; }\nNext line of code:\n");
  });
  it("fills trec's template with context then input", () => {
    // "Please determine the type of the question below. Here are some examples of questions.\n\n{context}\n{input}"
    expect(buildPrompt("trec", { context: "EX", input: "Q" })).toBe(
      "Please determine the type of the question below. Here are some examples of questions.\n\nEX\nQ",
    );
  });
  it("synthetic tasks are context followed by input", () => {
    expect(buildPrompt("passkey", { context: "haystack ", input: "What is the pass key?" })).toBe("haystack What is the pass key?");
  });
  it("Python str.format: {{ }} escapes, unknown/odd fields refused", () => {
    expect(formatPythonTemplate("{{x}} {context}", { context: "C" })).toBe("{x} C");
    expect(() => formatPythonTemplate("{foo}", { context: "C" })).toThrow(/no value for field "\{foo\}"/);
    expect(() => formatPythonTemplate("a}b", { context: "C" })).toThrow(/single '\}'/);
    expect(() => formatPythonTemplate("a{context", { context: "C" })).toThrow(/single '\{'/);
    expect(() => formatPythonTemplate("{context!r}", { context: "C" })).toThrow(EdgeInfError);
    expect(() => buildPrompt("nope", { context: "", input: "" })).toThrow(/no prompt template for dataset "nope"/);
  });
});

describe("longbench-config", () => {
  it("has LongBench's max generation lengths and ours", () => {
    // from LongBench/config/dataset2maxlen.json
    expect(dataset2maxlen.narrativeqa).toBe(128);
    expect(dataset2maxlen.multifieldqa_en).toBe(64);
    expect(dataset2maxlen.hotpotqa).toBe(32);
    expect(dataset2maxlen.gov_report).toBe(512);
    expect(dataset2maxlen.samsum).toBe(128);
    expect(dataset2maxlen["repobench-p"]).toBe(64);
    expect(dataset2maxlen.passkey).toBe(16);
    expect(dataset2maxlen.variable_tracking).toBe(32);
    expect(dataset2maxlen["variable-tracking"]).toBe(32);
    expect(dataset2maxlen["kv-retrieval"]).toBe(16);
  });
  it("covers every scored dataset with a prompt and a max length", () => {
    for (const dataset of knownDatasets) {
      expect(dataset2prompt[dataset], dataset).toBeTypeOf("string");
      expect(dataset2maxlen[dataset], dataset).toBeTypeOf("number");
    }
    expect(Object.keys(dataset2prompt).sort()).toEqual([...knownDatasets].sort());
    // verbatim copy keeps LongBench's typo
    expect(dataset2prompt.narrativeqa).toContain("asconcisely");
  });
  it("first-line datasets are LongBench's four", () => {
    expect([...firstLineDatasets].sort()).toEqual(["lsht", "samsum", "trec", "triviaqa"]);
  });
});

describe("truncateMiddle (pred.py)", () => {
  const ids = Array.from({ length: 10 }, (_, i) => i);
  it("keeps ids[:half] + ids[-half:] with half = int(max/2)", () => {
    expect(truncateMiddle(ids, 4)).toEqual([0, 1, 8, 9]);
    // odd max 5: half = 2 → 4 ids kept
    expect(truncateMiddle(ids, 5)).toEqual([0, 1, 8, 9]);
    expect(truncateMiddle(ids, 7)).toEqual([0, 1, 2, 7, 8, 9]);
  });
  it("leaves short inputs alone and refuses maxLength < 2", () => {
    expect(truncateMiddle(ids, 10)).toEqual(ids);
    expect(truncateMiddle(ids, 50)).toEqual(ids);
    expect(() => truncateMiddle(ids, 1)).toThrow(EdgeInfError);
  });
});

describe("scorePredictionsFile", () => {
  const classes = ["Location", "Other Location", "Human"];
  it("scores a trec file with LongBench's scorer and scorer_e", () => {
    const file = writeLines("trec.jsonl", [
      // first line "Location" → em [Location] → 1
      JSON.stringify({ pred: "\nLocation\nHuman", answers: ["Location"], all_classes: classes, length: 100 }),
      // em [Location, Human] → 1/2
      JSON.stringify({ pred: "Human or Location", answers: ["Location"], all_classes: classes, length: 5000 }),
      // em [Human] → 0
      JSON.stringify({ pred: "Human", answers: ["Location"], all_classes: classes, length: 9000 }),
    ]);
    const result = scorePredictionsFile("trec", file);
    // total 1.5 → round(100·1.5/3, 2) = 50
    expect(result).toEqual({ task: "trec", score: 50, n: 3, byLength: { "0-4k": 100, "4-8k": 50, "8k+": 0 } });
  });
  it("uses the last row's all_classes for every row, as eval.py does", () => {
    const file = writeLines("trec-classes.jsonl", [
      JSON.stringify({ pred: "Location", answers: ["Location"], all_classes: null }),
      JSON.stringify({ pred: "Location", answers: ["Location"], all_classes: classes }),
    ]);
    // both rows scored with `classes` → 1, 1 → 100; no length → no byLength
    expect(scorePredictionsFile("trec", file)).toEqual({ task: "trec", score: 100, n: 2 });
  });
  it("reports bad rows with FILE:LINE and unknown tasks with the known list", () => {
    const file = writeLines("bad-preds.jsonl", [JSON.stringify({ pred: "a", answers: ["a"], all_classes: null }), JSON.stringify({ answers: ["a"] })]);
    expect(() => scorePredictionsFile("hotpotqa", file)).toThrow(`${file}:2: "pred" must be a string`);
    expect(() => scorePredictionsFile("mystery", file)).toThrow(/unknown task "mystery".*known tasks: .*hotpotqa/);
    const empty = writeLines("empty.jsonl", []);
    expect(() => scorePredictionsFile("hotpotqa", empty)).toThrow(/no predictions/);
  });
});
