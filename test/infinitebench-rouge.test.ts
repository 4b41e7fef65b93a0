/**
 * InfiniteBench's longbook_sum_eng metric against the official code: scripts/make-infinitebench-rouge-fixtures.py ran
 * compute_scores.py's get_score_one_longbook_sum_eng (HF evaluate's rouge call with use_aggregator=False, written out)
 * on google-research's rouge_score over 2,633 made-up cases (empty, punctuation-only, unicode, multi-line, repeated
 * words, several references); our rougeLsum gives the same F within 1e-9 on every case.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { infiniteBenchTaskScore, rougeLsum } from "../src/eval/metrics/infinitebench.js";

const fixture = JSON.parse(readFileSync(join(import.meta.dirname, "fixtures", "infinitebench-official", "rouge.json"), "utf8")) as {
  cases: Array<{ pred: string; label: string[]; score: number }>;
};

describe("longbook_sum_eng: rougeLsum as evaluate + rouge_score compute it", () => {
  it("equals the official score on every fixture case", () => {
    expect(fixture.cases.length).toBeGreaterThan(2000);
    const wrong = fixture.cases.filter((c) => !(Math.abs(rougeLsum(c.pred, c.label) - c.score) <= 1e-9));
    expect(wrong.slice(0, 5)).toEqual([]);
  });

  it("is what the InfiniteBench scorer dispatches to", () => {
    for (const c of fixture.cases.slice(0, 200)) expect(infiniteBenchTaskScore("longbook_sum_eng", c.pred, c.label, "yarn-mistral")).toBeCloseTo(c.score, 12);
  });

  it("splits sentences on newlines only (summary-level LCS, not one LCS over the text)", () => {
    expect(rougeLsum("a b c", ["a b c"])).toBe(1);
    expect(rougeLsum("", ["a"])).toBe(0);
    expect(rougeLsum("c d\na b", ["a b\nc d"])).toBe(1);
  });
});
