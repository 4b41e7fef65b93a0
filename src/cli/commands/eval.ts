import type { Argv, CommandModule } from "yargs";
import { join, relative } from "node:path";
import { loadSuite } from "../../eval/suite.js";
import { checkLimit, runSuite, selectMethods, type RunResult } from "../../eval/harness.js";
import { comparisonText } from "../../eval/report.js";
import { scorePredictionsFile, scorePredsDir } from "../../eval/score.js";
import type { ProgressMode } from "../../eval/progress.js";
import type { BackendChoice } from "../common.js";
import { BACKEND_CHOICES, log } from "../common.js";
import { fail } from "../../util/errors.js";
import { checkWorkerCount } from "../../parallel/pool.js";

const PROGRESS_CHOICES = ["auto", "bar", "lines", "none"] as const;

interface EvalArgs {
  suite: string;
  methods?: string[];
  limit?: number;
  runDir?: string;
  backend?: BackendChoice;
  progress: ProgressMode;
  workers?: number;
}

interface ScoreArgs {
  task?: string;
  preds?: string;
  predsDir?: string;
  e?: boolean;
  rougeExact?: boolean;
  json?: boolean;
}

/** `--methods a,b --methods c` → ["a", "b", "c"]. */
function splitList(value: unknown): string[] {
  const items = (Array.isArray(value) ? value : [value]).map(String);
  return items.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
}

/** A path as the user would type it from here (relative when inside the working directory). */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== "" && !rel.startsWith("..") ? rel : path;
}

export const evalScoreCommand: CommandModule<object, ScoreArgs> = {
  command: "score",
  describe: "Score LongBench predictions made elsewhere (pred.py JSONL rows), as LongBench's eval.py does",
  builder: (y) =>
    y
      .usage("$0 eval score --task T --preds preds.jsonl [--json]\n$0 eval score --preds-dir pred/MODEL [--e]\n\nScore a LongBench prediction file (pred.py rows {pred, answers, all_classes, length}) with the task's metric, as LongBench's eval.py does: 100 × mean, first-line rule for trec/triviaqa/samsum/lsht, LongBench-E length buckets when every row has a length.")
      .option("task", { alias: "t", type: "string", describe: "dataset whose metric applies (narrativeqa, hotpotqa, trec, lcc, passkey, ... — see docs/metrics.md)" })
      .option("preds", { alias: "p", type: "string", describe: "predictions JSONL, one {pred, answers, all_classes, length} per line" })
      .option("preds-dir", { type: "string", describe: "score every DATASET.jsonl in this folder (pred/MODEL) and write result.json there, as eval.py --model MODEL" })
      .option("e", { type: "boolean", describe: "with --preds-dir: LongBench-E length buckets (eval.py --e)" })
      .option("rouge-exact", { type: "boolean", describe: "true ROUGE-L on very long sentences, where LongBench's scorer hits Python's recursion limit and scores 0 (docs/metrics.md)" })
      .option("json", { type: "boolean", describe: "print a JSON record {task, score, n, byLength?}" })
      .example("$0 eval score --task hotpotqa --preds pred/hotpotqa.jsonl", "score one task's predictions")
      .example("$0 eval score --task gov_report --preds pred_e/gov_report.jsonl --json", "JSON, with LongBench-E 0-4k / 4-8k / 8k+ buckets")
      .example("$0 eval score --preds-dir pred_e/my-model --e", "all datasets of a model into pred_e/my-model/result.json"),
  handler: (args) => {
    const options = { rougeRecursion: args.rougeExact ? ("exact" as const) : ("longbench" as const) };
    if (args.predsDir !== undefined) {
      if (args.task !== undefined || args.preds !== undefined) fail("--preds-dir scores a whole folder and takes no --task/--preds", "pass either --preds-dir DIR or --task T --preds FILE");
      const scores = scorePredsDir(args.predsDir, args.e === true, options);
      console.log(JSON.stringify(scores, null, 2));
      log(`wrote ${shown(join(args.predsDir, "result.json"))}`);
      return;
    }
    if (args.task === undefined || args.preds === undefined) fail("eval score needs --task and --preds (or --preds-dir)", "e.g. edgeinf eval score --task hotpotqa --preds pred/hotpotqa.jsonl");
    const result = scorePredictionsFile(args.task, args.preds, options);
    if (args.json) {
      console.log(JSON.stringify(result, null, 2));
      return;
    }
    const buckets = result.byLength
      ? ` | by length: ${Object.entries(result.byLength)
          .map(([bucket, score]) => `${bucket} ${Number.isNaN(score) ? "-" : score.toFixed(2)}`)
          .join(", ")}`
      : "";
    console.log(`${result.task}: ${result.score.toFixed(2)} (${result.n} predictions)${buckets}`);
  },
};

