/**
 * Differential test against the official LongBench scorer. Every expected value in
 * test/fixtures/longbench-official was produced by running THUDM/LongBench's metrics.py and
 * eval.py (with pltrdy's rouge, Python jieba 0.42.1, fuzzywuzzy and numpy on CPython 3.11) through
 * scripts/make-longbench-fixtures.py; no Python runs here.
 */
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { numpyRound, scorePrediction, segmentZh } from "../src/eval/metrics/index.js";
import { scorePredsDir } from "../src/eval/score.js";

const FIXTURES = join(import.meta.dirname, "fixtures", "longbench-official");
const readJson = <T>(name: string): T => JSON.parse(readFileSync(join(FIXTURES, name), "utf8")) as T;

interface OfficialCase {
  dataset: string;
  pred: string;
  answers: string[];
  all_classes: string[] | null;
  score: number;
  exact?: number;
}

const { cases } = readJson<{ cases: OfficialCase[] }>("cases.json");

/** Cases whose official score differs from `expected` by more than 1e-9, for a readable failure. */
function mismatches(pick: (c: OfficialCase) => boolean, expected: (c: OfficialCase) => number, options = {}): unknown[] {
  return cases
    .filter(pick)
    .map((c) => ({ c, got: scorePrediction(c.dataset, c.pred, c.answers, c.all_classes, options) }))
    .filter(({ c, got }) => !(Math.abs(got - expected(c)) <= 1e-9))
    .map(({ c, got }) => ({ dataset: c.dataset, pred: c.pred.slice(0, 80), answers: c.answers.map((a) => a.slice(0, 80)), official: expected(c), got }));
}

const ZH = new Set(["multifieldqa_zh", "dureader", "vcsum"]);

describe("per-prediction scores equal the official scorer's (eval.py's scorer loop)", () => {
  it("covers every LongBench dataset, Chinese heavily, and the RecursionError boundary", () => {
    expect(new Set(cases.map((c) => c.dataset)).size).toBe(21);
    expect(cases.length).toBeGreaterThan(2500);
    expect(cases.filter((c) => ZH.has(c.dataset)).length).toBeGreaterThan(1000);
    expect(cases.some((c) => c.score === 0 && (c.exact ?? 0) > 0.99)).toBe(true);
  });

  it("English, classification, retrieval, count and code datasets", () => {
    expect(mismatches((c) => !ZH.has(c.dataset), (c) => c.score)).toEqual([]);
  });

  it("Chinese datasets (jieba word splitting)", () => {
    expect(mismatches((c) => ZH.has(c.dataset), (c) => c.score)).toEqual([]);
  });

  it("rougeRecursion 'exact' gives the score the official code gives with the recursion limit raised", () => {
    expect(mismatches((c) => c.exact !== undefined, (c) => c.exact!, { rougeRecursion: "exact" })).toEqual([]);
  });

  it("the RecursionError threshold is one word pair earlier for rouge_zh (one frame deeper)", () => {
    // Identical n-word texts need n + 1 nested `_recon` calls; 9 (10 for rouge_zh) frames sit below.
    const longest = (dataset: string): number =>
      Math.max(...cases.filter((c) => c.dataset === dataset && c.score > 0.99 && c.pred.split(" ").length >= 985).map((c) => c.pred.split(" ").length));
    expect(longest("gov_report")).toBe(990);
    expect(longest("vcsum")).toBe(989);
  });
});

describe("jieba.cut(text, cut_all=False)", () => {
  it("segments every fixture text exactly as Python jieba", () => {
    const texts = readJson<Array<{ text: string; words: string[] }>>("jieba.json");
    expect(texts.length).toBeGreaterThan(1000);
    const wrong = texts.filter(({ text, words }) => JSON.stringify(segmentZh(text)) !== JSON.stringify(words));
    expect(wrong).toEqual([]);
  });
});

describe("numpyRound (scorer_e's round of a numpy float)", () => {
  it("equals round(np.float64(x), 2) on tie-prone values", () => {
    const values = readJson<Array<{ x: number; round: number }>>("numpy-round.json");
    expect(values.filter(({ x, round }) => numpyRound(x, 2) !== round)).toEqual([]);
  });
});

describe("scorePredsDir equals eval.py's result.json", () => {
  const work = mkdtempSync(join(tmpdir(), "edgeinf-lb-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  /** Python's json.dump may write NaN (an empty LongBench-E bucket); read it as null. */
  const parsePython = (text: string): unknown => JSON.parse(text.replace(/\bNaN\b/g, "null"));

  for (const [sub, lengthBuckets] of [["pred", false], ["pred_e", true]] as const) {
    for (const model of readdirSync(join(FIXTURES, sub))) {
      it(`${sub}/${model}${lengthBuckets ? " --e" : ""}`, () => {
        const folder = join(work, sub, model);
        cpSync(join(FIXTURES, sub, model), folder, { recursive: true });
        const official = readFileSync(join(folder, "result.json"), "utf8");
        rmSync(join(folder, "result.json"));
        scorePredsDir(folder, lengthBuckets);
        const ours = readFileSync(join(folder, "result.json"), "utf8");
        expect(parsePython(ours)).toEqual(parsePython(official));
        // Same text apart from key order (eval.py follows os.listdir): Python float spelling, indent 4.
        const lines = (text: string): string[] => text.split("\n").map((line) => line.replace(/,$/, "")).sort();
        expect(lines(ours)).toEqual(lines(official));
      });
    }
  }
});
