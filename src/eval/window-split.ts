import * as aq from "arquero";
import type { SampleRow } from "./samples-log.js";

/**
 * Synthetic retrieval scores split by where the needle sits relative to a local window: a needle at depth d of a
 * prompt of P tokens has about (1 − d)·P tokens after it (haystack, question and answer prefix), so it has left a
 * window of W recent tokens when (1 − d)·P > W. Methods that keep only recent tokens score 0 outside by construction;
 * the split shows what memory (or eviction) recovers there and what it costs inside.
 */
export interface WindowSplitRow {
  task: string;
  length: number;
  method: string;
  side: "inside" | "outside";
  n: number;
  correct: number;
  /** 100 × mean score. */
  score: number;
}

export function needleOutsideWindow(row: Pick<SampleRow, "depth" | "promptTokens">, windowTokens: number): boolean | null {
  if (row.depth === null) return null;
  return (1 - row.depth) * row.promptTokens > windowTokens;
}

/** One row per task × length × method × side, in the order rows first appear (inside before outside). */
export function windowSplit(rows: readonly SampleRow[], windowTokens: number): WindowSplitRow[] {
  const cells = new Map<string, WindowSplitRow>();
  for (const r of rows) {
    const outside = needleOutsideWindow(r, windowTokens);
    if (outside === null) continue;
    for (const side of ["inside", "outside"] as const) {
      const key = `${r.task}\u0000${r.length}\u0000${r.method}\u0000${side}`;
      if (!cells.has(key)) cells.set(key, { task: r.task, length: r.length, method: r.method, side, n: 0, correct: 0, score: 0 });
    }
    const cell = cells.get(`${r.task}\u0000${r.length}\u0000${r.method}\u0000${outside ? "outside" : "inside"}`)!;
    cell.n += 1;
    cell.correct += r.score;
  }
  return [...cells.values()].filter((c) => c.n > 0).map((c) => ({ ...c, score: (100 * c.correct) / c.n }));
}

/** Markdown: one row per task × length × side, one column per method ("correct/n (score %)"). */
export function windowSplitMarkdown(split: readonly WindowSplitRow[], methods: readonly string[], windowTokens: number): string {
  if (split.length === 0) return "(no synthetic samples with a needle depth)\n";
  const rows = new Map<string, Record<string, string | number>>();
  for (const s of split) {
    const key = `${s.task}\u0000${s.length}\u0000${s.side}`;
    const row = rows.get(key) ?? { task: s.task, length: s.length, needle: `${s.side} the last ${windowTokens} tokens` };
    row[s.method] = `${fmt(s.correct)}/${s.n} (${s.score.toFixed(0)} %)`;
    rows.set(key, row);
  }
  const present = methods.filter((m) => split.some((s) => s.method === m));
  const columns = ["task", "length", "needle", ...present];
  const view = [...rows.values()].map((r) => Object.fromEntries(columns.map((c) => [c, r[c] ?? "-"])));
  return aq.from(view).toMarkdown({ align: Object.fromEntries(columns.map((c) => [c, c === "length" ? "r" : "l"])) });
}

const fmt = (x: number): string => (Number.isInteger(x) ? String(x) : x.toFixed(2));
