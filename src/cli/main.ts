#!/usr/bin/env node
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { EdgeInfError } from "../util/errors.js";
import { infoCommand } from "./commands/info.js";
import { generateCommand } from "./commands/generate.js";
import { pplCommand } from "./commands/ppl.js";
import { trainCommand } from "./commands/train.js";
import { exportCommand } from "./commands/export.js";
import { evalCommand } from "./commands/eval.js";
import { reportCommand } from "./commands/report.js";

/** One-line errors for bad input; a stack trace only for bugs (set EDGEINF_DEBUG=1 to always see it). */
function reportError(e: unknown): never {
  if (e instanceof EdgeInfError && !process.env.EDGEINF_DEBUG) {
    process.stderr.write(`error: ${e.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(2);
}

process.on("unhandledRejection", reportError);

try {
  await yargs(hideBin(process.argv))
    .scriptName("edgeinf")
    .usage("$0 <command> [options]\n\nFine-tune and evaluate EdgeInfinite's memory-gating module on a frozen Llama-family backbone.")
    .command(infoCommand)
    .command(generateCommand)
    .command(pplCommand)
    .command(trainCommand)
    .command(exportCommand)
    .command(evalCommand)
    .command(reportCommand)
    .demandCommand(1, "name a command (edgeinf --help lists them)")
    .strict()
    .fail((msg, err) => {
      if (err) reportError(err);
      // yargs words some messages over several lines ("Invalid values:\n  Argument: …"); keep the one-line rule.
      const oneLine = msg.split("\n").map((part) => part.trim()).filter(Boolean).join(" ");
      process.stderr.write(`error: ${oneLine} — see edgeinf --help\n`);
      process.exit(1);
    })
    .help()
    .wrap(Math.min(120, process.stdout.columns ?? 120))
    .parseAsync();
} catch (e) {
  reportError(e);
}
