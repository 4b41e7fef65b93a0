import type { CommandModule } from "yargs";
import { existsSync, statSync } from "node:fs";
import { rebuildTables, report } from "../../eval/report.js";
import { fail } from "../../util/errors.js";
import { log } from "../common.js";

interface ReportArgs {
  "run-dir": string;
}

export const reportCommand: CommandModule<object, ReportArgs> = {
  command: "report <run-dir>",
  describe: "Print a run's comparison table, rewrite its tables and draw its plots (SVG and PNG)",
  builder: (y) =>
    y
      .positional("run-dir", { type: "string", demandOption: true, describe: "run directory written by edgeinf eval (e.g. runs/quick)" })
      .usage(
        "$0 report <run-dir>\n\nPrint the comparison (score pivot and all measurements, Markdown) of a finished or partial run, rewrite " +
          "results.csv/json/md and samples.csv from its samples.jsonl, and write score_vs_kv and ttft_vs_length into it as .svg and .png " +
          "(PNG rendered with @resvg/resvg-js and the system fonts; when it cannot load, a warning and SVG only).",
      )
      .example("$0 report runs/quick", "tables and plots of eval/quick.yaml's default run dir"),
  handler: async (args) => {
    const dir = args["run-dir"];
    if (!existsSync(dir)) fail(`run dir ${dir} does not exist`, "give the --run-dir of an edgeinf eval run (default runs/<suite name>)");
    if (!statSync(dir).isDirectory()) fail(`${dir} is not a directory`, "give the run dir, not a file in it");
    const tables = rebuildTables(dir);
    const { files } = await report(dir, { warn: (m) => log(`warning: ${m}`) });
    if (tables) log(`tables: ${tables.join(", ")}`);
    log(`plots: ${files.join(", ")}`);
  },
};
