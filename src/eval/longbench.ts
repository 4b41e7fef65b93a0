import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { fail } from "../util/errors.js";
import { readRecords, typeName } from "./sources/records.js";
import { dataset2prompt } from "./longbench-config.js";

export { firstLineDatasets } from "./metrics/index.js";

/** One LongBench record (THUDM/LongBench data/*.jsonl); our synthetic generator writes the same shape. */
export interface LongBenchRecord {
  input: string;
  context: string;
  answers: string[];
  all_classes: string[] | null;
  length: number;
  _id: string;
  dataset?: string;
  language?: string;
}

export interface ReadJsonlOptions {
  /** "stop": throw on the first bad line; "skip": report it through `warn` and go on. */
  onError: "skip" | "stop";
  warn?: (msg: string) => void;
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

/** The first thing wrong with a parsed line, or null when it is a valid record. */
function recordProblem(value: unknown): string | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "line is not a JSON object";
  const record = value as Record<string, unknown>;
  for (const key of ["input", "context", "answers"] as const) {
    if (!(key in record)) return `record has no "${key}"`;
  }
  if (typeof record.input !== "string") return `"input" must be a string, got ${typeName(record.input)}`;
  if (typeof record.context !== "string") return `"context" must be a string, got ${typeName(record.context)}`;
  if (!isStringArray(record.answers)) return `"answers" must be an array of strings, got ${typeName(record.answers)}`;
  if (record.all_classes !== undefined && record.all_classes !== null && !isStringArray(record.all_classes)) {
    return `"all_classes" must be null or an array of strings, got ${typeName(record.all_classes)}`;
  }
  if (typeof record.length !== "number" || !Number.isFinite(record.length) || record.length < 0) {
    return `"length" must be a non-negative number, got ${typeName(record.length)}`;
  }
  if (typeof record._id !== "string") return `"_id" must be a string, got ${typeName(record._id)}`;
  for (const key of ["dataset", "language"] as const) {
    if (record[key] !== undefined && typeof record[key] !== "string") return `"${key}" must be a string, got ${typeName(record[key])}`;
  }
  return null;
}

function toRecord(record: Record<string, unknown>): LongBenchRecord {
  const result: LongBenchRecord = {
    input: record.input as string,
    context: record.context as string,
    answers: record.answers as string[],
    all_classes: (record.all_classes as string[] | null | undefined) ?? null,
    length: record.length as number,
    _id: record._id as string,
  };
  if (typeof record.dataset === "string") result.dataset = record.dataset;
  if (typeof record.language === "string") result.language = record.language;
  return result;
}

/**
 * Read a LongBench-format JSONL file. Blank lines are ignored; each bad line is reported as
 * `FILE:LINE: problem` (1-based line numbers). A missing `all_classes` is read as null.
 */
export function readLongBenchJsonl(path: string, opts: ReadJsonlOptions): LongBenchRecord[] {
  return readRecords<LongBenchRecord>(path, "LongBench JSONL file", (value) => {
    const problem = recordProblem(value);
    return problem === null ? { record: toRecord(value as Record<string, unknown>) } : { problem };
  }, opts);
}

/**
 * Python `template.format(**fields)` restricted to named fields: `{{`/`}}` are literal braces,
 * `{name}` is replaced (values are inserted as-is, never re-parsed, so code with braces in the
 * context is safe). Positional fields, conversions (`!r`) and format specs (`:>8`) are refused.
 */
export function formatPythonTemplate(template: string, fields: Readonly<Record<string, string>>): string {
  let out = "";
  let i = 0;
  while (i < template.length) {
    const ch = template[i]!;
    if (ch === "{") {
      if (template[i + 1] === "{") {
        out += "{";
        i += 2;
        continue;
      }
      const close = template.indexOf("}", i + 1);
      if (close < 0) fail(`prompt template: single '{' at offset ${i}`, "write '{{' for a literal brace");
      const name = template.slice(i + 1, close);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        fail(`prompt template: unsupported field "{${name}}" at offset ${i}`, "use plain named fields such as {context} and {input}");
      }
      if (!Object.prototype.hasOwnProperty.call(fields, name)) {
        fail(`prompt template: no value for field "{${name}}"`, `available fields: ${Object.keys(fields).join(", ")}`);
      }
      out += fields[name];
      i = close + 1;
      continue;
    }
    if (ch === "}") {
      if (template[i + 1] === "}") {
        out += "}";
        i += 2;
        continue;
      }
      fail(`prompt template: single '}' at offset ${i}`, "write '}}' for a literal brace");
    }
    out += ch;
    i++;
  }
  return out;
}

