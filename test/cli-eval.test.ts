/**
 * `edgeinf eval`, `edgeinf eval score` and `edgeinf report` through the built CLI (node dist/src/cli/main.js),
 * as a user runs them: eval/quick.yaml on stories260K (wasm) limited to a few samples, restart and Ctrl-C
 * resume, LongBench scoring of a hand-made predictions file, report plots (SVG and PNG), and one-line errors for bad
 * input.
 */
import { describe, it, expect, beforeAll } from "vitest";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { SampleRow } from "../src/eval/samples-log.js";
import type { AggregateRow } from "../src/eval/tables.js";
import { countPixels, decodePng, svgSize } from "./fixtures/png.js";
import { CLI, ROOT, cliEnv, expectOneLineError, runCliSync, useCliTestDir, type CliResult } from "./fixtures/cli.js";

const storiesPath = resolve(ROOT, "../shared/models/stories260K/stories260K.bin");
const corpusPath = resolve(ROOT, "../shared/corpora/gutenberg/heldout");

/** Bytes of one cached token in stories260K: keys + values, 5 layers × 4 KV heads × head dim 8, float32. */
const STORIES_TOKEN_BYTES = 2 * 5 * 4 * 8 * 4;
/**
 * eval/quick.yaml: lengths, and the subset run here. Its edgeinfinite method reads checkpoints/quickstart when the
 * main job (npm run quickstart) has made it, labelled edgeinfinite; otherwise it runs untrained.
 */
const QUICK_LENGTHS = [256, 512, 1024];
const EDGE_LABEL = existsSync(join(ROOT, "checkpoints/quickstart/latest.json")) ? "edgeinfinite" : "edgeinfinite-untrained";
const SUBSET = ["full", "streaming", EDGE_LABEL];
const QUICK = ["eval", "--suite", "eval/quick.yaml", "--backend", "wasm", "--progress", "lines", "--methods", "full,streaming,edgeinfinite"];

/** Scratch folder of this file (after a build of dist/ if stale). */
const dir = useCliTestDir("edgeinf-cli-eval-");

