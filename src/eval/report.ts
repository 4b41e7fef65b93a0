/**
 * report(runDir): prints the comparison tables of a finished (or partial) run and draws its plots with
 * vega-lite → vega, rendered headless to SVG: score vs KV bytes per method and length, and TTFT vs context length.
 * Each plot is also rasterised to PNG with @resvg/resvg-js (a prebuilt native addon per platform); when that cannot
 * load, the report says so in one warning and writes SVG only.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import * as aq from "arquero";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { writeFileAtomic } from "../util/atomic.js";
import { fail } from "../util/errors.js";
import { readSamplesLog } from "./samples-log.js";
import type { SampleRow } from "./samples-log.js";
import { windowSplit, windowSplitMarkdown } from "./window-split.js";
import { markdownTable, scorePivot, writeTables, type AggregateRow, type ResultsJson } from "./tables.js";

export interface ReportResult {
  /** The printed text (score pivot and full table, Markdown). */
  text: string;
  /** Plot files written: each plot's SVG, then its PNG when the rasteriser loaded. */
  files: string[];
}

/** SVG text → PNG bytes. */
export type Rasteriser = (svg: string) => Uint8Array;

/** Family for vega's `sans-serif` text in PNGs (Debian's fonts-dejavu-core); resvg falls back to another system font when it is missing. */
export const PNG_FONT_FAMILY = "DejaVu Sans";
/** PNG pixels per SVG pixel, so labels stay readable. */
export const PNG_SCALE = 2;

/**
 * The PNG rasteriser: @resvg/resvg-js with the system fonts, vega's sans-serif text in PNG_FONT_FAMILY, white
 * background, PNG_SCALE × the SVG size. Throws when the package or its platform binary cannot load.
 */
export async function loadResvg(): Promise<Rasteriser> {
  // A CommonJS native addon: require it (its platform package is chosen at load time).
  const { Resvg } = createRequire(import.meta.url)("@resvg/resvg-js") as typeof import("@resvg/resvg-js");
  const options = {
    font: { loadSystemFonts: true, sansSerifFamily: PNG_FONT_FAMILY, defaultFontFamily: PNG_FONT_FAMILY },
    fitTo: { mode: "zoom" as const, value: PNG_SCALE },
    background: "white",
    logLevel: "off" as const,
  };
  return (svg) => new Resvg(svg, options).render().asPng();
}

/** True when `rasterise` draws text at all (false when no system font could be found). */
export function rastersText(rasterise: Rasteriser): boolean {
  const probe = `<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20" fill="white"/><text x="2" y="16" font-family="sans-serif" font-size="16" fill="black">Ag</text></svg>`;
  const png = rasterise(probe);
  const blank = rasterise(probe.replace(/<text.*<\/text>/, ""));
  return Buffer.compare(Buffer.from(png), Buffer.from(blank)) !== 0;
}

export interface PlotOptions {
  /** Makes the PNG rasteriser (default loadResvg); when it throws, plots are SVG only and `warn` says why. */
  rasteriser?: () => Promise<Rasteriser>;
  /** One-line warnings (default: stderr, "warning: ..."). */
  warn?: (message: string) => void;
}

/** Loads the rasteriser once per call of writePlots; null (after one warning) when it cannot be used. */
async function rasteriserOrNull(opts: PlotOptions, warn: (message: string) => void): Promise<Rasteriser | null> {
  let rasterise: Rasteriser;
  try {
    rasterise = await (opts.rasteriser ?? loadResvg)();
  } catch (e) {
    warn(`PNG plots skipped, SVG only: the rasteriser @resvg/resvg-js could not be loaded (${firstLine(e)}); reinstall with npm ci`);
    return null;
  }
  try {
    if (!rastersText(rasterise)) warn("PNG plots have no text: no system font was found (install one, e.g. apt-get install fonts-dejavu-core); the SVGs have it");
  } catch (e) {
    warn(`PNG plots skipped, SVG only: the rasteriser failed (${firstLine(e)})`);
    return null;
  }
  return rasterise;
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0]!;
}

/**
 * Renders each spec to DIR/NAME.svg and, when the rasteriser loads, DIR/NAME.png (else an older NAME.png is
 * removed). Returns the files written, in plot order (NAME.svg, NAME.png, ...).
 */
export async function writePlots(dir: string, plots: readonly (readonly [name: string, spec: TopLevelSpec])[], opts: PlotOptions = {}): Promise<string[]> {
  const svgs: [string, string][] = [];
  for (const [name, spec] of plots) svgs.push([name, await renderSvg(spec)]);
  const warn = opts.warn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
  const rasterise = await rasteriserOrNull(opts, warn);
  const files: string[] = [];
  for (const [name, svg] of svgs) {
    const svgPath = join(dir, `${name}.svg`);
    writeFileAtomic(svgPath, svg);
    files.push(svgPath);
    const pngPath = join(dir, `${name}.png`);
    let png: Uint8Array | null = null;
    try {
      png = rasterise?.(svg) ?? null;
    } catch (e) {
      warn(`${name}.png skipped, SVG only: the rasteriser failed (${firstLine(e)})`);
    }
    if (png === null) {
      // No PNG this time: drop one left by an earlier report, which would no longer match the SVG.
      rmSync(pngPath, { force: true });
      continue;
    }
    writeFileAtomic(pngPath, png);
    files.push(pngPath);
  }
  return files;
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
        color: { field: "method", type: "nominal", legend: { labelLimit: 300 } },
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
      color: { field: "method", type: "nominal", legend: { labelLimit: 300 } },
    },
  };
}

