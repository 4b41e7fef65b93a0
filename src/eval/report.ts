/**
 * report(runDir): prints the comparison tables of a finished (or partial) run and draws its plots with
 * vega-lite → vega, rendered headless to SVG: score vs KV bytes per method and length, and TTFT vs context length.
 * PNG would need a rasteriser (e.g. @resvg/resvg-js), which is not a dependency; SVG only.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as aq from "arquero";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { writeFileAtomic } from "../util/atomic.js";
import { fail } from "../util/errors.js";
import { readSamplesLog } from "./samples-log.js";
import { markdownTable, scorePivot, writeTables, type AggregateRow, type ResultsJson } from "./tables.js";

export interface ReportResult {
  /** The printed text (score pivot and full table, Markdown). */
  text: string;
  /** SVG files written. */
  files: string[];
}

/** Reads RUN_DIR/results.json, with a one-line error when it is missing or not a results file. */
export function readResults(runDir: string): ResultsJson {
  const path = join(runDir, "results.json");
  if (!existsSync(path)) fail(`${path} does not exist`, "run edgeinf eval with this --run-dir first");
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    fail(`${path} is not valid JSON: ${(e as Error).message}`, "re-run edgeinf eval with this --run-dir to rewrite it");
  }
  const r = parsed as Partial<ResultsJson>;
  if (!Array.isArray(r.aggregates) || !Array.isArray(r.samples)) fail(`${path} has no "aggregates"/"samples"`, "it was not written by edgeinf eval");
  return parsed as ResultsJson;
}

/** Renders a vega-lite spec to an SVG string without a browser. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Score vs KV bytes after prefill: one point per method × task, a panel per context length. */
export function scoreVsKvSpec(aggregates: readonly AggregateRow[], title: string): TopLevelSpec {
  const values = aggregates.map((a) => ({ method: a.method, task: a.task, length: a.length, score: a.score, kvKiB: a.kvBytesAfterPrefill / 1024, n: a.n }));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: `${title}: score vs KV cache after prefill`,
    data: { values },
    facet: { column: { field: "length", type: "ordinal", title: "context length (tokens)" } },
    spec: {
      width: 180,
      height: 180,
      mark: { type: "point", filled: true, size: 70 },
      encoding: {
        x: { field: "kvKiB", type: "quantitative", scale: { type: "log" }, title: "KV after prefill (KiB, log)" },
        y: { field: "score", type: "quantitative", scale: { domain: [0, 100] }, title: "score (100 × mean)" },
        color: { field: "method", type: "nominal" },
        shape: { field: "task", type: "nominal" },
        tooltip: [{ field: "method" }, { field: "task" }, { field: "score" }, { field: "kvKiB" }, { field: "n" }],
      },
    },
  };
}

/** Mean TTFT over tasks per method and length, as lines over context length. */
export function ttftVsLengthSpec(aggregates: readonly AggregateRow[], title: string): TopLevelSpec {
  const values =
    aggregates.length > 0
      ? (aq
          .from(aggregates.map((a) => ({ method: a.method, length: a.length, ttftMs: a.ttftMs })))
          .groupby("method", "length")
          .rollup({ ttftMs: aq.op.mean("ttftMs") })
          .orderby("method", "length")
          .objects() as { method: string; length: number; ttftMs: number }[])
      : [];
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: `${title}: time to first token`,
    width: 360,
    height: 240,
    data: { values },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "length", type: "quantitative", scale: { type: "log", base: 2 }, title: "context length (tokens, log2)" },
      y: { field: "ttftMs", type: "quantitative", title: "TTFT (ms, mean over tasks)" },
      color: { field: "method", type: "nominal" },
    },
  };
}

/** The comparison as Markdown: the score pivot (methods as columns, in `methods` order) and the full table. */
export function comparisonText(suite: string, aggregates: readonly AggregateRow[], methods: readonly string[] = [...new Set(aggregates.map((a) => a.method))]): string {
  return [`# ${suite}`, "", "## Score (100 × mean)", "", scorePivot(aggregates, methods), "", "## All measurements", "", markdownTable(aggregates)].join("\n");
}

/**
 * Rewrites results.csv/json/md and samples.csv from RUN_DIR/samples.jsonl, with the suite's task and method order
 * from run.json, keeping the rows of the suite's tasks and methods as runSuite does (so tables are current even
 * after a run was killed before it wrote them). Only reads samples.jsonl (never repairs it: a run may still be
 * appending). Returns the files written, or null when the run dir has no samples.jsonl and run.json.
 */
export function rebuildTables(runDir: string): string[] | null {
  const logPath = join(runDir, "samples.jsonl");
  const runJsonPath = join(runDir, "run.json");
  if (!existsSync(logPath) || !existsSync(runJsonPath)) return null;
  let run: { suite?: { name?: unknown; tasks?: { name?: unknown }[]; methods?: { label?: unknown }[] } };
  try {
    run = JSON.parse(readFileSync(runJsonPath, "utf8")) as typeof run;
  } catch (e) {
    return fail(`${runJsonPath} is not valid JSON: ${(e as Error).message}`, "the run dir is damaged; re-run edgeinf eval with a new --run-dir");
  }
  const suite = run.suite;
  if (typeof suite?.name !== "string" || !Array.isArray(suite.tasks) || !Array.isArray(suite.methods)) {
    fail(`${runJsonPath} has no suite (name, tasks, methods)`, "it was not written by edgeinf eval");
  }
  const tasks = suite.tasks.map((t) => String(t.name));
  const methods = suite.methods.map((m) => String(m.label));
  const rows = readSamplesLog(logPath, { repair: false }).filter((r) => tasks.includes(r.task) && methods.includes(r.method));
  return writeTables(runDir, rows, { suite: suite.name, order: { tasks, methods } }).files;
}

/** Prints the comparison and writes score_vs_kv.svg and ttft_vs_length.svg into runDir. */
export async function report(runDir: string, opts: { print?: (text: string) => void } = {}): Promise<ReportResult> {
  const results = readResults(runDir);
  const text = comparisonText(results.suite, results.aggregates);
  (opts.print ?? ((t: string) => process.stdout.write(t + "\n")))(text);
  const plots: [string, TopLevelSpec][] = [
    ["score_vs_kv.svg", scoreVsKvSpec(results.aggregates, results.suite)],
    ["ttft_vs_length.svg", ttftVsLengthSpec(results.aggregates, results.suite)],
  ];
  const files: string[] = [];
  for (const [name, spec] of plots) {
    const path = join(runDir, name);
    writeFileAtomic(path, await renderSvg(spec));
    files.push(path);
  }
  return { text, files };
}
