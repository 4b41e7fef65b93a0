/**
 * Notebook (plain TypeScript with `// %%` cells, runs headless): compare the methods of one evaluation run.
 *
 *   npx tsx notebooks/compare-methods.ts RUN_DIR
 *
 * Reads RUN_DIR/results.json (written by `edgeinf eval`), prints per-method summaries and a score-by-depth table,
 * and writes RUN_DIR/notebook_score_vs_length.svg and .png (the PNG when @resvg/resvg-js loads). Editors that understand `// %%` (VS Code, Jupytext) can run the
 * cells one by one.
 */

// %% Load the run
import * as aq from "arquero";
import type { TopLevelSpec } from "vega-lite";
import { readResults, writePlots } from "../src/eval/report.js";

const runDir = process.argv[2];
if (!runDir) {
  process.stderr.write("usage: npx tsx notebooks/compare-methods.ts RUN_DIR\n");
  process.exit(1);
}
const results = readResults(runDir);
const samples = aq.from(results.samples.map((s) => ({ ...s, outputIds: null, answers: null })));
console.log(`# ${results.suite}: ${samples.numRows()} sample rows, methods ${[...new Set(results.samples.map((s) => s.method))].join(", ")}`);

// %% Per-method summary over every task and length: score, KV kept relative to full attention, speed
const summary = samples
  .derive({ kvRatio: "d => d.kvBytesAfterPrefill / d.kvBytesFull" })
  .groupby("method")
  .rollup({
    n: aq.op.count(),
    score: "d => 100 * op.mean(d.score)",
    kvRatio: aq.op.mean("kvRatio"),
    ttftMs: aq.op.mean("ttftMs"),
    decodeTokPerS: aq.op.mean("decodeTokensPerSecond"),
  })
  .orderby(aq.desc("score"));
console.log("\n## Methods (mean over tasks and lengths)\n");
console.log(summary.toMarkdown({ format: { score: (v: number) => v.toFixed(2), kvRatio: (v: number) => v.toFixed(3), ttftMs: (v: number) => v.toFixed(1), decodeTokPerS: (v: number) => v.toFixed(1) } }));

// %% Retrieval by needle depth (synthetic tasks): where in the context does each method lose the needle?
const byDepth = samples
  .filter("d => d.depth != null")
  .derive({ depthBin: "d => op.round(d.depth * 10) / 10" })
  .groupby("method", "depthBin")
  .rollup({ score: "d => 100 * op.mean(d.score)" })
  .groupby("method")
  .pivot("depthBin", "score");
if (byDepth.numRows() > 0) {
  console.log("\n## Score by needle depth (columns: depth rounded to 0.1)\n");
  console.log(byDepth.toMarkdown());
}

// %% Plot: score against context length, one line per method
const curve = samples
  .groupby("method", "length")
  .rollup({ score: "d => 100 * op.mean(d.score)" })
  .orderby("method", "length")
  .objects();
const spec: TopLevelSpec = {
  $schema: "https://vega.github.io/schema/vega-lite/v5.json",
  title: `${results.suite}: score vs context length`,
  width: 360,
  height: 240,
  data: { values: curve as Record<string, unknown>[] },
  mark: { type: "line", point: true },
  encoding: {
    x: { field: "length", type: "quantitative", scale: { type: "log", base: 2 }, title: "context length (tokens, log2)" },
    y: { field: "score", type: "quantitative", scale: { domain: [0, 100] }, title: "score (100 × mean)" },
    color: { field: "method", type: "nominal", legend: { labelLimit: 300 } },
  },
};
const written = await writePlots(runDir, [["notebook_score_vs_length", spec]]);
console.log(`\nwrote ${written.join(", ")}`);
