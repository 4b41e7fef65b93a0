/**
 * One-line messages for zod validation issues in user files (eval suites, training recipes): the key path,
 * the bad key or value, and what is allowed there (the keys of that mapping, the values of an enum, the expected
 * type and range). Shared by src/eval/suite.ts and src/training/recipe.ts.
 */
import { z } from "zod";

type Issue = z.core.$ZodIssue;
type Wrapper = { type: string; innerType?: z.ZodType };

function unwrap(node: z.ZodType): z.ZodType {
  // Unwrap optional/default/nullable wrappers before looking inside.
  for (;;) {
    const def = node.def as Wrapper;
    if ((def.type === "optional" || def.type === "default" || def.type === "nullable") && def.innerType) node = def.innerType;
    else return node;
  }
}

/** The alternative of a discriminated union that `value` selects (by its discriminator key), if any. */
function selectedOption(node: z.ZodDiscriminatedUnion, value: unknown): z.ZodType | null {
  const key = (node.def as unknown as { discriminator: string }).discriminator;
  const tag = value !== null && typeof value === "object" ? (value as Record<string, unknown>)[key] : undefined;
  for (const option of node.options as z.ZodType[]) {
    const literal = option instanceof z.ZodObject ? allowedValues((option.shape as Record<string, z.ZodType>)[key]!) : null;
    if (literal?.includes(String(tag))) return option;
  }
  return null;
}

/**
 * The schema node at `path` (through arrays, optionals, defaults and — given the input — the alternative of a
 * discriminated union the input selects), to list its keys in an error.
 */
export function schemaAt(schema: z.ZodType, path: readonly PropertyKey[], input?: unknown): z.ZodType | null {
  let node: z.ZodType = schema;
  let depth = 0;
  for (const step of [...path, null]) {
    node = unwrap(node);
    if (node instanceof z.ZodDiscriminatedUnion) {
      const option = selectedOption(node, valueAt(input, path.slice(0, depth)));
      if (!option) return step === null ? node : null;
      node = unwrap(option);
    }
    depth++;
    if (step === null) return node;
    if (node instanceof z.ZodObject && typeof step === "string") {
      const next = (node.shape as Record<string, z.ZodType>)[step];
      if (!next) return null;
      node = next;
    } else if (node instanceof z.ZodArray && typeof step === "number") {
      node = node.element as z.ZodType;
    } else return null;
  }
  return node;
}

/** `methods[2].budget` from ["methods", 2, "budget"]. */
export function keyPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const step of path) out += typeof step === "number" ? `[${step}]` : `${out ? "." : ""}${String(step)}`;
  return out || "(top level)";
}

/** The value at `path` inside `input` (undefined where the path leaves it). */
export function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const step of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[step];
  }
  return v;
}

/** A value as it would appear in the user's file, shortened: `"mlp"`, `3`, `a list`, `a mapping`. */
export function showValue(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return v.length === 0 ? "an empty list" : "a list";
  if (typeof v === "object") return "a mapping";
  return typeof v;
}

/** What kind of YAML value `v` is: a string, a number, a list, a mapping, … */
function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "number") return Number.isInteger(v) ? "an integer" : "a number";
  if (typeof v === "boolean") return "a boolean";
  return `a ${typeof v}`;
}

interface Bound {
  value: number;
  inclusive: boolean;
}

function numberExpectation(node: z.ZodType): string {
  let int = false;
  let min: Bound | undefined;
  let max: Bound | undefined;
  for (const check of (node.def as { checks?: { _zod: { def: Record<string, unknown> } }[] }).checks ?? []) {
    const d = check._zod.def;
    if (d.check === "number_format" && typeof d.format === "string" && /int/.test(d.format)) int = true;
    if (d.check === "greater_than") min = { value: Number(d.value), inclusive: Boolean(d.inclusive) };
    if (d.check === "less_than") max = { value: Number(d.value), inclusive: Boolean(d.inclusive) };
  }
  const noun = int ? "integer" : "number";
  if (min && !max && min.value === 0) return min.inclusive ? `a non-negative ${noun} (≥ 0)` : `a positive ${noun}`;
  const a = int ? "an" : "a";
  if (min && max) return `${a} ${noun} from ${min.value}${min.inclusive ? "" : " (exclusive)"} to ${max.value}${max.inclusive ? "" : " (exclusive)"}`;
  if (min) return `${a} ${noun} ${min.inclusive ? "≥" : ">"} ${min.value}`;
  if (max) return `${a} ${noun} ${max.inclusive ? "≤" : "<"} ${max.value}`;
  return `${a} ${noun}`;
}

function lengthBound(node: z.ZodType): number {
  for (const check of (node.def as { checks?: { _zod: { def: Record<string, unknown> } }[] }).checks ?? []) {
    const d = check._zod.def;
    if (d.check === "min_length") return Number(d.minimum);
  }
  return 0;
}

/** The allowed values of an enum or literal node, or null for any other node. */
export function allowedValues(node: z.ZodType): string[] | null {
  const n = unwrap(node);
  if (n instanceof z.ZodEnum) return (n.options as unknown[]).map(String);
  if (n instanceof z.ZodLiteral) return [...(n.def as unknown as { values: unknown[] }).values].map((v) => String(v));
  return null;
}

