/**
 * Result tables of a run, built with arquero: the per-sample table and the per task × length × method aggregates,
 * written as results.csv / results.json / results.md (aggregates; the JSON also holds the samples) and
 * samples.csv, each atomically.
 */
import { windowSplit, windowSplitMarkdown } from "./window-split.js";
import { join } from "node:path";
import * as aq from "arquero";
import { writeFileAtomic } from "../util/atomic.js";
import type { SampleRow } from "./samples-log.js";
import { longBenchV2Breakdowns, type LongBenchV2Breakdown } from "./longbench-v2.js";

/** One task × length × method cell. */
export interface AggregateRow {
  task: string;
  length: number;
  method: string;
  n: number;
  /** 100 × mean per-sample score (LongBench's scale). */
  score: number;
  ttftMs: number;
  decodeTokensPerSecond: number;
  prefillTokensPerSecond: number;
  promptTokens: number;
  kvBytesAfterPrefill: number;
  /** Largest peak KV over the cell's samples. */
  peakKvBytes: number;
  kvBytesFull: number;
  /** Mean of kvBytesAfterPrefill / kvBytesFull per sample. */
  kvRatio: number;
  maxRssKb: number;
  backend: string;
}

export interface TableOrder {
  /** Task order (suite order); tasks not listed sort after, by name. */
  tasks?: readonly string[];
  methods?: readonly string[];
}

export interface ResultsJson {
  suite: string;
  generatedAt: string;
  aggregates: AggregateRow[];
  samples: SampleRow[];
  /** Set when results.md splits needles inside/outside the last this-many tokens (suite key or report --window-split). */
  windowSplitTokens?: number;
  /** LongBench v2 accuracy by difficulty and length per task × length × method (result.py's table); only when the run has LongBench v2 tasks. */
  longBenchV2?: LongBenchV2Breakdown[];
}

const SAMPLE_COLUMNS = [
  "task", "dataset", "length", "sampleId", "depth", "method", "promptTokens", "truncated", "score", "prediction", "answers",
  "newTokens", "ttftMs", "decodeTokensPerSecond", "prefillTokensPerSecond", "kvBytesAfterPrefill", "peakKvBytes",
  "kvBytesFull", "maxRssKb", "rssBytes", "leakedTensors", "repeats", "backend",
] as const;

function rank(order: readonly string[] | undefined, value: string): number {
  const i = order ? order.indexOf(value) : -1;
  return i >= 0 ? i : Number.MAX_SAFE_INTEGER;
}

/** Rows in table order: task (suite order), length, method (suite order), sample id. */
export function sortRows<T extends { task: string; length: number; method: string; sampleId?: string }>(rows: readonly T[], order: TableOrder = {}): T[] {
  return [...rows].sort(
    (a, b) =>
      rank(order.tasks, a.task) - rank(order.tasks, b.task) ||
      a.task.localeCompare(b.task) ||
      a.length - b.length ||
      rank(order.methods, a.method) - rank(order.methods, b.method) ||
      a.method.localeCompare(b.method) ||
      (a.sampleId ?? "").localeCompare(b.sampleId ?? ""),
  );
}

/** The per-sample table (scalar columns; answers joined with " | "). */
export function samplesTable(rows: readonly SampleRow[], order: TableOrder = {}): aq.ColumnTable {
  const flat = sortRows(rows, order).map((r) => {
    const o: Record<string, unknown> = {};
    for (const c of SAMPLE_COLUMNS) o[c] = c === "answers" ? r.answers.join(" | ") : r[c];
    return o;
  });
  return flat.length > 0 ? aq.from(flat) : aq.table(Object.fromEntries(SAMPLE_COLUMNS.map((c) => [c, []])));
}

/** Per task × length × method aggregates, in table order. */
export function aggregate(rows: readonly SampleRow[], order: TableOrder = {}): AggregateRow[] {
  if (rows.length === 0) return [];
  const t = aq
    .from(rows.map((r) => ({ ...r, kvRatio: r.kvBytesFull > 0 ? r.kvBytesAfterPrefill / r.kvBytesFull : NaN, outputIds: null, answers: null })))
    .groupby("task", "length", "method")
    .rollup({
      n: aq.op.count(),
      score: "d => 100 * op.mean(d.score)",
      ttftMs: aq.op.mean("ttftMs"),
      decodeTokensPerSecond: aq.op.mean("decodeTokensPerSecond"),
      prefillTokensPerSecond: aq.op.mean("prefillTokensPerSecond"),
      promptTokens: aq.op.mean("promptTokens"),
      kvBytesAfterPrefill: aq.op.mean("kvBytesAfterPrefill"),
      peakKvBytes: aq.op.max("peakKvBytes"),
      kvBytesFull: aq.op.mean("kvBytesFull"),
      kvRatio: aq.op.mean("kvRatio"),
      maxRssKb: aq.op.max("maxRssKb"),
      backends: aq.op.array_agg_distinct("backend"),
    });
  const cells = (t.objects() as (Omit<AggregateRow, "backend"> & { backends: string[] })[]).map(({ backends, ...a }) => ({
    ...a,
    backend: [...backends].sort().join("+"),
  }));
  return sortRows(cells, order);
}

const kib = (bytes: number): string => (bytes / 1024).toFixed(1);