/** One cell of a needle-in-a-haystack sweep: mean score (100 ×) of a method at one length and needle depth. */
export interface NeedleCell {
  method: string;
  task: string;
  length: number;
  depth: number;
  score: number;
  n: number;
}

/** Mean score per method × task × length × depth over the samples that have a needle depth. */
export function needleGrid(samples: readonly SampleRow[]): NeedleCell[] {
  const cells = new Map<string, NeedleCell & { total: number }>();
  for (const row of samples) {
    if (row.depth === null) continue;
    const key = JSON.stringify([row.method, row.task, row.length, row.depth]);
    const cell = cells.get(key) ?? { method: row.method, task: row.task, length: row.length, depth: row.depth, score: 0, n: 0, total: 0 };
    cell.total += row.score;
    cell.n += 1;
    cells.set(key, cell);
  }
  return [...cells.values()].map(({ total, ...cell }) => ({ ...cell, score: (100 * total) / cell.n }));
}

/**
 * The familiar needle-in-a-haystack heat map: context length across, needle depth down (0 % = start
 * of the context), colour = score (red 0 → green 100), one panel per method (and task).
 */
export function needleHeatmapSpec(cells: readonly NeedleCell[], title: string): TopLevelSpec {
  const values = cells.map((c) => ({ ...c, panel: new Set(cells.map((x) => x.task)).size > 1 ? `${c.method} · ${c.task}` : c.method, depthPct: Math.round(c.depth * 100) }));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: `${title}: needle in a haystack (score by length and depth)`,
    data: { values },
    facet: { field: "panel", type: "nominal", title: null },
    columns: 4,
    spec: {
      width: 160,
      height: 160,
      layer: [
        {
          mark: { type: "rect" },
          encoding: {
            x: { field: "length", type: "ordinal", title: "context length (tokens)" },
            y: { field: "depthPct", type: "ordinal", title: "needle depth (%)" },
            color: { field: "score", type: "quantitative", scale: { domain: [0, 100], scheme: "redyellowgreen" }, title: "score" },
            tooltip: [{ field: "method" }, { field: "task" }, { field: "length" }, { field: "depthPct" }, { field: "score" }, { field: "n" }],
          },
        },
        {
          mark: { type: "text", fontSize: 9 },
          encoding: {
            x: { field: "length", type: "ordinal" },
            y: { field: "depthPct", type: "ordinal" },
            text: { field: "score", type: "quantitative", format: ".0f" },
          },
        },
      ],
    },
  };
}

/** A heat map is drawn from this many distinct lengths and depths up (a 2 × 2 grid says little). */
export const NEEDLE_SWEEP_MIN = 3;

export function isNeedleSweep(cells: readonly NeedleCell[]): boolean {
  return new Set(cells.map((c) => c.depth)).size >= NEEDLE_SWEEP_MIN && new Set(cells.map((c) => c.length)).size >= NEEDLE_SWEEP_MIN;
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
export function rebuildTables(runDir: string, opts: { windowSplitTokens?: number } = {}): string[] | null {
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
  const split = (suite as { windowSplitTokens?: unknown }).windowSplitTokens;
  const fromSuite = typeof split === "number" && Number.isInteger(split) && split > 0 ? split : undefined;
  const tokens = opts.windowSplitTokens ?? fromSuite;
  const windowSplitTokens = tokens !== undefined ? { windowSplitTokens: tokens } : {};
  return writeTables(runDir, rows, { suite: suite.name, order: { tasks, methods }, ...windowSplitTokens }).files;
}

/**
 * Prints the comparison and writes score_vs_kv and ttft_vs_length into runDir, each as .svg and (when the
 * rasteriser loads) .png; needle_heatmap too when the run is a needle sweep (NEEDLE_SWEEP_MIN lengths × depths).
 */
export async function report(runDir: string, opts: { print?: (text: string) => void } & PlotOptions = {}): Promise<ReportResult> {
  const results = readResults(runDir);
  const methods = [...new Set(results.aggregates.map((a) => a.method))];
  const w = results.windowSplitTokens;
  const split = w === undefined ? "" : `\n\n## Needle inside / outside the last ${w} tokens (synthetic tasks)\n\n${windowSplitMarkdown(windowSplit(results.samples, w), methods, w)}`;
  const text = comparisonText(results.suite, results.aggregates, methods) + split;
  (opts.print ?? ((t: string) => process.stdout.write(t + "\n")))(text);
  const plots: [string, TopLevelSpec][] = [
    ["score_vs_kv", scoreVsKvSpec(results.aggregates, results.suite)],
    ["ttft_vs_length", ttftVsLengthSpec(results.aggregates, results.suite)],
  ];
  const needles = needleGrid(results.samples);
  if (isNeedleSweep(needles)) plots.push(["needle_heatmap", needleHeatmapSpec(needles, results.suite)]);
  const files = await writePlots(runDir, plots, opts);
  return { text, files };
}
