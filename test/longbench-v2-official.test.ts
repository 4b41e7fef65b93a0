/**
 * LongBench v2 against its own code (scripts/make-longbench-v2-fixtures.py ran pred.py's prompt
 * statements and extract_answer, and result.py on generated result files): prompts equal character
 * by character (placeholders inside substituted text, Python strip), answers and accuracy tables equal.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { extractLongBenchV2Answer, longBenchV2Accuracy, longBenchV2Prompt, type LongBenchV2Item, type LongBenchV2Judged, type LongBenchV2Prompt } from "../src/eval/longbench-v2.js";

const fixture = JSON.parse(readFileSync(join(import.meta.dirname, "fixtures", "longbench-v2-official", "v2.json"), "utf8")) as {
  items: Array<{ item: LongBenchV2Item; cot: string; prompts: Record<LongBenchV2Prompt, string> }>;
  answers: Array<{ response: string; pred: string | null }>;
  runs: Record<string, LongBenchV2Judged[]>;
  resultTxt: string;
};

describe("LongBench v2 equals pred.py / result.py", () => {
  it("0-shot, CoT, CoT-answer and no-context prompts, 60 generated items", () => {
    const wrong = fixture.items.flatMap(({ item, cot, prompts }) =>
      (Object.keys(prompts) as LongBenchV2Prompt[]).filter((kind) => longBenchV2Prompt(kind, item, cot) !== prompts[kind]).map((kind) => `${item._id} ${kind}`),
    );
    expect(wrong).toEqual([]);
  });

  it("extract_answer", () => {
    for (const { response, pred } of fixture.answers) expect(extractLongBenchV2Answer(response), response).toBe(pred);
  });

  it("result.py's table: overall, easy, hard, short, medium, long", () => {
    const lines = fixture.resultTxt.split("\n");
    expect(lines[0]).toBe("Model\tOverall\tEasy\tHard\tShort\tMedium\tLong");
    for (const line of lines.slice(1)) {
      const [model, ...values] = line.split("\t");
      const acc = longBenchV2Accuracy(fixture.runs[model!]!);
      expect([acc.overall, acc.easy, acc.hard, acc.short, acc.medium, acc.long].map((v) => v.toFixed(1))).toEqual(values);
    }
  });
});
