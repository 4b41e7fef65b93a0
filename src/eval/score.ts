import { readFileSync } from "node:fs";
import { EdgeInfError, fail } from "../util/errors.js";
import { metricFor, scoreDataset, scoreDatasetByLength, type LengthBucket, type PredictionRow } from "./metrics/index.js";

export interface ScoreResult {
  task: string;
  /** LongBench `scorer`: 100 × mean score, rounded to 2 decimals. */
  score: number;
  n: number;
  /** LongBench-E `scorer_e` buckets; present only when every row has a numeric `length`. NaN = empty bucket. */
  byLength?: Record<LengthBucket, number>;
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

function rowProblem(value: unknown): string | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "line is not a JSON object";
  const row = value as Record<string, unknown>;
  if (typeof row.pred !== "string") return `"pred" must be a string`;
  if (!isStringArray(row.answers)) return `"answers" must be an array of strings`;
  if (row.all_classes !== undefined && row.all_classes !== null && !isStringArray(row.all_classes)) {
    return `"all_classes" must be null or an array of strings`;
  }
  if (row.length !== undefined && (typeof row.length !== "number" || !Number.isFinite(row.length) || row.length < 0)) {
    return `"length" must be a non-negative number`; // a negative one would be bucketed as 0-4k
  }
  return null;
}

/** Parse a LongBench prediction file (pred.py rows). Any bad line stops with FILE:LINE. */
export function readPredictionsJsonl(predsPath: string): PredictionRow[] {
  let text: string;
  try {
    text = readFileSync(predsPath, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    fail(`${predsPath}: cannot read predictions file (${reason})`, "check the --preds path");
  }
  const rows: PredictionRow[] = [];
  text
    .replace(/^\uFEFF/, "")
    .split("\n")
    .forEach((rawLine, index) => {
      const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
      if (line.trim().length === 0) return;
      let parsed: unknown;
      let problem: string | null;
      try {
        parsed = JSON.parse(line);
        problem = rowProblem(parsed);
      } catch (error) {
        problem = `malformed JSON (${(error as Error).message})`;
      }
      if (problem !== null) {
        throw new EdgeInfError(`${predsPath}:${index + 1}: ${problem}`, 'rows must be {"pred": str, "answers": [str], "all_classes": [str]|null, "length": number}');
      }
      const row = parsed as Record<string, unknown>;
      const predictionRow: PredictionRow = {
        pred: row.pred as string,
        answers: row.answers as string[],
        all_classes: (row.all_classes as string[] | null | undefined) ?? null,
      };
      if (typeof row.length === "number") predictionRow.length = row.length;
      rows.push(predictionRow);
    });
  return rows;
}

/** 1-based line number of the last non-blank line of a file already read once (for FILE:LINE messages). */
function lastRowLine(path: string): number {
  const lines = readFileSync(path, "utf8").split("\n");
  let i = lines.length;
  while (i > 0 && lines[i - 1]!.trim() === "") i--;
  return i;
}

/**
 * Score a prediction file as LongBench's eval.py does. Like eval.py, the *last* row's
 * all_classes is used for every row (LongBench files share one class list per dataset).
 * Backs `edgeinf eval score --task T --preds preds.jsonl`.
 */
export function scorePredictionsFile(task: string, predsPath: string): ScoreResult {
  metricFor(task); // unknown task → error listing the known ones, before reading the file
  const rows = readPredictionsJsonl(predsPath);
  if (rows.length === 0) fail(`${predsPath}: no predictions to score`, "run the prediction step first");
  const allClasses = rows[rows.length - 1]!.all_classes;
  if (allClasses === null && metricFor(task) === "classification") {
    fail(`${predsPath}:${lastRowLine(predsPath)}: the last row has no "all_classes", which ${task}'s classification metric reads (as LongBench's eval.py does)`, "add the task's label list as all_classes");
  }
  const scoredRows = rows.map((row) => ({ ...row, all_classes: allClasses }));
  const result: ScoreResult = { task, score: scoreDataset(task, scoredRows), n: rows.length };
  if (scoredRows.every((row) => typeof row.length === "number")) {
    result.byLength = scoreDatasetByLength(task, scoredRows);
  }
  return result;
}
