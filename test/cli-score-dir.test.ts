/**
 * `edgeinf eval score --preds-dir pred/MODEL [--e]` through the built CLI: result.json written as
 * LongBench's eval.py writes it, byte for byte (fixture folder with one dataset, scored by the
 * official eval.py in scripts/make-longbench-fixtures.py).
 */
import { cpSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, expectOneLineError, runCliSync, useCliTestDir } from "./fixtures/cli.js";

const dir = useCliTestDir("edgeinf-cli-score-dir-");
const TIES = join(ROOT, "test", "fixtures", "longbench-official", "pred_e", "ties");

describe("edgeinf eval score --preds-dir", () => {
  it("--e writes eval.py's result.json (numpy rounding of LongBench-E buckets)", () => {
    const folder = join(dir(), "ties");
    cpSync(TIES, folder, { recursive: true });
    rmSync(join(folder, "result.json"));
    const r = runCliSync(["eval", "score", "--preds-dir", folder, "--e"]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(folder, "result.json"), "utf8")).toBe(readFileSync(join(TIES, "result.json"), "utf8"));
    expect(JSON.parse(r.stdout)).toEqual({ passage_count: { "0-4k": 0.02, "4-8k": 0.06, "8k+": 5.62 } });
  });

  it("bad input: one line naming the problem", () => {
    const alone = { noNoise: true };
    expectOneLineError(runCliSync(["eval", "score", "--preds-dir", join(dir(), "nope")]), alone, /nope: cannot read predictions folder \(ENOENT\)/);
    expectOneLineError(runCliSync(["eval", "score", "--preds-dir", TIES, "--task", "trec"]), alone, /--preds-dir scores a whole folder/);
    expectOneLineError(runCliSync(["eval", "score"]), alone, /needs --task and --preds \(or --preds-dir\)/);
  });
});
