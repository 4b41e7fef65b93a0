import type { CommandModule } from "yargs";
import { existsSync, statSync } from "node:fs";
import { rebuildTables, report } from "../../eval/report.js";
import { fail } from "../../util/errors.js";
import { log } from "../common.js";

interface ReportArgs {
  "run-dir": string;
  "window-split"?: number;
}

export const reportCommand: CommandModule<object, ReportArgs> = {
  command: "report <run-dir>",
  describe: "Print a run's comparison table, rewrite its tables and draw its plots (SVG and PNG)",
  builder: (y) =>
    y
      .positional("run-dir", { type: "string", demandOption: true, describe: "run directory written by edgeinf eval (e.g. runs/quick)" })
      .option("window-split", {
        type: "number",
        describe: "also split synthetic scores by needle inside/outside the last N prompt tokens (default: the suite's windowSplitTokens)",
      })
      .usage(
        "$0 report <run-dir>\n\nPrint the comparison (score pivot and all measurements, Markdown) of a finished or partial run, rewrite " +
          "results.csv/json/md and samples.csv from its samples.jsonl, and write score_vs_kv and ttft_vs_length into it as .svg and .png " +
          "(PNG rendered with @resvg/resvg-js and the system fonts; when it cannot load, a warning and SVG only).",
      )
      .example("$0 report runs/quick", "tables and plots of eval/quick.yaml's default run dir")
      .example("$0 report runs/edge-lm-retrieval --window-split 344", "scores for needles inside / outside a 344-token window"),
  handler: async (args) => {
    const dir = args["run-dir"];
    if (!existsSync(dir)) fail(`run dir ${dir} does not exist`, "give the --run-dir of an edgeinf eval run (default runs/<suite name>)");
    if (!statSync(dir).isDirectory()) fail(`${dir} is not a directory`, "give the run dir, not a file in it");
    const split = args["window-split"];
    if (split !== undefined && !(Number.isInteger(split) && split > 0)) {
      fail(`--window-split must be a positive whole number of tokens, got ${String(split)}`, "e.g. --window-split 344 (the EdgeInfinite window)");
    }
    const tables = rebuildTables(dir, split !== undefined ? { windowSplitTokens: split } : {});
    const { files } = await report(dir, { warn: (m) => log(`warning: ${m}`) });
    if (tables) log(`tables: ${tables.join(", ")}`);
    log(`plots: ${files.join(", ")}`);
  },
};