/** What a schema node accepts, in words: "a positive integer", "one of: scalar, learned", "a list of …". */
export function describeExpected(node: z.ZodType): string {
  const n = unwrap(node);
  const values = allowedValues(n);
  if (values) return values.length === 1 ? JSON.stringify(values[0]) : `one of: ${values.join(", ")}`;
  if (n instanceof z.ZodNumber) return numberExpectation(n);
  if (n instanceof z.ZodString) return lengthBound(n) > 0 ? "a non-empty string" : "a string";
  if (n instanceof z.ZodBoolean) return "true or false";
  if (n instanceof z.ZodArray) return `${lengthBound(n) > 0 ? "a non-empty list" : "a list"} of ${describeItems(n.element as z.ZodType)}`;
  if (n instanceof z.ZodObject) return `a mapping with keys ${Object.keys(n.shape).join(", ")}`;
  if (n instanceof z.ZodRecord) return "a mapping";
  if (n instanceof z.ZodUnion) return (n.options as z.ZodType[]).map(describeExpected).join(", or ");
  return "a valid value";
}

/** The items of a list, in words: "positive integers", "values from: q, k, v", "mappings with keys …". */
function describeItems(element: z.ZodType): string {
  const n = unwrap(element);
  const values = allowedValues(n);
  if (values) return `values from: ${values.join(", ")}`;
  if (n instanceof z.ZodObject) return `mappings with keys ${Object.keys(n.shape).join(", ")}`;
  const one = describeExpected(n);
  const noun = /^an? ([^,]*?)\b(integer|number|string|boolean)\b([^,]*)$/.exec(one);
  return noun ? `${noun[1]}${noun[2]}s${noun[3]}` : `items that are each ${one}`;
}

/** Unknown keys first: a misspelt key also shows up as a missing one, and "unknown key" is the useful report. */
export function firstIssue(issues: readonly Issue[]): Issue {
  return issues.find((i) => i.code === "unrecognized_keys") ?? issues[0]!;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

/** The allowed name closest to `name` (edit distance ≤ 2, or one contains the other), if any. */
export function closest(name: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const a of allowed) {
    const d = editDistance(name, a);
    if (d < bestD) [best, bestD] = [a, d];
  }
  return bestD <= Math.min(2, Math.max(1, Math.floor(name.length / 3))) ? best : undefined;
}

/** Does this union alternative's issue list say the value's basic type was wrong (so the alternative does not apply)? */
function typeMismatch(issues: readonly Issue[]): boolean {
  return issues.some((i) => i.path.length === 0 && (i.code === "invalid_type" || (i.code === "invalid_value" && i.values.length > 0)));
}

/**
 * One line naming the key path, the bad key or value, and what is allowed, for an issue of `schema` parsing
 * `input`: `unknown key "training.stepz" (did you mean "steps"?) — allowed keys in training: steps, …`,
 * `edgeinfinite.gateKind is "mlp" — allowed values: scalar, learned`, `training.steps is "three" (a string) —
 * expected a positive integer`, `data.sequenceLength is missing — expected a positive integer`.
 */
export function describeSchemaIssue(schema: z.ZodType, input: unknown, issue: Issue, prefix: readonly PropertyKey[] = []): string {
  const fullPath = [...prefix, ...issue.path];
  const where = keyPath(fullPath);
  const node = schemaAt(schema, issue.path, input);
  const value = valueAt(input, issue.path);
  if (issue.code === "unrecognized_keys") {
    const allowed = node instanceof z.ZodObject ? Object.keys(node.shape) : [];
    const keys = issue.keys.map((k) => `"${keyPath([...fullPath, k])}"`).join(", ");
    const guess = issue.keys.length === 1 ? closest(issue.keys[0]!, allowed) : undefined;
    const list = allowed.length ? allowed.join(", ") : "(none)";
    return `unknown key ${keys}${guess ? ` (did you mean "${guess}"?)` : ""} — allowed keys${fullPath.length ? ` in ${keyPath(fullPath)}` : " at the top level"}: ${list}`;
  }
  if (issue.code === "invalid_union" && node instanceof z.ZodUnion && value !== undefined) {
    // Report inside the one alternative the value's type fits (e.g. the mapping form of a string-or-mapping key).
    const options = node.options as z.ZodType[];
    const fitting = issue.errors.map((errs, i) => ({ errs, option: options[i]! })).filter(({ errs }) => errs.length > 0 && !typeMismatch(errs));
    if (fitting.length === 1) return describeSchemaIssue(fitting[0]!.option, value, firstIssue(fitting[0]!.errs), fullPath);
  }
  const expected = node ? describeExpected(node) : undefined;
  if (value === undefined && (issue.code === "invalid_type" || issue.code === "invalid_union" || issue.code === "invalid_value")) {
    return `${where} is missing — expected ${expected ?? ("expected" in issue ? String(issue.expected) : "a value")}`;
  }
  const values = node ? allowedValues(node) : null;
  if (issue.code === "invalid_value" && values) {
    return `${where} is ${showValue(value)} — allowed value${values.length === 1 ? "" : "s"}: ${values.join(", ")}`;
  }
  if (issue.code === "invalid_type") {
    const shown = showValue(value);
    const kind = /^(an? (empty )?(list|mapping)|null)$/.test(shown) ? "" : ` (${kindOf(value)})`;
    return `${where} is ${shown}${kind} — expected ${expected ?? issue.expected}`;
  }
  if (issue.code === "too_small" || issue.code === "too_big" || issue.code === "not_multiple_of" || issue.code === "invalid_union") {
    return `${where} is ${showValue(value)} — expected ${expected ?? issue.message}`;
  }
  return `${where} is ${showValue(value)}: ${issue.message}${expected ? ` — expected ${expected}` : ""}`;
}