/** Markdown of the aggregates with readable units. */
export function markdownTable(aggregates: readonly AggregateRow[]): string {
  const view = aggregates.map((a) => ({
    task: a.task,
    length: a.length,
    method: a.method,
    n: a.n,
    score: a.score.toFixed(2),
    "TTFT ms": a.ttftMs.toFixed(1),
    "decode tok/s": a.decodeTokensPerSecond.toFixed(1),
    "KV after prefill KiB": kib(a.kvBytesAfterPrefill),
    "peak KV KiB": kib(a.peakKvBytes),
    "KV / full": Number.isFinite(a.kvRatio) ? a.kvRatio.toFixed(3) : "-",
    "max RSS MiB": (a.maxRssKb / 1024).toFixed(0),
  }));
  if (view.length === 0) return "(no finished samples)\n";
  const left = new Set(["task", "method"]);
  return aq.from(view).toMarkdown({ align: Object.fromEntries(Object.keys(view[0]!).map((c) => [c, left.has(c) ? "l" : "r"])) });
}

/** Score pivot: one row per task × length, one column per method. */
export function scorePivot(aggregates: readonly AggregateRow[], methods: readonly string[]): string {
  if (aggregates.length === 0) return "(no finished samples)\n";
  const cells = new Map<string, Record<string, string | number>>();
  for (const a of aggregates) {
    const key = `${a.task}\u0000${a.length}`;
    const row = cells.get(key) ?? { task: a.task, length: a.length };
    row[a.method] = a.score.toFixed(2);
    cells.set(key, row);
  }
  const present = methods.filter((m) => aggregates.some((a) => a.method === m));
  const extra = [...new Set(aggregates.map((a) => a.method))].filter((m) => !present.includes(m));
  const columns = ["task", "length", ...present, ...extra];
  const rows = [...cells.values()].map((r) => Object.fromEntries(columns.map((c) => [c, r[c] ?? "-"])));
  return aq.from(rows).toMarkdown({ align: Object.fromEntries(columns.map((c) => [c, c === "task" ? "l" : "r"])) });
}

/** result.py's columns (Overall, Easy, Hard, Short, Medium, Long) per task × length × method; "-" for an empty group. */
export function longBenchV2Markdown(cells: readonly LongBenchV2Breakdown[]): string {
  const show = (v: number): string => (Number.isNaN(v) ? "-" : v.toFixed(1));
  const rows = cells.map((c) => ({ task: c.task, length: c.length, method: c.method, n: c.n, overall: show(c.accuracy.overall), easy: show(c.accuracy.easy), hard: show(c.accuracy.hard), short: show(c.accuracy.short), medium: show(c.accuracy.medium), long: show(c.accuracy.long) }));
  return aq.from(rows).toMarkdown({ align: Object.fromEntries(Object.keys(rows[0]!).map((c) => [c, c === "task" || c === "method" ? "l" : "r"])) });
}

/** Writes results.csv, results.json, results.md and samples.csv into runDir (each atomically). */
export function writeTables(
  runDir: string,
  rows: readonly SampleRow[],
  opts: { suite: string; order?: TableOrder; windowSplitTokens?: number },
): { aggregates: AggregateRow[]; files: string[] } {
  const order = opts.order ?? {};
  const aggregates = aggregate(rows, order);
  const files = {
    csv: join(runDir, "results.csv"),
    json: join(runDir, "results.json"),
    md: join(runDir, "results.md"),
    samples: join(runDir, "samples.csv"),
  };
  const aggregateTable =
    aggregates.length > 0
      ? aq.from(aggregates)
      : aq.table(Object.fromEntries(["task", "length", "method", "n", "score"].map((c) => [c, []])));
  writeFileAtomic(files.csv, aggregateTable.toCSV() + "\n");
  const v2 = sortRows(longBenchV2Breakdowns(rows), order);
  const json: ResultsJson = {
    suite: opts.suite,
    generatedAt: new Date().toISOString(),
    aggregates,
    samples: sortRows(rows, order),
    ...(opts.windowSplitTokens !== undefined ? { windowSplitTokens: opts.windowSplitTokens } : {}),
    ...(v2.length > 0 ? { longBenchV2: v2 } : {}),
  };
  writeFileAtomic(files.json, JSON.stringify(json, null, 2) + "\n");
  const methods = order.methods ?? [...new Set(aggregates.map((a) => a.method))];
  const split =
    opts.windowSplitTokens === undefined
      ? []
      : ["", `## Needle inside / outside the last ${opts.windowSplitTokens} tokens (synthetic tasks)`, "", windowSplitMarkdown(windowSplit(rows, opts.windowSplitTokens), methods, opts.windowSplitTokens)];
  const byGroup = v2.length === 0 ? [] : ["", "## LongBench v2 accuracy by difficulty and length (result.py)", "", longBenchV2Markdown(v2)];
  const md = [`# ${opts.suite}`, "", "## Score (100 × mean)", "", scorePivot(aggregates, methods), ...split, ...byGroup, "", "## All measurements", "", markdownTable(aggregates)].join("\n");
  writeFileAtomic(files.md, md + "\n");
  writeFileAtomic(files.samples, samplesTable(rows, order).toCSV() + "\n");
  return { aggregates, files: Object.values(files) };
}
