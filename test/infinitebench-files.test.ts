/**
 * InfiniteBench's file-based tasks against its own code (scripts/make-infinitebench-file-fixtures.py ran
 * eval_utils.create_prompt / get_answer on made-up rows for every model, and compute_scores.py's get_score_one_* on
 * 1,200 predictions): prompts equal character by character, templates Python cannot fill are refused, scores agree.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { InfiniteBenchModel } from "../src/datasets/infinitebench.js";
import { infiniteBenchFileAnswers, infiniteBenchFilePrompt, infiniteBenchTemplateWorks, type InfiniteBenchFileRow, type InfiniteBenchFileTask, type InfiniteBenchLabel } from "../src/datasets/infinitebench-files.js";
import { infiniteBenchTaskScore } from "../src/eval/metrics/infinitebench.js";

const fixture = JSON.parse(readFileSync(join(import.meta.dirname, "fixtures", "infinitebench-official", "files.json"), "utf8")) as {
  prompts: Array<{ task: InfiniteBenchFileTask; row: InfiniteBenchFileRow; answer: InfiniteBenchLabel; prompts: Record<InfiniteBenchModel, string | null> }>;
  scores: Array<{ task: InfiniteBenchFileTask; model: InfiniteBenchModel; pred: string; label: InfiniteBenchLabel; score: number }>;
};

describe("InfiniteBench file tasks equal create_prompt, get_answer and compute_scores.py", () => {
  it("prompts for every model whose template Python fills; the others are refused", () => {
    expect(new Set(fixture.prompts.map((p) => p.task)).has("longbook_sum_eng")).toBe(true);
    const wrong: string[] = [];
    for (const { task, row, prompts } of fixture.prompts) {
      for (const [model, official] of Object.entries(prompts) as [InfiniteBenchModel, string | null][]) {
        expect(infiniteBenchTemplateWorks(task, model), `${task} ${model}`).toBe(official !== null);
        if (official !== null && infiniteBenchFilePrompt(task, model, row) !== official) wrong.push(`${task} ${model} ${row.id}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("get_answer: [option, letter] for the choice tasks, the label otherwise (math_calc's nested list unwrapped)", () => {
    for (const { task, row, answer } of fixture.prompts) {
      const expected = (Array.isArray(answer) ? answer : [answer]).flatMap((x) => (task === "math_calc" && Array.isArray(x) ? x : [x])).map(String);
      expect(infiniteBenchFileAnswers(task, row), `${task} ${row.id}`).toEqual(expected);
    }
  });

  it("per-prediction scores on 1,200 predictions", () => {
    expect(fixture.scores.length).toBeGreaterThan(1000);
    const wrong = fixture.scores.filter((c) => {
      const answers = infiniteBenchFileAnswers(c.task, { answer: c.label, options: [] });
      return Math.abs(infiniteBenchTaskScore(c.task, c.pred, answers, c.model) - c.score) > 1e-12;
    });
    expect(wrong).toEqual([]);
  });
});
