#!/usr/bin/env node
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { EdgeInfError, resourceError } from "../util/errors.js";
import { infoCommand } from "./commands/info.js";
import { generateCommand } from "./commands/generate.js";
import { pplCommand } from "./commands/ppl.js";
import { trainCommand } from "./commands/train.js";
import { exportCommand } from "./commands/export.js";
import { evalCommand } from "./commands/eval.js";
import { layoutCommand } from "./commands/layout.js";
import { retrievalHeadsCommand } from "./commands/retrieval-heads.js";
import { reportCommand } from "./commands/report.js";

/** One-line errors for bad input; a stack trace only for bugs (set EDGEINF_DEBUG=1 to always see it). */
function reportError(e: unknown): never {
  const oneLine = e instanceof EdgeInfError ? e : resourceError(e);
  if (oneLine && !process.env.EDGEINF_DEBUG) {
    process.stderr.write(`error: ${oneLine.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(2);
}

process.on("unhandledRejection", reportError);

/** Options that may be given more than once (their handlers take lists: ppl --file, generate --method-option); any other repeated option is an error. */
const REPEATABLE = new Set(["methods", "set", "layer", "l", "file", "f", "method-option", "methodOption"]);

/**
 * yargs turns a repeated option into an array, which handlers expecting one value then misread (`-m A -m B`,
 * `--out a --out b`): refuse it with one line before any handler runs.
 */
function rejectRepeatedOptions(argv: Record<string, unknown>): void {
  const repeated = Object.entries(argv)
    .filter(([key, value]) => key !== "_" && key !== "$0" && Array.isArray(value) && !REPEATABLE.has(key))
    .map(([key, value]) => [key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), value as unknown[]] as const)
    .sort((a, b) => b[0].length - a[0].length); // the long name of an aliased option
  if (repeated.length === 0) return;
  const [name, values] = repeated[0]!;
  const flag = name.length === 1 ? `-${name}` : `--${name}`;
  throw new EdgeInfError(`${flag} was given ${values.length} times (${values.map((v) => JSON.stringify(v)).join(", ")})`, `give ${flag} once`);
}

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
    .command(layoutCommand)
    .command(retrievalHeadsCommand)
    .demandCommand(1, "name a command (edgeinf --help lists them)")
    .middleware(rejectRepeatedOptions, true)
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
