import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../util/atomic.js";

/** One optimizer step as logged (train_log.jsonl; train_log.csv holds the same minus the baseline). */
export interface TrainLogRow {
  step: number;
  loss: number;
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  tokensPerSecond: number;
  /** Null on steps without a held-out evaluation. */
  heldoutLoss: number | null;
  baselineHeldoutLoss: number;
}

/** The result of a run, printed by `edgeinf train` and written to summary.json. */
export interface TrainResult {
  steps: number;
  finalLoss: number;
  heldoutLoss: number;
  baselineHeldoutLoss: number;
  checkpointDir: string;
  trainableParameters: number;
  backboneParameters: number;
  backboneChecksum: string;
  tokensPerSecond: number;
}

const CSV_HEADER = "step,loss,lr,grad_norm,tokens_per_s,heldout_loss";

/**
 * The log files of a run folder: train_log.jsonl and train_log.csv (one row per step, appended as steps finish) and
 * summary.json (the result, written atomically at the end). On resume, rows for steps after the checkpoint the run
 * resumes from (logged by the interrupted run, redone now) are trimmed first.
 */
export class TrainLog {
  readonly jsonl: string;
  readonly csv: string;
  readonly summary: string;

  constructor(readonly dir: string) {
    this.jsonl = join(dir, "train_log.jsonl");
    this.csv = join(dir, "train_log.csv");
    this.summary = join(dir, "summary.json");
  }

  /** Readies the files for appending steps after `resumedStep` (0 for a new run): trims later rows, writes the CSV header. */
  open(resumedStep: number): void {
    if (resumedStep > 0) this.dropRowsAfter(resumedStep);
    if (!existsSync(this.csv)) appendFileSync(this.csv, `${CSV_HEADER}\n`);
  }

  append(row: TrainLogRow): void {
    appendFileSync(this.jsonl, JSON.stringify(row) + "\n");
    appendFileSync(this.csv, `${row.step},${row.loss},${row.lr},${row.gradNorm},${row.tokensPerSecond.toFixed(1)},${row.heldoutLoss ?? ""}\n`);
  }

  /** The complete JSONL rows (a row cut short by a crash is skipped). */
  rows(): TrainLogRow[] {
    if (!existsSync(this.jsonl)) return [];
    const rows: TrainLogRow[] = [];
    for (const line of readFileSync(this.jsonl, "utf8").split("\n")) {
      if (line.trim() === "") continue;
      try {
        rows.push(JSON.parse(line) as TrainLogRow);
      } catch {
        // cut short by a crash
      }
    }
    return rows;
  }

  writeSummary(result: TrainResult): void {
    writeFileAtomic(this.summary, JSON.stringify(result, null, 2));
  }

  /** summary.json of a finished run, or null when there is none (or it cannot be read). */
  readSummary(): TrainResult | null {
    if (!existsSync(this.summary)) return null;
    try {
      const s = JSON.parse(readFileSync(this.summary, "utf8")) as TrainResult;
      return typeof s.steps === "number" && typeof s.finalLoss === "number" ? s : null;
    } catch {
      return null;
    }
  }

  /** Removes rows for steps > `step`, atomically (JSONL rows cut short by a crash and CSV rows with missing fields too). */
  private dropRowsAfter(step: number): void {
    if (existsSync(this.jsonl)) {
      const lines = readFileSync(this.jsonl, "utf8").split("\n").filter((l) => l.trim() !== "");
      const keep = lines.filter((l) => {
        try {
          return (JSON.parse(l) as TrainLogRow).step <= step;
        } catch {
          return false;
        }
      });
      if (keep.length !== lines.length) writeFileAtomic(this.jsonl, keep.map((l) => l + "\n").join(""));
    }
    if (existsSync(this.csv)) {
      const [header, ...lines] = readFileSync(this.csv, "utf8").split("\n").filter((l) => l.trim() !== "");
      const fields = header!.split(",").length;
      const keep = lines.filter((l) => Number(l.split(",")[0]) <= step && l.split(",").length === fields);
      if (keep.length !== lines.length) writeFileAtomic(this.csv, [header, ...keep].map((l) => l + "\n").join(""));
    }
  }
}