function readRows(runDir: string): SampleRow[] {
  return readFileSync(join(runDir, "samples.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as SampleRow);
}

const key = (r: SampleRow) => JSON.stringify([r.task, r.length, r.sampleId, r.method]);


describe("edgeinf eval", () => {
  let runDir: string;
  let first: CliResult;

  beforeAll(() => {
    runDir = join(dir(), "quick");
    first = runCliSync([...QUICK, "--limit", "1", "--run-dir", runDir]);
  });

  it("runs eval/quick.yaml, prints the comparison and says where the results went", () => {
    expect(first.stderr).not.toMatch(/^error/m);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain("# quick");
    expect(first.stdout).toContain(`|task|length|${SUBSET.join("|")}|`);
    expect(first.stdout).toContain("|task|length|method|n|score|TTFT ms|");
    // One progress line per sample, then the summary on stderr.
    expect(first.stderr.match(/^eval \d+\/9 /gm)).toHaveLength(9);
    expect(first.stderr).toContain(`9 samples run, 0 already finished in ${runDir}`);
    expect(first.stderr).toContain(join(runDir, "results.csv"));
    for (const f of ["samples.jsonl", "run.json", "results.csv", "results.json", "results.md", "samples.csv"]) expect(existsSync(join(runDir, f)), f).toBe(true);
  });

  it("writes consistent rows: scores in [0, 100], TTFT > 0, streaming keeps its 128-token budget", () => {
    const rows = readRows(runDir);
    expect(rows).toHaveLength(QUICK_LENGTHS.length * SUBSET.length);
    expect(new Set(rows.map(key)).size).toBe(rows.length);
    for (const r of rows) {
      expect(r.score).toBeGreaterThanOrEqual(0);
      expect(r.score).toBeLessThanOrEqual(1);
      expect(r.ttftMs).toBeGreaterThan(0);
      expect(r.backend).toBe("wasm");
      expect(r.leakedTensors).toBe(0);
    }

    const results = JSON.parse(readFileSync(join(runDir, "results.json"), "utf8")) as { suite: string; aggregates: AggregateRow[]; samples: SampleRow[] };
    expect(results.suite).toBe("quick");
    expect(results.samples).toHaveLength(9);
    expect(results.aggregates.map((a) => `${a.length}/${a.method}`)).toEqual(QUICK_LENGTHS.flatMap((l) => SUBSET.map((m) => `${l}/${m}`)));
    const cell = (length: number, method: string) => results.aggregates.find((a) => a.length === length && a.method === method)!;
    for (const a of results.aggregates) {
      expect(a.n).toBe(1);
      expect(a.score).toBeGreaterThanOrEqual(0);
      expect(a.score).toBeLessThanOrEqual(100);
      expect(a.ttftMs).toBeGreaterThan(0);
      expect(a.peakKvBytes).toBeGreaterThanOrEqual(a.kvBytesAfterPrefill);
      const row = rows.find((r) => r.length === a.length && r.method === a.method)!;
      expect(a.score).toBeCloseTo(100 * row.score, 9);
      expect(a.kvBytesAfterPrefill).toBe(row.kvBytesAfterPrefill);
    }
    for (const length of QUICK_LENGTHS) {
      const full = cell(length, "full");
      expect(full.kvBytesAfterPrefill).toBe(full.promptTokens * STORIES_TOKEN_BYTES);
      expect(cell(length, "streaming").kvBytesAfterPrefill).toBe(128 * STORIES_TOKEN_BYTES);
      expect(cell(length, "streaming").kvBytesAfterPrefill).toBeLessThan(full.kvBytesAfterPrefill);
    }
    for (const length of [512, 1024]) expect(cell(length, EDGE_LABEL).kvBytesAfterPrefill).toBeLessThan(cell(length, "full").kvBytesAfterPrefill);

    // results.csv: header + one line per cell, same numbers as the JSON.
    const csv = readFileSync(join(runDir, "results.csv"), "utf8").trim().split("\n");
    const header = csv[0]!.split(",");
    expect(csv).toHaveLength(1 + 9);
    for (const [i, line] of csv.slice(1).entries()) {
      const c = Object.fromEntries(line.split(",").map((v, j) => [header[j]!, v]));
      const a = results.aggregates[i]!;
      expect([c["task"], Number(c["length"]), c["method"]]).toEqual([a.task, a.length, a.method]);
      expect(Number(c["score"])).toBeCloseTo(a.score, 9);
      expect(Number(c["kvBytesAfterPrefill"])).toBe(a.kvBytesAfterPrefill);
    }
    const md = readFileSync(join(runDir, "results.md"), "utf8");
    for (const m of SUBSET) expect(md).toContain(`|${m}|`);
    expect(readFileSync(join(runDir, "samples.csv"), "utf8").trim().split("\n")).toHaveLength(1 + 9);
  });

  it("restarted with the same run dir skips every finished sample", () => {
    const before = readFileSync(join(runDir, "samples.jsonl"), "utf8");
    const again = runCliSync([...QUICK, "--limit", "1", "--run-dir", runDir]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain(`0 samples run, 9 already finished in ${runDir}`);
    expect(again.stderr).not.toMatch(/^eval \d+\/9 /m);
    expect(readFileSync(join(runDir, "samples.jsonl"), "utf8")).toBe(before);
    const invocations = (JSON.parse(readFileSync(join(runDir, "run.json"), "utf8")) as { invocations: { newSamples: number; complete: boolean }[] }).invocations;
    expect(invocations.map((i) => [i.newSamples, i.complete])).toEqual([[9, true], [0, true]]);
    // The same table as the first run printed.
    expect(again.stdout).toBe(first.stdout);
  });

  it("Ctrl-C stops between samples and writes the tables; the restart runs only the rest", async () => {
    const sigDir = join(dir(), "sigint");
    const args = [...QUICK, "--limit", "1", "--run-dir", sigDir];
    const total = QUICK_LENGTHS.length * SUBSET.length;
    const interrupted = await new Promise<CliResult>((done, failed) => {
      const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: cliEnv() });
      let stdout = "";
      let stderr = "";
      let sent = false;
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
        if (!sent && /^eval 1\//m.test(stderr)) {
          sent = true;
          child.kill("SIGINT");
        }
      });
      child.on("error", failed);
      child.on("close", (code, signal) => done({ code, signal, stdout, stderr }));
    });
    expect(interrupted.code, interrupted.stderr).toBe(130);
    expect(interrupted.stderr).toContain("interrupt: stopping after the current sample");
    expect(interrupted.stderr).toMatch(/interrupted after \d+ finished samples: run the same command again/);
    const partial = readRows(sigDir);
    expect(partial.length).toBeGreaterThanOrEqual(1);
    expect(partial.length).toBeLessThan(total);
    // Tables of the finished samples were written, and printed.
    const results = JSON.parse(readFileSync(join(sigDir, "results.json"), "utf8")) as { samples: SampleRow[] };
    expect(results.samples).toHaveLength(partial.length);
    expect(interrupted.stdout).toContain("|task|length|method|n|score|");
    const run = JSON.parse(readFileSync(join(sigDir, "run.json"), "utf8")) as { invocations: { complete: boolean }[] };
    expect(run.invocations.at(-1)!.complete).toBe(false);

    const before = readFileSync(join(sigDir, "samples.jsonl"), "utf8");
    const resumed = runCliSync(args);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain(`${total - partial.length} samples run, ${partial.length} already finished`);
    expect(resumed.stderr.match(/^eval \d+\/\d+ /gm)).toHaveLength(total - partial.length);
    const all = readRows(sigDir);
    expect(all).toHaveLength(total);
    expect(new Set(all.map(key)).size).toBe(total);
    // Finished lines untouched, the rest appended: no sample ran twice.
    expect(readFileSync(join(sigDir, "samples.jsonl"), "utf8").startsWith(before)).toBe(true);
  });

  it("report prints the comparison, rebuilds the tables from samples.jsonl and writes both plots as SVG and PNG", () => {
    rmSync(join(runDir, "results.json"));
    const r = runCliSync(["report", runDir]);
    expect(r.stderr).not.toMatch(/^error/m);
    // The rasteriser loaded and found a font: no "PNG plots skipped" / "no text" warning.
    expect(r.stderr).not.toMatch(/^warning/m);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`|task|length|${SUBSET.join("|")}|`);
    expect(existsSync(join(runDir, "results.json"))).toBe(true);
    const pngs: Buffer[] = [];
    for (const name of ["score_vs_kv", "ttft_vs_length"]) {
      const svgPath = join(runDir, `${name}.svg`);
      const pngPath = join(runDir, `${name}.png`);
      expect(r.stderr).toContain(svgPath);
      expect(r.stderr).toContain(pngPath);
      const svg = readFileSync(svgPath, "utf8");
      expect(svg.startsWith("<svg")).toBe(true);
      for (const m of SUBSET) expect(svg).toContain(m);
      const png = readFileSync(pngPath);
      pngs.push(png);
      const img = decodePng(png);
      const size = svgSize(svg);
      expect([img.width, img.height]).toEqual([2 * size.width, 2 * size.height]);
      expect(png.length).toBeGreaterThan(10_000);
      const pixels = countPixels(img);
      expect(pixels.coloured).toBeGreaterThan(200);
      // Text: near-black pixels, some in the title band at the top.
      expect(pixels.dark).toBeGreaterThan(2000);
      expect(countPixels(img, 0, 40).dark).toBeGreaterThan(100);
    }
    expect(pngs[0]!.equals(pngs[1]!)).toBe(false);
  });
});

