/**
 * Evaluation suites: a YAML file naming the backbone, the tasks (our synthetic generators, LongBench JSONL files,
 * RULER and InfiniteBench tasks generated at the suite's lengths or read from files, LongBench v2's data.json),
 * the context lengths, the methods to compare and how to generate. Parsed strictly: an unknown key, task or method
 * is a one-line error that names the key path and what is allowed.
 */
import { existsSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { isAbsolute, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { EdgeInfError, fail } from "../util/errors.js";
import { allowedValues, describeSchemaIssue, firstIssue, keyPath, valueAt } from "../util/schema-errors.js";
export { keyPath }; // moved to src/util/schema-errors.ts (shared with training recipes); still exported here
import { METHODS, methodByName, methodNames } from "../cache/registry.js";
import type { MethodOptions } from "../cache/method.js";
import { TASK_NAMES, taskName } from "../datasets/synthetic/index.js";
import { dataset2prompt } from "./longbench-config.js";
import { isKnownDataset, knownDatasets } from "./metrics/index.js";
import { RULER_TASK_NAMES, RULER_TASKS, type RulerTaskName } from "../datasets/ruler/tasks.js";
import { INFINITEBENCH_TASK_NAMES, isInfiniteBenchFileTask, isInfiniteBenchTask } from "./sources/infinitebench.js";
import { infiniteBenchTemplateWorks } from "../datasets/infinitebench-files.js";

const positiveInt = z.number().int().positive();

/** Keys every task has, whatever its source. */
const taskCommon = {
  /** Shown in tables; for LongBench, RULER and InfiniteBench tasks also the dataset/task unless `dataset`/`task` says otherwise. */
  name: z.string().min(1),
  /** Generated tasks: records per length. File-based tasks: the first `count` records are used. */
  count: positiveInt.optional(),
  /** Stop decoding at a newline (default: synthetic tasks and samsum, as LongBench's pred.py; other sources: EOS only, as their pipelines). */
  stopAtNewline: z.boolean().optional(),
  /** New-token limit for this task (default: generation.maxNewTokens, then the benchmark's own limit). */
  maxNewTokens: positiveInt.optional(),
  /** What a bad record in a file does: stop the run (default) or skip it with a warning. */
  onError: z.enum(["skip", "stop"]).default("stop"),
};

/** Prompt lengths in tokens for generated tasks; overrides the suite's `lengths` for this task. */
const targetTokens = z.array(positiveInt).min(1).optional();
const depths = z.array(z.number().min(0).max(1)).min(1).optional();

/**
 * A task entry: a discriminated union on `source`, one alternative per benchmark, so each source's keys are its own
 * (a key of another source is a one-line error naming it, see precheckTasks).
 */
const taskSchema = z.discriminatedUnion("source", [
  z.strictObject({
    ...taskCommon,
    source: z.literal("synthetic"),
    targetTokens,
    depths,
    digits: z.tuple([positiveInt, positiveInt]).optional(),
    needles: positiveInt.optional(),
    hops: positiveInt.optional(),
    chains: positiveInt.optional(),
    intro: z.boolean().optional(),
  }),
  z.strictObject({
    ...taskCommon,
    source: z.literal("longbench"),
    /** LongBench JSONL file. */
    path: z.string().min(1),
    /** LongBench dataset whose prompt template and metric apply (default: name). */
    dataset: z.string().min(1).optional(),
  }),
  z.strictObject({
    ...taskCommon,
    source: z.literal("ruler"),
    /** RULER task (default: name), e.g. niah_single_1. */
    task: z.string().min(1).optional(),
    targetTokens,
    /** The user's files for tasks that read them (RULER_TASKS[task].needs; docs/evaluation.md). */
    files: z
      .strictObject({
        essay: z.string().min(1).optional(),
        /** A punkt_tab language folder (nltk_data tokenizers/punkt_tab/english): the essay is split by Punkt as RULER's sent_tokenize splits it. */
        punkt: z.string().min(1).optional(),
        keyWords: z.string().min(1).optional(),
        commonWords: z.array(z.string().min(1)).min(1).optional(),
        englishWords: z.string().min(1).optional(),
        squad: z.string().min(1).optional(),
        hotpotqa: z.string().min(1).optional(),
      })
      .optional(),
  }),
  z.strictObject({
    ...taskCommon,
    source: z.literal("infinitebench"),
    /** InfiniteBench task (default: name), e.g. passkey, kv_retrieval, longbook_qa_eng. */
    task: z.string().min(1).optional(),
    /** Whose prompt templates (src/prompt.py): yarn-mistral's are the open models' (default). */
    template: z.enum(["yarn-mistral", "gpt4", "claude2", "kimi"]).default("yarn-mistral"),
    /** The task's InfiniteBench JSONL file; without it passkey, number_string and kv_retrieval are generated. */
    path: z.string().min(1).optional(),
    targetTokens,
    depths,
  }),
  z.strictObject({
    ...taskCommon,
    source: z.literal("longbench-v2"),
    /** THUDM/LongBench-v2 data.json (a JSON array of items). */
    path: z.string().min(1),
    /**
     * pred.py's prompt: 0shot (default), 0shot_cot (pred.py --cot: two passes, the 0shot_cot answer fed back through
     * 0shot_cot_ans, src/eval/sources/longbench-v2.ts) or 0shot_no_context.
     */
    prompt: z.enum(["0shot", "0shot_cot", "0shot_no_context"]).default("0shot"),
  }),
]);

/** The task sources, in the order docs/evaluation.md lists them. */
export const TASK_SOURCES = ["synthetic", "longbench", "ruler", "infinitebench", "longbench-v2"] as const;
export type TaskSource = (typeof TASK_SOURCES)[number];

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
/** The task entry of one source. */
export type TaskOf<S extends TaskSource> = Extract<TaskSpec, { source: S }>;
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
  switch (task.source) {
    case "synthetic":
      try {
        taskName(task.name);
      } catch {
        fail(`${at}: unknown synthetic task "${task.name}"`, `known synthetic tasks: ${TASK_NAMES.join(", ")}`);
      }
      return;
    case "longbench": {
      const dataset = task.dataset ?? task.name;
      if (!isKnownDataset(dataset) || dataset2prompt[dataset] === undefined) {
        fail(`${at}: unknown LongBench task "${dataset}"`, `known tasks: ${knownDatasets.join(", ")}`);
      }
      return;
    }
    case "ruler": {
      const name = task.task ?? task.name;
      if (!(RULER_TASK_NAMES as readonly string[]).includes(name)) fail(`${at}: unknown RULER task "${name}"`, `known RULER tasks: ${RULER_TASK_NAMES.join(", ")}`);
      // Key words and cwe's words have defaults (src/eval/sources/ruler.ts); essays and QA data are the user's.
      for (const need of RULER_TASKS[name as RulerTaskName].needs) {
        if ((need === "essay" || need === "squad" || need === "hotpotqa") && task.files?.[need] === undefined) fail(`${at}: RULER ${name} reads the ${need} file`, `add files: { ${need}: PATH } (docs/evaluation.md says which file)`);
      }
      return;
    }
    case "infinitebench":
      return checkInfiniteBenchTask(at, task);
    case "longbench-v2":
      return;
  }
}

/** InfiniteBench: a known task; generated tasks either generate (lengths, depths) or read `path`; file tasks need it. */
function checkInfiniteBenchTask(at: string, task: TaskOf<"infinitebench">): void {
  const name = task.task ?? task.name;
  if (!isInfiniteBenchTask(name)) fail(`${at}: unknown InfiniteBench task "${name}"`, `known InfiniteBench tasks: ${INFINITEBENCH_TASK_NAMES.join(", ")}`);
  if (isInfiniteBenchFileTask(name)) {
    if (task.path === undefined) fail(`${at}: InfiniteBench task "${name}" needs "path"`, `give its JSONL file (OpenBMB/InfiniteBench data: ${name}.jsonl)`);
    if (!infiniteBenchTemplateWorks(name, task.template)) fail(`${at}: InfiniteBench's ${task.template} template of ${name} cannot be filled (src/prompt.py names fields create_prompt never passes)`, "use template: yarn-mistral or gpt4");
  }
  for (const key of ["targetTokens", "depths"] as const) {
    if (task.path !== undefined && task[key] !== undefined) fail(`${at}: "${key}" applies only to generated InfiniteBench tasks (no "path")`, `remove "${key}" or "path"`);
  }
}

/** The keys of each source's task entry. */
function sourceKeys(source: TaskSource): string[] {
  const option = (taskSchema.options as readonly z.ZodObject[]).find((o) => allowedValues((o.shape as Record<string, z.ZodType>)["source"]!)?.includes(source));
  return Object.keys(option!.shape);
}

/**
 * Before the schema: an unknown source, or a key that belongs to another source (a LongBench `path` on a RULER
 * task), is one line naming the task, the key and the fix; the union's own message would only list allowed keys.
 */
function precheckTasks(where: string, value: unknown): void {
  const tasks = (value as { tasks?: unknown } | null)?.tasks;
  if (!Array.isArray(tasks)) return;
  tasks.forEach((t: unknown, i) => {
    if (t === null || typeof t !== "object") return;
    const entry = t as Record<string, unknown>;
    const at = `${where}: tasks[${i}]`;
    const source = entry["source"];
    if (source === undefined) fail(`${at}: "source" is missing`, `add source: one of ${TASK_SOURCES.join(", ")}`);
    if (!(TASK_SOURCES as readonly unknown[]).includes(source)) fail(`${at}: unknown source ${JSON.stringify(source)}`, `known sources: ${TASK_SOURCES.join(", ")}`);
    const own = sourceKeys(source as TaskSource);
    for (const key of Object.keys(entry)) {
      if (own.includes(key)) continue;
      const elsewhere = TASK_SOURCES.filter((s) => sourceKeys(s).includes(key));
      if (elsewhere.length > 0) fail(`${at}: "${key}" does not apply to source ${source as string} (it is a key of ${elsewhere.join(", ")})`, `remove "${key}"; keys of source ${source as string}: ${own.join(", ")}`);
    }
  });
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
  precheckTasks(where, value);
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
    tasks: s.tasks.map((t) => ("path" in t && t.path !== undefined ? { ...t, path: resolvePath(t.path, baseDir) } : t)),
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

/** The suite's task a sample was built for (its `task` is the task's name). */
export function taskOfSample(suite: Suite, sample: { task: string }): TaskSpec {
  const task = suite.tasks.find((t) => t.name === sample.task);
  if (task === undefined) throw new Error(`sample of task "${sample.task}" is not from suite ${suite.file}`);
  return task;
}

/** The lengths a task is evaluated at. */
export function taskLengths(suite: Suite, task: TaskSpec): number[] {
  return ("targetTokens" in task ? task.targetTokens : undefined) ?? suite.lengths;
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
