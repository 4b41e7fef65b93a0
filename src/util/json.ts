import { readFileSync } from "node:fs";
import { EdgeInfError } from "./errors.js";

/**
 * A JSON file the program wrote itself (latest.json, checkpoint.json, run.json) read back: a missing, unreadable or
 * garbled one (a disk error, a hand edit, `echo garbage >`) is one error line naming the file and `fix`, never a
 * SyntaxError with a stack.
 */
export function readJsonFile(path: string, fix: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new EdgeInfError(`cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, fix);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    // V8 quotes the bad text, newlines included: keep the one-line rule.
    throw new EdgeInfError(`${path} is not valid JSON (${(e as Error).message.replace(/\s+/g, " ").slice(0, 200)})`, fix);
  }
}