describe("edgeinf eval score", () => {
  it("scores hotpotqa predictions with qa_f1 as LongBench's eval.py, with length buckets", () => {
    // qa_f1 by hand (normalize: lower case, drop punctuation and articles, split on spaces; F1 of token overlap):
    //   "The Eiffel Tower" vs "Eiffel Tower": [eiffel tower] both → 1
    //   "Paris is in France" vs "Paris, France": 2 common of 4 predicted / 2 true → P 1/2, R 1, F1 2/3
    //   "Bonn city" vs ["Berlin", "Bonn"]: max over answers; vs "bonn" → P 1/2, R 1, F1 2/3
    //   "London" vs "Berlin" → 0
    // score = round(100 × (1 + 2/3 + 2/3 + 0) / 4, 2) = 58.33; buckets by length: 0-4k (1, 2/3) → 83.33,
    // 4-8k (2/3) → 66.67, 8k+ (0) → 0.
    const preds = join(dir(), "hotpotqa.jsonl");
    const rows = [
      { pred: "The Eiffel Tower", answers: ["Eiffel Tower"], all_classes: null, length: 1000 },
      { pred: "Paris is in France", answers: ["Paris, France"], all_classes: null, length: 3000 },
      { pred: "Bonn city", answers: ["Berlin", "Bonn"], all_classes: null, length: 5000 },
      { pred: "London", answers: ["Berlin"], all_classes: null, length: 9000 },
    ];
    writeFileSync(preds, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const json = runCliSync(["eval", "score", "--task", "hotpotqa", "--preds", preds, "--json"]);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ task: "hotpotqa", score: 58.33, n: 4, byLength: { "0-4k": 83.33, "4-8k": 66.67, "8k+": 0 } });
    const text = runCliSync(["eval", "score", "--task", "hotpotqa", "--preds", preds]);
    expect(text.code).toBe(0);
    expect(text.stdout.trim()).toBe("hotpotqa: 58.33 (4 predictions) | by length: 0-4k 83.33, 4-8k 66.67, 8k+ 0.00");
  });

  it("trec: classification on the first line only", () => {
    // First line "Location" → matches [Location] → 1 (the whole text would also match Number → 1/2).
    // "Person or Number" vs Number → matches [Number, Person] → 1/2. Mean 3/4 → 75.
    const preds = join(dir(), "trec.jsonl");
    const classes = ["Location", "Number", "Person"];
    writeFileSync(
      preds,
      [
        { pred: "Location\nNumber", answers: ["Location"], all_classes: classes },
        { pred: "Person or Number", answers: ["Number"], all_classes: classes },
      ]
        .map((r) => JSON.stringify(r))
        .join("\n"),
    );
    const r = runCliSync(["eval", "score", "--task", "trec", "--preds", preds, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ task: "trec", score: 75, n: 2 });
  });
});

