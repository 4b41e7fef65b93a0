/**
 * RUN_DIR/samples.jsonl: one line per finished (task, length, sample, method), appended and fsynced as soon as the
 * sample is done, so an interrupted run loses at most the sample in flight and a restart skips what is there.
 */
import { appendFileSync, closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, truncateSync, writeSync } from "node:fs";
import { EdgeInfError } from "../util/errors.js";
import type { TaskSource } from "./suite.js";

/** One evaluated sample under one method: what was generated, its score and what it cost. */
export interface SampleRow {
  task: string;
  /** Dataset whose prompt template and metric were used (e.g. "passkey", "narrativeqa"). */
  dataset: string;
  source: TaskSource;
  /** The length setting: generated tasks' target tokens, or file-based tasks' truncation cap. */
  length: number;
  sampleId: string;
  /** Needle depth 0..1 (synthetic tasks), else null. */
  depth: number | null;
  /** Method label as shown in tables. */
  method: string;
  /** Method name (registry name, "full" or "edgeinfinite"). */
  methodName: string;
  /** Prompt tokens fed, BOS included, after truncation. */
  promptTokens: number;
  truncated: boolean;
  outputIds: number[];
  prediction: string;
  answers: string[];
  /** Metric value in [0, 1]: the source's per-sample score (src/eval/score-sample.ts). */
  score: number;
  /** Labels the results break scores down by (LongBench v2: difficulty, length); absent for other sources. */
  groups?: Record<string, string>;
  /**
   * LongBench v2 with prompt 0shot_cot only: the first (chain-of-thought) pass's output as decoded (pred.py's
   * response_cot is it stripped, and that is what $COT$ became) and its ids. The row's prediction, outputIds and
   * newTokens are the second (answer) pass's; its promptTokens, truncated, timing and KV fields the first pass's.
   */
  cotPrediction?: string;
  cotOutputIds?: number[];
  /** LongBench v2 0shot_cot only: the second (answer) pass's prompt, timing and KV numbers. */
  answerPass?: AnswerPass;
  /** Median over repeats (of ttftMsRuns): wall ms from the start of prefill to the first token's logits on the host. */
  ttftMs: number;
  /** TTFT of each of the `repeats` timed runs, in run order (absent in rows written before it was recorded). */
  ttftMsRuns?: number[];
  /** Median over repeats: tokens per second over decode steps after the first token (0 when none). */
  decodeTokensPerSecond: number;
  prefillTokensPerSecond: number;
  newTokens: number;
  /** session.kvBytes() right after prefill (KV plus any fixed-size memory). */
  kvBytesAfterPrefill: number;
  /** session.peakKvBytes() at the end of decoding. */
  peakKvBytes: number;
  /** What full attention would hold for this prompt, for the KV ratio. */
  kvBytesFull: number;
  /** process.resourceUsage().maxRSS after this sample: the process's peak resident set so far, KiB. */
  maxRssKb: number;
  /** Largest process.memoryUsage().rss sampled after prefill and after decoding, bytes. */
  rssBytes: number;
  /** tf tensors alive after the session was disposed minus before it was made (0 = no leak). */
  leakedTensors: number;
  repeats: number;
  backend: string;
  /** Hashes of the task and method settings that produced the row (resume refuses changed settings). */
  taskHash: string;
  methodHash: string;
  finishedAt: string;
}

/** The second pass of a two-pass sample (LongBench v2 0shot_cot): the SampleRow fields of the same names, for it. */
export type AnswerPass = Pick<
  SampleRow,
  | "promptTokens"
  | "truncated"
  | "newTokens"
  | "ttftMs"
  | "decodeTokensPerSecond"
  | "prefillTokensPerSecond"
  | "kvBytesAfterPrefill"
  | "peakKvBytes"
  | "kvBytesFull"
  | "leakedTensors"
> & { ttftMsRuns: number[] };

/** Identity of a row for resuming: (task, length, sample id, method label). */
export function rowKey(row: Pick<SampleRow, "task" | "length" | "sampleId" | "method">): string {
  return JSON.stringify([row.task, row.length, row.sampleId, row.method]);
}

function isSampleRow(value: unknown): value is SampleRow {
  if (typeof value !== "object" || value === null) return false;
  const r = value as Record<string, unknown>;
  return (
    typeof r["task"] === "string" &&
    typeof r["length"] === "number" &&
    typeof r["sampleId"] === "string" &&
    typeof r["method"] === "string" &&
    typeof r["score"] === "number" &&
    typeof r["taskHash"] === "string" &&
    typeof r["methodHash"] === "string"
  );
}

/**
 * Rows already in `path` (none when it does not exist). A last line cut off by a crash mid-write is dropped and
 * truncated away so appends start on a fresh line; any other bad line is an error naming it.
 * With `repair: false` the file is only read (for readers such as `edgeinf report`, which may look at a run dir
 * while a run is still appending to it): a cut-off last line is dropped but the file is left as it is.
 */
export function readSamplesLog(path: string, opts: { repair?: boolean } = {}): SampleRow[] {
  const repair = opts.repair ?? true;
  if (!existsSync(path)) return [];
  const text = readFileSync(path, "utf8");
  const lines = text.split("\n");
  const rows: SampleRow[] = [];
  let offset = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const isLast = i === lines.length - 1;
    if (line.trim() === "") {
      offset += line.length + 1;
      continue;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      parsed = null;
    }
    if (isSampleRow(parsed)) {
      rows.push(parsed);
      offset += line.length + 1;
      // A complete row whose newline was lost: terminate it so the next append starts a new line.
      if (isLast && repair) appendFileSync(path, "\n");
      continue;
    }
    if (isLast) {
      // Only the final, unterminated line can be a half-written row.
      if (repair) truncateSync(path, Buffer.byteLength(text.slice(0, offset), "utf8"));
      break;
    }
    throw new EdgeInfError(`${path}:${i + 1}: not a sample row`, "the run dir is damaged: fix or delete that line, or use a new run dir");
  }
  return rows;
}

/**
 * Appends one row and fsyncs, so it survives a crash right after. A write that fails or comes up short (a full disk)
 * is cut back off, so no partial row is left to be counted as done, and reported as one error line.
 */
export function appendSample(path: string, row: SampleRow): void {
  const bytes = Buffer.from(`${JSON.stringify(row)}\n`, "utf8");
  let fd: number;
  try {
    fd = openSync(path, "a");
  } catch (e) {
    throw new EdgeInfError(`cannot append to ${path}: ${(e as Error).message}`, "check the run dir's permissions and free space");
  }
  let start = -1;
  try {
    start = fstatSync(fd).size;
    let done = 0;
    while (done < bytes.length) {
      const n = writeSync(fd, bytes, done, bytes.length - done);
      if (n <= 0) throw new Error(`short write (${done} of ${bytes.length} bytes)`);
      done += n;
    }
    fsyncSync(fd);
  } catch (e) {
    if (start >= 0) {
      try {
        ftruncateSync(fd, start);
      } catch {
        // a device or a vanished file: nothing to cut back
      }
    }
    throw new EdgeInfError(`cannot append a sample to ${path}: ${(e as Error).message}`, "free disk space, then run the same command again (finished samples are kept)");
  } finally {
    closeSync(fd);
  }
}
