/**
 * RULER's scorer against its official code: post-processing and the string_match_all /
 * string_match_part task scores of 400 generated prediction files (Unicode case, control
 * characters, Python whitespace), produced by scripts/make-ruler-fixtures.py; no Python here.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { rulerPostprocess, rulerTaskScore } from "../src/eval/metrics/ruler.js";

interface RulerFile {
  preds: string[];
  refs: string[][];
  postprocessed: string[];
  string_match_all: number;
  string_match_part: number;
}

const { files } = JSON.parse(readFileSync(join(import.meta.dirname, "fixtures", "ruler-official", "scores.json"), "utf8")) as { files: RulerFile[] };

describe("RULER scorer equals scripts/eval/evaluate.py + synthetic/constants.py", () => {
  it("postprocess_pred", () => {
    const wrong = files.flatMap((f) => f.preds.map((p, i) => ({ p, official: f.postprocessed[i], ours: rulerPostprocess(p) }))).filter((x) => x.official !== x.ours);
    expect(wrong).toEqual([]);
  });

  it("string_match_all and string_match_part task scores (to 1e-9)", () => {
    expect(files.length).toBe(400);
    const wrong = files.filter(
      (f) =>
        Math.abs(rulerTaskScore("string_match_all", f.preds, f.refs) - f.string_match_all) > 1e-9 ||
        Math.abs(rulerTaskScore("string_match_part", f.preds, f.refs) - f.string_match_part) > 1e-9,
    );
    expect(wrong).toEqual([]);
  });
});