describe("bad input: exit code 1 and one line naming the problem", () => {
  /** These fail before any backend starts: stderr is the error line alone, without even the backend log line. */
  const alone = { noNoise: true };

  it("eval: unknown method in --methods, missing suite file, unknown suite key, bad --limit or --workers", () => {
    expectOneLineError(runCliSync(["eval", "--suite", "eval/quick.yaml", "--methods", "full,h3o"]), alone, /unknown method "h3o" in --methods/, new RegExp(`the suite's methods: full, streaming, h2o, snapkv, pyramidkv, tova, random, ${EDGE_LABEL}`));
    expectOneLineError(runCliSync(["eval", "--suite", join(dir(), "nope.yaml")]), alone, /suite .*nope\.yaml cannot be read \(ENOENT\)/);
    const typo = join(dir(), "typo.yaml");
    writeFileSync(typo, `name: typo\nbackbone: ${storiesPath}\ncorpus: ${corpusPath}\nlengths: [64]\ntasks:\n  - {name: passkey, source: synthetic}\nmethods:\n  - {name: h2o, budgt: 32}\n`);
    expectOneLineError(runCliSync(["eval", "--suite", typo]), alone, /typo\.yaml: unknown key "methods\[0\]\.budgt"/, /allowed keys in methods\[0\]: name, label, budget/);
    expectOneLineError(runCliSync(["eval", "--suite", "eval/quick.yaml", "--limit", "0"]), alone, /--limit 0 must be a positive integer/);
    expectOneLineError(runCliSync(["eval", "--suite", "eval/quick.yaml", "--workers", "0"]), alone, /--workers 0 must be a positive integer/);
    expectOneLineError(runCliSync(["eval"]), alone, /Missing required argument: suite/);
  });

  it("eval score: malformed JSONL line (with its number), unknown task", () => {
    const preds = join(dir(), "broken.jsonl");
    writeFileSync(preds, ['{"pred": "a", "answers": ["a"], "all_classes": null}', '{"pred": "b", "answers": ', '{"pred": "c", "answers": ["c"], "all_classes": null}'].join("\n"));
    expectOneLineError(runCliSync(["eval", "score", "--task", "hotpotqa", "--preds", preds]), alone, /broken\.jsonl:2: malformed JSON/);
    expectOneLineError(runCliSync(["eval", "score", "--task", "hotpotqaa", "--preds", preds]), alone, /unknown task "hotpotqaa"/, /known tasks: narrativeqa, qasper/);
  });

  it("report: a run dir that does not exist, or has no results", () => {
    expectOneLineError(runCliSync(["report", join(dir(), "no-such-run")]), alone, /run dir .*no-such-run does not exist/);
    const empty = mkdtempSync(join(dir(), "empty-"));
    expectOneLineError(runCliSync(["report", empty]), alone, /results\.json does not exist/, /run edgeinf eval/);
  });
});