export const evalCommand: CommandModule<object, EvalArgs> = {
  command: "eval",
  describe: "Run an evaluation suite (tasks × lengths × methods) and print the comparison; `eval score` scores LongBench predictions",
  builder: (y) =>
    (y as unknown as Argv<object>)
      .usage(
        "$0 eval --suite eval/NAME.yaml [options]\n$0 eval score --task T --preds preds.jsonl\n\n" +
          "Run every task × length × sample × method of a suite (docs/evaluation.md), one line per finished sample in RUN_DIR/samples.jsonl; " +
          "re-running with the same --run-dir skips finished samples. Ctrl-C stops after the current sample and still writes the tables " +
          "(results.csv/json/md); plots: edgeinf report RUN_DIR.",
      )
      .command(evalScoreCommand)
      // Not global: `eval score` has options of its own and must not inherit (or demand) these.
      .option("suite", { alias: "s", type: "string", global: false, demandOption: true, describe: "suite YAML (see eval/)" })
      .option("methods", { type: "string", array: true, global: false, describe: "run only these methods (labels or names, comma-separated): --methods full,streaming" })
      .option("limit", { type: "number", global: false, describe: "at most N samples per task × length" })
      .option("run-dir", { type: "string", global: false, describe: "where samples, tables and run.json go (default: runs/<suite name>)" })
      .option("backend", { choices: BACKEND_CHOICES, type: "string", global: false, describe: "tfjs backend (default: $EDGEINF_BACKEND or auto)" })
      .option("progress", { choices: PROGRESS_CHOICES, default: "auto" as const, global: false, describe: "auto: a bar on a terminal, one line per sample otherwise" })
      .option("workers", {
        type: "number",
        global: false,
        describe: "worker threads running samples, each with its own backend (default: one per core on wasm/cpu, else 1); same rows, but TTFT is contended when > 1",
      })
      .example("$0 eval --suite eval/quick.yaml --backend wasm", "every method on stories260K (results in runs/quick)")
      .example("$0 eval --suite eval/edge-lm.yaml --methods full,streaming,edgeinfinite --limit 2", "a subset; run it again to resume")
      .example("$0 eval --suite eval/edge-lm-passkey.yaml --workers 1", "one worker: uncontended TTFT")
      .example("$0 eval score --task narrativeqa --preds pred/narrativeqa.jsonl", "score predictions made elsewhere") as unknown as Argv<EvalArgs>,
  handler: async (args) => {
    const suite = loadSuite(args.suite);
    const methods = args.methods === undefined ? undefined : splitList(args.methods);
    if (methods !== undefined) {
      if (methods.length === 0) fail("--methods is empty", "give method labels or names, e.g. --methods full,streaming");
      selectMethods(suite, methods, "--methods"); // fails before the model loads; runSuite selects again
    }
    if (args.limit !== undefined) checkLimit(args.limit, "--limit");
    if (args.workers !== undefined) checkWorkerCount(args.workers, "--workers");
    const runDir = args.runDir ?? join("runs", suite.name);

    const controller = new AbortController();
    let interrupts = 0;
    const onSigint = (): void => {
      interrupts++;
      if (interrupts > 1) {
        log(`interrupted again: quitting now; finished samples are kept in ${join(runDir, "samples.jsonl")} (tables not written)`);
        process.exit(130);
      }
      log("interrupt: stopping after the current sample, then writing the tables (Ctrl-C again to quit at once)");
      controller.abort();
    };
    process.on("SIGINT", onSigint);
    let result: RunResult;
    try {
      result = await runSuite(suite, {
        runDir,
        ...(methods !== undefined ? { methods } : {}),
        ...(args.limit !== undefined ? { limit: args.limit } : {}),
        ...(args.backend !== undefined ? { backend: args.backend } : {}),
        progress: args.progress,
        signal: controller.signal,
        workers: args.workers ?? "auto",
      });
    } finally {
      process.off("SIGINT", onSigint);
    }

    console.log(comparisonText(suite.name, result.aggregates, suite.methods.map((m) => m.label)));
    const dir = shown(result.runDir);
    const total = result.resumedSamples + result.newSamples;
    log(`${result.newSamples} samples run, ${result.resumedSamples} already finished in ${dir} (skipped)`);
    log(`results: ${join(dir, "results.csv")}, results.json, results.md; per sample: samples.jsonl, samples.csv; run record: run.json`);
    if (!result.complete) {
      log(`interrupted after ${total} finished samples: run the same command again to continue (finished samples are skipped)`);
      process.exitCode = 130;
    } else {
      log(`plots: edgeinf report ${dir}`);
    }
  },
};
