import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../util/atomic.js";
import { EdgeInfError, fail } from "../util/errors.js";
import {
  metricFor,
  scoreDataset,
  scoreDatasetByLength,
  type LengthBucket,
  type PredictionRow,
  type ScoreOptions,
} from "./metrics/index.js";

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
export function scorePredictionsFile(task: string, predsPath: string, options: ScoreOptions = {}): ScoreResult {
  metricFor(task); // unknown task → error listing the known ones, before reading the file
  const scoredRows = readScoredRows(predsPath, task);
  const result: ScoreResult = { task, score: scoreDataset(task, scoredRows, options), n: scoredRows.length };
  if (scoredRows.every((row) => typeof row.length === "number")) {
    result.byLength = scoreDatasetByLength(task, scoredRows, options);
  }
  return result;
}

/** The file's rows with the last row's all_classes on every row, as eval.py reads them. */
function readScoredRows(predsPath: string, task: string): PredictionRow[] {
  const rows = readPredictionsJsonl(predsPath);
  if (rows.length === 0) fail(`${predsPath}: no predictions to score`, "run the prediction step first");
  const allClasses = rows[rows.length - 1]!.all_classes;
  if (allClasses === null && metricFor(task) === "classification") {
    fail(`${predsPath}:${lastRowLine(predsPath)}: the last row has no "all_classes", which ${task}'s classification metric reads (as LongBench's eval.py does)`, "add the task's label list as all_classes");
  }
  return rows.map((row) => ({ ...row, all_classes: allClasses }));
}

/** eval.py's result.json: dataset → score, or (with --e) dataset → {"0-4k", "4-8k", "8k+"}. */
export type PredsDirResult = Record<string, number | Record<LengthBucket, number>>;

/**
 * LongBench eval.py on a whole `pred/<model>/` (or `pred_e/<model>/` with `lengthBuckets`)
 * folder: every `*.jsonl` file is a dataset named by the file name up to its first dot, scored with
 * `scorer` (or `scorer_e`). Writes `result.json` into the folder as eval.py does and returns it.
 */
export function scorePredsDir(predsDir: string, lengthBuckets: boolean, options: ScoreOptions = {}): PredsDirResult {
  let names: string[];
  try {
    names = readdirSync(predsDir).filter((name) => name.endsWith("jsonl")).sort();
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    fail(`${predsDir}: cannot read predictions folder (${reason})`, "pass pred/MODEL (or pred_e/MODEL with --e), as LongBench's pred.py writes them");
  }
  if (names.length === 0) fail(`${predsDir}: no *.jsonl prediction files`, "pass the folder pred.py wrote (pred/MODEL)");
  for (const name of names) metricFor(name.split(".")[0]!); // every dataset known before any scoring
  const result: PredsDirResult = {};
  for (const name of names) {
    const dataset = name.split(".")[0]!;
    const rows = readScoredRows(join(predsDir, name), dataset);
    result[dataset] = lengthBuckets ? scoreDatasetByLength(dataset, rows, options) : scoreDataset(dataset, rows, options);
  }
  writeFileAtomic(join(predsDir, "result.json"), pythonJsonDump(result));
  return result;
}

/** Python's float repr for scores: integral values keep ".0", NaN stays NaN (what json.dump writes). */
function pythonFloat(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  return Number.isInteger(value) ? value.toFixed(1) : String(value);
}

/** `json.dump(result, f, ensure_ascii=False, indent=4)` for a PredsDirResult. */
export function pythonJsonDump(result: PredsDirResult): string {
  const entry = (key: string, value: number | Record<string, number>, pad: string): string => {
    if (typeof value === "number") return `${pad}${JSON.stringify(key)}: ${pythonFloat(value)}`;
    const inner = Object.entries(value).map(([k, v]) => entry(k, v, pad + "    "));
    return `${pad}${JSON.stringify(key)}: {\n${inner.join(",\n")}\n${pad}}`;
  };
  const lines = Object.entries(result).map(([key, value]) => entry(key, value, "    "));
  return `{\n${lines.join(",\n")}\n}`;
}
