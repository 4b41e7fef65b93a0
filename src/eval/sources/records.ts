/**
 * Reading the user's benchmark files: JSONL (one record a line; LongBench, InfiniteBench) or one JSON array
 * (LongBench v2's data.json), each record checked by the source's parser. A bad record is one line naming the file
 * and the line (or item), then stops the run or, with onError "skip", is reported through `warn` and left out.
 */
import { readFileSync } from "node:fs";
import { EdgeInfError, fail } from "../../util/errors.js";

export interface ReadRecordsOptions {
  /** "stop": throw on the first bad record; "skip": report it through `warn` and go on. */
  onError: "skip" | "stop";
  warn?: (msg: string) => void;
  /** Also read a file that starts with "[" as one JSON array (LongBench v2's data.json); default: JSONL only. */
  jsonArray?: boolean;
}

/** A parser's verdict on one parsed JSON value: the record, or what is wrong with it. */
export type Parsed<T> = { record: T } | { problem: string };

/**
 * The records of `path`. `what` names the file kind in a read error ("LongBench JSONL file"); `parse` turns one
 * JSON value into a record or a problem. A file whose first character is "[" is read as one JSON array.
 */
export function readRecords<T>(path: string, what: string, parse: (value: unknown) => Parsed<T>, opts: ReadRecordsOptions): T[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8").replace(/^\uFEFF/, "");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    fail(`${path}: cannot read ${what} (${reason})`, "check the task's path in the suite YAML");
  }
  const warn = opts.warn ?? ((msg: string) => process.stderr.write(`warning: ${msg}\n`));
  const records: T[] = [];
  const take = (where: string, unit: string, value: () => unknown): void => {
    let verdict: Parsed<T>;
    try {
      verdict = parse(value());
    } catch (error) {
      verdict = { problem: `malformed JSON (${(error as Error).message})` };
    }
    if ("record" in verdict) {
      records.push(verdict.record);
      return;
    }
    const message = `${where}: ${verdict.problem}`;
    if (opts.onError === "stop") throw new EdgeInfError(message, `fix or remove that ${unit}, or read with onError "skip"`);
    warn(`${message} (${unit} skipped)`);
  };
  if (opts.jsonArray === true && text.trimStart().startsWith("[")) {
    let items: unknown;
    try {
      items = JSON.parse(text);
    } catch (error) {
      // V8's message quotes the text around the error, newlines and all: keep the error on one line.
      fail(`${path}: not valid JSON (${(error as Error).message.replace(/\r?\n/g, "\\n")})`, "give the file as downloaded (a JSON array of items)");
    }
    (items as unknown[]).forEach((item, index) => take(`${path}: item ${index + 1}`, "item", () => item));
    return records;
  }
  text.split("\n").forEach((rawLine, index) => {
    const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
    if (line.trim().length === 0) return;
    take(`${path}:${index + 1}`, "line", () => JSON.parse(line));
  });
  return records;
}

/** "a string", "null", "an array", … for problem messages. */
export function typeName(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}

/** The first of `keys` of `record` that is not a string, as a problem message; null when all are. */
export function nonStringKey(record: Record<string, unknown>, keys: readonly string[]): string | null {
  for (const key of keys) {
    if (!(key in record)) return `record has no "${key}"`;
    if (typeof record[key] !== "string") return `"${key}" must be a string, got ${typeName(record[key])}`;
  }
  return null;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
