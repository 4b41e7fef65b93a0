import { describe, expect, it } from "vitest";
import { needleOutsideWindow, windowSplit, windowSplitMarkdown } from "../src/eval/window-split.js";
import type { SampleRow } from "../src/eval/samples-log.js";

function row(method: string, depth: number | null, score: number, promptTokens = 2049): SampleRow {
  return {
    task: "passkey", dataset: "passkey", source: "synthetic", length: 2048, sampleId: `s${depth}`, depth, method, methodName: method,
    promptTokens, truncated: false, outputIds: [], prediction: "", answers: ["1"], score, ttftMs: 1, decodeTokensPerSecond: 1,
  } as unknown as SampleRow;
}

describe("needle inside / outside the window", () => {
  it("classifies by the tokens after the needle, (1 − depth) × prompt tokens, against the window", () => {
    // 2049 prompt tokens: depth 0.85 leaves 307 tokens after the needle (inside 344); 0.8 leaves 410 (outside).
    expect(needleOutsideWindow({ depth: 0.85, promptTokens: 2049 }, 344)).toBe(false);
    expect(needleOutsideWindow({ depth: 0.8, promptTokens: 2049 }, 344)).toBe(true);
    expect(needleOutsideWindow({ depth: null, promptTokens: 2049 }, 344)).toBeNull();
  });

  it("counts per method and side, and skips rows without a depth", () => {
    const rows = [row("a", 0.05, 1), row("a", 0.5, 0), row("a", 0.95, 1), row("b", 0.05, 0), row("b", 0.95, 1), row("b", null, 1)];
    const split = windowSplit(rows, 344);
    expect(split).toEqual([
      { task: "passkey", length: 2048, method: "a", side: "inside", n: 1, correct: 1, score: 100 },
      { task: "passkey", length: 2048, method: "a", side: "outside", n: 2, correct: 1, score: 50 },
      { task: "passkey", length: 2048, method: "b", side: "inside", n: 1, correct: 1, score: 100 },
      { task: "passkey", length: 2048, method: "b", side: "outside", n: 1, correct: 0, score: 0 },
    ]);
    const md = windowSplitMarkdown(split, ["a", "b"], 344);
    expect(md).toContain("|passkey|2048|outside the last 344 tokens|1/2 (50 %)|0/1 (0 %)|");
    expect(md).toContain("|passkey|2048|inside the last 344 tokens|1/1 (100 %)|1/1 (100 %)|");
  });
});