/** The dataset's prompt (LongBench pred.py `prompt_format.format(**json_obj)`) for one record. */
export function buildPrompt(dataset: string, record: Pick<LongBenchRecord, "context" | "input">): string {
  const template = dataset2prompt[dataset];
  if (template === undefined) {
    fail(`no prompt template for dataset "${dataset}"`, `known datasets: ${Object.keys(dataset2prompt).join(", ")}`);
  }
  return formatPythonTemplate(template, { context: record.context, input: record.input });
}

/**
 * The record's question as the prompt ends with it: its `input` where the dataset's template places it, and all the
 * template writes after that (e.g. "Who?\nAnswer:"); null when the template has no {input} (summaries, code
 * completion: nothing question-specific). buildPrompt's text is the context part followed by this suffix.
 */
export function questionSuffix(dataset: string, record: Pick<LongBenchRecord, "context" | "input">): string | null {
  const prompt = buildPrompt(dataset, record); // refuses a dataset without a template
  const template = dataset2prompt[dataset]!;
  const at = template.indexOf("{input}");
  if (at < 0) return null;
  return prompt.slice(formatPythonTemplate(template.slice(0, at), { context: record.context, input: record.input }).length);
}

/**
 * LongBench pred.py middle truncation: when longer than maxLength, keep
 * `ids[:half] + ids[-half:]` with half = int(maxLength / 2) — so an odd maxLength keeps
 * maxLength − 1 tokens. maxLength < 2 is refused (Python's `ids[-0:]` would keep everything).
 */
export function truncateMiddle(ids: readonly number[], maxLength: number): number[] {
  if (!Number.isInteger(maxLength) || maxLength < 2) {
    fail(`truncateMiddle: maxLength must be an integer >= 2, got ${maxLength}`, "pass the model's context budget in tokens");
  }
  if (ids.length <= maxLength) return ids.slice();
  const half = Math.trunc(maxLength / 2);
  return ids.slice(0, half).concat(ids.slice(ids.length - half));
}

/**
 * LongBench pred.py truncation as it really happens: when the tokenised prompt is longer than
 * maxLength, decode `ids[:half]` and `ids[-half:]` (special tokens skipped) and join the two texts;
 * the caller re-tokenises that text (after the chat template, if any). Re-tokenising can give a
 * slightly different count than maxLength where a token boundary falls at the cut. Returns null
 * when no truncation is needed. `tail` is how many ids the second half keeps: int(maxLength / 2) by
 * default (pred.py), ceil for LongBench v2's `ids[-max_len//2:]` (Python floors −max_len / 2).
 */
export function truncateMiddleText(tokenizer: Pick<Tokenizer, "decode">, ids: readonly number[], maxLength: number, tail?: number): string | null {
  if (ids.length <= maxLength) return null;
  const kept = truncateMiddle(ids, maxLength);
  const head = kept.length / 2;
  const tailIds = tail === undefined ? kept.slice(head) : ids.slice(ids.length - tail);
  return tokenizer.decode(kept.slice(0, head)) + tokenizer.decode(tailIds);
}

/**
 * pred.py's samsum stop token: `tokenizer.encode("\n", add_special_tokens=False)[-1]` — the one id
 * a lone newline encodes to last (for Llama tokenizers "<0x0A>", not every token containing "\n").
 * pred.py also sets `min_length = context_length + 1`: at least one new token before EOS or that id.
 */
export function samsumNewlineId(tokenizer: Pick<Tokenizer, "encode">): number {
  const ids = tokenizer.encode("\n", { bos: false });
  if (ids.length === 0) fail("the tokenizer encodes \"\\n\" to nothing", "samsum needs a newline token to stop on");
  return ids[ids.length - 1]!;
}
