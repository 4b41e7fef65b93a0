/**
 * Evaluation suites: a YAML file naming the backbone, the tasks (synthetic generators or LongBench JSONL files),
 * the context lengths, the methods to compare and how to generate. Parsed strictly: an unknown key, task or method
 * is a one-line error that names the key path and what is allowed.
 */
import { existsSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { isAbsolute, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { EdgeInfError, fail } from "../util/errors.js";
import { describeSchemaIssue, firstIssue, keyPath, valueAt } from "../util/schema-errors.js";
export { keyPath }; // moved to src/util/schema-errors.ts (shared with training recipes); still exported here
import { METHODS, methodByName, methodNames } from "../cache/registry.js";
import type { MethodOptions } from "../cache/method.js";
import { TASK_NAMES, taskName } from "../datasets/synthetic/index.js";
import { dataset2prompt } from "./longbench-config.js";
import { isKnownDataset, knownDatasets } from "./metrics/index.js";

const positiveInt = z.number().int().positive();

const taskSchema = z.strictObject({
  /** Shown in tables; for LongBench tasks also the dataset (prompt template and metric) unless `dataset` says otherwise. */
  name: z.string().min(1),
  source: z.enum(["synthetic", "longbench"]),
  /** LongBench JSONL file (source longbench). */
  path: z.string().min(1).optional(),
  /** LongBench dataset whose prompt template and metric apply (default: name). */
  dataset: z.string().min(1).optional(),
  /** Synthetic context lengths in tokens; overrides the suite's `lengths` for this task. */
  targetTokens: z.array(positiveInt).min(1).optional(),
  /** Synthetic: records generated per length. LongBench: the first `count` records are used. */
  count: positiveInt.optional(),
  depths: z.array(z.number().min(0).max(1)).min(1).optional(),
  digits: z.tuple([positiveInt, positiveInt]).optional(),
  needles: positiveInt.optional(),
  hops: positiveInt.optional(),
  chains: positiveInt.optional(),
  intro: z.boolean().optional(),
  /** What a bad JSONL line does: stop the run (default) or skip the line with a warning. */
  onError: z.enum(["skip", "stop"]).default("stop"),
  /** Stop decoding at a newline (default: synthetic tasks and samsum, as LongBench's pred.py). */
  stopAtNewline: z.boolean().optional(),
  /** New-token limit for this task (default: generation.maxNewTokens, then LongBench's dataset2maxlen). */
  maxNewTokens: positiveInt.optional(),
});

/**
 * A method entry: a discriminated union on `name` with one alternative per registered method — name, label, then
 * that method's own options (src/cache/registry.ts), so each method's keys mean one thing.
 */
const methodSchema = z.discriminatedUnion(
  "name",
  METHODS.map((m) =>
    z.strictObject({
      name: z.literal(m.name),
      /** Column name in tables (default: name; "edgeinfinite-untrained" for edgeinfinite without a checkpoint). */
      label: z.string().min(1).optional(),
      ...m.optionsSchema.shape,
    }),
  ) as unknown as [z.ZodObject, ...z.ZodObject[]],
);

const generationSchema = z.strictObject({
  maxNewTokens: positiveInt.optional(),
  temperature: z.number().min(0).default(0),
});

const suiteSchema = z.strictObject({
  name: z.string().min(1),
  description: z.string().optional(),
  /** Local path or hf:owner/name. */
  backbone: z.string().min(1),
  /** Prose for synthetic haystacks: a .txt file or a folder of them. */
  corpus: z.string().min(1).optional(),
  seed: z.number().int().default(0),
  lengths: z.array(positiveInt).min(1),
  tasks: z.array(taskSchema).min(1),
  methods: z.array(methodSchema).min(1),
  generation: generationSchema.default({ temperature: 0 }),
  repeats: positiveInt.default(1),
  warmup: z.boolean().default(true),
  /** Prompts longer than this are truncated in the middle (LongBench pred.py); unset = never truncated. */
  maxLength: z.number().int().min(2).optional(),
  /** Caps attention score memory per block (bytes). */
  maxScoreBytes: positiveInt.optional(),
  /** results.md also splits synthetic scores by needle inside/outside the last this-many prompt tokens (window-split.ts). */
  windowSplitTokens: positiveInt.optional(),
});

export type TaskSpec = z.infer<typeof taskSchema>;
/** A method entry as written: its name, an optional label and the method's options (see its optionsSchema). */
export interface MethodSpecInput extends MethodOptions {
  name: string;
  label?: string;
  /** EdgeInfinite's checkpoint folder (resolved against the suite's base directory). */
  checkpoint?: string;
}
export type GenerationSpec = z.infer<typeof generationSchema>;

/** A method as the harness uses it: label decided, paths resolved. */
export interface MethodSpec extends MethodSpecInput {
  label: string;
}

export interface Suite extends Omit<z.infer<typeof suiteSchema>, "methods"> {
  methods: MethodSpec[];
  /** Where the suite came from (file path, or "<inline>"), for error messages and run.json. */
  file: string;
}

/** Methods the harness knows: the registry's. */
export function knownMethods(): string[] {
  return methodNames();
}

/** One line naming the suite, the key path, the bad key or value and what is allowed there (src/util/schema-errors.ts). */
function schemaError(where: string, value: unknown, issues: readonly z.core.$ZodIssue[]): EdgeInfError {
  const issue = firstIssue(issues);
  const missing = issue.code === "invalid_type" && valueAt(value, issue.path) === undefined;
  return new EdgeInfError(`${where}: ${describeSchemaIssue(suiteSchema, value, issue)}`, missing ? "add it (see docs/evaluation.md)" : "see docs/evaluation.md for the suite format");
}

function resolvePath(p: string, baseDir: string): string {
  if (p.startsWith("hf:") || isAbsolute(p)) return p;
  return resolve(baseDir, p);
}

function checkTask(where: string, task: TaskSpec, i: number): void {
  const at = `${where}: tasks[${i}]`;
  if (task.source === "synthetic") {
    try {
      taskName(task.name);
    } catch {
      fail(`${at}: unknown synthetic task "${task.name}"`, `known synthetic tasks: ${TASK_NAMES.join(", ")}`);
    }
    if (task.path !== undefined) fail(`${at}: a synthetic task has no "path"`, 'remove "path", or use source: longbench for a JSONL file');
    return;
  }
  const dataset = task.dataset ?? task.name;
  if (!isKnownDataset(dataset) || dataset2prompt[dataset] === undefined) {
    fail(`${at}: unknown LongBench task "${dataset}"`, `known tasks: ${knownDatasets.join(", ")}`);
  }
  if (task.path === undefined) fail(`${at}: LongBench task "${task.name}" needs "path"`, "give the JSONL file (THUDM/LongBench data/<task>.jsonl)");
  for (const key of ["targetTokens", "depths", "digits", "needles", "hops", "chains", "intro"] as const) {
    if (task[key] !== undefined) fail(`${at}: "${key}" applies only to synthetic tasks`, `remove "${key}" from the LongBench task`);
  }
}

/**
 * Before the schema: an unknown method name, or a key its method refuses for a reason worth saying (full's budget),
 * is one line naming the entry and what is allowed (the union's own message would not say which names exist).
 */
function precheckMethods(where: string, value: unknown): void {
  const methods = (value as { methods?: unknown } | null)?.methods;
  if (!Array.isArray(methods)) return;
  const known = knownMethods();
  methods.forEach((m: unknown, i) => {
    if (m === null || typeof m !== "object") return;
    const entry = m as Record<string, unknown>;
    if (typeof entry["name"] !== "string") return;
    const at = `${where}: methods[${i}]`;
    if (!known.includes(entry["name"])) fail(`${at}: unknown method "${entry["name"]}"`, `known methods: ${known.join(", ")}`);
    for (const [key, why] of Object.entries(methodByName(entry["name"]).refusedKeys ?? {})) {
      if (entry[key] !== undefined) fail(`${at}: ${why}`, `remove ${key}`);
    }
  });
}

function checkMethod(where: string, method: MethodSpecInput, i: number): void {
  if (typeof method["budget"] === "string") {
    const share = Number(method["budget"].slice(0, -1));
    if (!(share > 0 && share <= 100)) fail(`${where}: methods[${i}]: budget ${method["budget"]} must be in (0%, 100%]`, 'use e.g. "25%"');
  }
}

/** The label a method gets when the suite does not name one (edgeinfinite without a checkpoint is marked untrained). */
function defaultLabel(method: MethodSpecInput, checkpoint: string | undefined): string {
  const { name: _name, label: _label, ...options } = method;
  return methodByName(method.name).defaultLabel?.({ ...options, ...(checkpoint !== undefined ? { checkpoint } : {}) }) ?? method.name;
}

/**
 * Validates a parsed suite object. `where` names it in errors; relative paths resolve against `baseDir`
 * (the directory edgeinf runs from, so suites in eval/ name ../shared/... as the repo root sees it).
 */
export function parseSuite(value: unknown, where = "<inline>", baseDir = process.cwd()): Suite {
  precheckMethods(where, value);
  const parsed = suiteSchema.safeParse(value);
  if (!parsed.success) throw schemaError(where, value, parsed.error.issues);
  const s = parsed.data;
  s.tasks.forEach((t, i) => checkTask(where, t, i));
  const taskNames = s.tasks.map((t) => t.name);
  const dupTask = taskNames.find((n, i) => taskNames.indexOf(n) !== i);
  if (dupTask !== undefined) fail(`${where}: task "${dupTask}" appears twice`, "give each task a distinct name");
  if (s.tasks.some((t) => t.source === "synthetic") && s.corpus === undefined) {
    fail(`${where}: synthetic tasks need "corpus"`, "add corpus: ../shared/corpora/gutenberg/heldout (a .txt file or folder)");
  }
  const entries = s.methods as MethodSpecInput[];
  entries.forEach((m, i) => checkMethod(where, m, i));
  const methods: MethodSpec[] = entries.map((m) => {
    const checkpoint = m.checkpoint !== undefined ? resolvePath(m.checkpoint, baseDir) : undefined;
    return { ...m, label: m.label ?? defaultLabel(m, checkpoint), ...(checkpoint !== undefined ? { checkpoint } : {}) };
  });
  const labels = methods.map((m) => m.label);
  const dupLabel = labels.find((n, i) => labels.indexOf(n) !== i);
  if (dupLabel !== undefined) fail(`${where}: method "${dupLabel}" appears twice`, "give repeated methods distinct labels (label: ...)");
  return {
    ...s,
    file: where,
    backbone: resolvePath(s.backbone, baseDir),
    ...(s.corpus !== undefined ? { corpus: resolvePath(s.corpus, baseDir) } : {}),
    tasks: s.tasks.map((t) => (t.path !== undefined ? { ...t, path: resolvePath(t.path, baseDir) } : t)),
    methods,
  };
}

/** Reads and validates a suite YAML file. */
export function loadSuite(path: string, opts: { baseDir?: string } = {}): Suite {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    fail(`suite ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, "check the path (suites live in eval/)");
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (e) {
    fail(`suite ${path} is not valid YAML: ${(e as Error).message.split("\n")[0]}`, "fix the YAML syntax");
  }
  return parseSuite(value, path, opts.baseDir);
}

/** The lengths a task is evaluated at. */
export function taskLengths(suite: Suite, task: TaskSpec): number[] {
  return task.targetTokens ?? suite.lengths;
}

/** Short stable hash of a JSON value (row provenance: which task/method settings produced a row). */
export function configHash(value: unknown): string {
  return createHash("sha256").update(stableJson(value)).digest("hex").slice(0, 16);
}

/** JSON with object keys sorted, so equal settings hash equally whatever their order in the YAML. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
