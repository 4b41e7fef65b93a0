import { readFileSync, existsSync, statSync } from "node:fs";
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { EdgeInfError } from "../util/errors.js";
import { describeSchemaIssue, firstIssue, keyPath, showValue } from "../util/schema-errors.js";
import { readColumnMapping, type ColumnMapping } from "../datasets/column-mapping.js";
import { DEFAULT_EDGEINFINITE, exactSpreadSchema, exactPerLayerSchema } from "../memory/config.js";
import { OBJECTIVE_NAMES, objectiveByName } from "./objectives/index.js";

/**
 * Every recipe default, in one place (the schema below applies them; recipes/README.md lists them). The
 * `edgeinfinite` ones are the module's own defaults (DEFAULT_EDGEINFINITE), so a recipe and a module made without
 * one agree.
 */
export const RECIPE_DEFAULTS = {
  seed: 0,
  backend: "auto",
  heldout: { sequences: 4 },
  edgeinfinite: {
    memoryRule: DEFAULT_EDGEINFINITE.memoryRule,
    gateKind: DEFAULT_EDGEINFINITE.gateKind,
    memoryKeys: DEFAULT_EDGEINFINITE.memoryKeys,
    trainProjections: (["q", "k", "v"] as const).filter((p) => DEFAULT_EDGEINFINITE.trainProjections[p]),
    gateInitLogit: DEFAULT_EDGEINFINITE.gateInitLogit,
    readMode: DEFAULT_EDGEINFINITE.readMode,
    featureMap: DEFAULT_EDGEINFINITE.featureMap,
    exactTokens: DEFAULT_EDGEINFINITE.exactTokens,
    exactSpread: DEFAULT_EDGEINFINITE.exactSpread,
    exactTokensPerLayer: DEFAULT_EDGEINFINITE.exactTokensPerLayer,
  },
  training: {
    tbpttSegments: 1,
    batchSize: 1,
    gradAccumulation: 1,
    objective: "next-token",
    optimizer: { name: "adamw", beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
    schedule: { warmupSteps: 0, minLrRatio: 0.1 },
    gradClip: 1,
    keepCheckpoints: 2,
  },
} as const;

/**
 * Which columns of a JSONL/CSV source make up a document's text: a mapping `{ text: "body" }` or
 * `{ text: ["title", "body"] }` (joined with a blank line), or the path of a .json/.yaml file holding one.
 */
const columnsSchema = z.union([
  z.string().min(1),
  z.strictObject({ text: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]) }),
]);

/**
 * A training recipe (YAML). Paths are relative to the working directory the command runs in.
 * Every key is checked: an unknown key, a wrong type or a bad value is reported with its path and the allowed values.
 * Every key is described in recipes/README.md.
 */
const mixtureEntry = z
  .object({
    source: z.enum(["text", "jsonl", "csv", "synthetic"]),
    path: z.string().min(1).optional(),
    task: z.enum(["passkey", "needle", "multi_needle", "kv_retrieval", "variable_tracking"]).optional(),
    /** Shorthand for `columns: { text: NAME }`. */
    column: z.string().min(1).optional(),
    columns: columnsSchema.optional(),
    weight: z.number().positive(),
  })
  .strict();

/**
 * A learning-rate / weight-decay group of `training.optimizer.groups`: the module variables whose names match
 * `match` (a regular expression, unanchored, so a plain substring such as "gate" works) get their own peak `lr` (or
 * `lrScale` × the recipe's lr) and `weightDecay`. The first matching group wins.
 */
const optimizerGroup = z
  .object({
    match: z.string().min(1),
    lr: z.number().positive().optional(),
    lrScale: z.number().positive().optional(),
    weightDecay: z.number().nonnegative().optional(),
  })
  .strict();

const D = RECIPE_DEFAULTS;

export const recipeSchema = z
  .object({
    name: z.string().min(1),
    seed: z.number().int().nonnegative().default(D.seed),
    backend: z.enum(["auto", "tensorflow", "webgpu", "wasm", "cpu"]).default(D.backend),
    backbone: z.string().min(1),
    data: z
      .object({
        sequenceLength: z.number().int().positive(),
        /** Text used as haystack for synthetic tasks (default: the first text source). */
        corpus: z.string().optional(),
        mixture: z.array(mixtureEntry).min(1),
        heldout: z
          .object({
            path: z.string().min(1),
            sequences: z.number().int().positive().default(D.heldout.sequences),
            sequenceLength: z.number().int().positive().optional(),
            /** For a .jsonl/.csv held-out file (default `{ text: "text" }`). */
            column: z.string().min(1).optional(),
            columns: columnsSchema.optional(),
          })
          .strict(),
      })
      .strict(),
    edgeinfinite: z
      .object({
        sinkTokens: z.number().int().nonnegative(),
        windowTokens: z.number().int().positive(),
        segmentLength: z.number().int().positive(),
        memoryRule: z.enum(["linear", "delta"]).default(D.edgeinfinite.memoryRule),
        gateKind: z.enum(["scalar", "learned"]).default(D.edgeinfinite.gateKind),
        memoryKeys: z.enum(["pre-rope", "post-rope"]).default(D.edgeinfinite.memoryKeys),
        trainProjections: z.array(z.enum(["q", "k", "v"])).default(() => [...D.edgeinfinite.trainProjections]),
        gateInitLogit: z.number().default(D.edgeinfinite.gateInitLogit),
        readMode: z.enum(["blend", "shared"]).default(D.edgeinfinite.readMode),
        featureMap: z.enum(["elu", "hedgehog"]).default(D.edgeinfinite.featureMap),
        exactTokens: z.number().int().nonnegative().default(D.edgeinfinite.exactTokens),
        exactSpread: exactSpreadSchema.default((): [number, number] => [DEFAULT_EDGEINFINITE.exactSpread[0], DEFAULT_EDGEINFINITE.exactSpread[1]]),
        exactTokensPerLayer: exactPerLayerSchema.default(null),
      })
      .strict(),
    training: z
      .object({
        steps: z.number().int().positive(),
        tbpttSegments: z.union([z.number().int().positive(), z.literal("all")]).default(D.training.tbpttSegments),
        batchSize: z.number().int().positive().default(D.training.batchSize),
        gradAccumulation: z.number().int().positive().default(D.training.gradAccumulation),
        /** Worker threads for the micro-batches (default: one per core on cpu/wasm, at most one per micro-batch). */
        workers: z.number().int().positive().optional(),
        optimizer: z
          .object({
            name: z.literal("adamw").default(D.training.optimizer.name),
            lr: z.number().positive(),
            beta1: z.number().min(0).max(1).default(D.training.optimizer.beta1),
            beta2: z.number().min(0).max(1).default(D.training.optimizer.beta2),
            eps: z.number().positive().default(D.training.optimizer.eps),
            weightDecay: z.number().nonnegative().default(D.training.optimizer.weightDecay),
            groups: z.array(optimizerGroup).default(() => []),
          })
          .strict(),
        schedule: z
          .object({
            warmupSteps: z.number().int().nonnegative().default(D.training.schedule.warmupSteps),
            minLrRatio: z.number().min(0).max(1).default(D.training.schedule.minLrRatio),
          })
          .strict()
          .default(() => ({ ...D.training.schedule })),
        gradClip: z.number().nonnegative().default(D.training.gradClip),
        evalInterval: z.number().int().positive(),
        checkpointInterval: z.number().int().positive(),
        keepCheckpoints: z.number().int().positive().default(D.training.keepCheckpoints),
        /**
         * A trained module (checkpoint folder or step folder) whose weights start this run instead of the untrained
         * initialisation: fine-tuning with another objective or data. Its tensors must fit the recipe's module
         * (featureMap, readMode, gateKind, trainProjections); the optimizer starts fresh. Ignored on --resume.
         */
        initFrom: z.string().min(1).optional(),
        /** What each sequence's loss and gradients are (src/training/objectives/). */
        objective: z.enum(OBJECTIVE_NAMES).default(D.training.objective),
        /** Options of the objective, checked by its own schema in validateRecipe. */
        objectiveOptions: z.record(z.string(), z.unknown()).default(() => ({})),
      })
      .strict(),
    output: z.string().min(1),
  })
  .strict();

export type Recipe = z.infer<typeof recipeSchema>;

const HINT = "see recipes/README.md for every recipe key";

/** A --set override as applied: the key path it set and the argument as given. */
export interface Override {
  path: string[];
  arg: string;
}

/**
 * Applies --set key.path=value overrides to the raw recipe object. Values are YAML scalars or flow collections
 * (numbers, booleans, strings, `[q, v]`, `{ text: [title, body] }`); a numeric part indexes a list
 * (`data.mixture.0.weight=2`). A key the recipe does not have is added, and then reported by validation.
 */
/** Keys that would reach Object.prototype through `obj[k]` (`--set __proto__.x=1`). */
const UNSAFE_KEYS = new Set(["__proto__", "constructor", "prototype"]);

export function applyOverrides(raw: Record<string, unknown>, sets: readonly string[]): Override[] {
  const applied: Override[] = [];
  for (const s of sets) {
    const eq = s.indexOf("=");
    if (eq <= 0) throw new EdgeInfError(`--set "${s}" is not key=value`, "write e.g. --set training.steps=100 (see recipes/README.md)");
    const keyText = s.slice(0, eq).trim();
    const keys = keyText.split(".");
    if (keys.some((k) => UNSAFE_KEYS.has(k.trim()))) {
      throw new EdgeInfError(`--set "${s}": "${keys.find((k) => UNSAFE_KEYS.has(k.trim()))}" is not a recipe key`, "keys are listed in recipes/README.md");
    }
    if (keys.some((k) => k.trim() === "")) {
      throw new EdgeInfError(`--set "${s}": key path "${keyText}" has an empty part`, "write a dotted key path such as training.optimizer.lr");
    }
    let value: unknown;
    try {
      value = parseYaml(s.slice(eq + 1));
    } catch (e) {
      throw new EdgeInfError(`--set "${s}": the value is not valid YAML (${(e as Error).message.split("\n")[0]})`, "quote it, e.g. --set name='\"my run\"'");
    }
    let node: unknown = raw;
    keys.forEach((k, i) => {
      const at = keys.slice(0, i).join(".");
      const last = i === keys.length - 1;
      if (Array.isArray(node)) {
        const index = /^\d+$/.test(k) ? Number(k) : -1;
        if (index < 0 || index >= node.length) {
          throw new EdgeInfError(`--set "${s}": ${at} is a list of ${node.length}; "${k}" is not an index 0..${node.length - 1}`, `write e.g. ${at}.0.${keys.slice(i + 1).join(".") || "weight"}=…`);
        }
        if (last) node[index] = value;
        else node = node[index];
        return;
      }
      if (typeof node !== "object" || node === null) {
        throw new EdgeInfError(`--set "${s}": ${at} is ${showValue(node)}, not a section`, "check the key path against recipes/README.md");
      }
      const obj = node as Record<string, unknown>;
      if (last) obj[k] = value;
      else {
        if (obj[k] === undefined) obj[k] = {};
        node = obj[k];
      }
    });
    applied.push({ path: keys, arg: s });
  }
  return applied;
}

function samePrefix(a: readonly PropertyKey[], b: readonly PropertyKey[]): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (String(a[i]) !== String(b[i])) return false;
  return true;
}

/** The column mapping of a JSONL/CSV source (`column`, inline `columns`, or a mapping file), or undefined for the default. */
export function columnMapping(entry: { column?: string | undefined; columns?: string | ColumnMapping | undefined }): ColumnMapping | undefined {
  if (entry.column !== undefined) return { text: entry.column };
  if (typeof entry.columns === "string") return readColumnMapping(entry.columns);
  return entry.columns;
}

/** Validates a raw recipe object; errors name the recipe file, the key path, the bad key or value and what is allowed. */
export function validateRecipe(raw: unknown, source: string, overrides: readonly Override[] = []): Recipe {
  const r = recipeSchema.safeParse(raw);
  if (!r.success) {
    const issue = firstIssue(r.error.issues);
    const path = issue.code === "unrecognized_keys" ? [...issue.path, ...issue.keys.slice(0, 1)] : issue.path;
    const by = overrides.find((o) => samePrefix(o.path, path));
    throw new EdgeInfError(`recipe ${source}${by ? ` (with --set ${by.arg})` : ""}: ${describeSchemaIssue(recipeSchema, raw, issue)}`, HINT);
  }
  const recipe = r.data;
  const bad = (problem: string, hint: string): never => {
    throw new EdgeInfError(`recipe ${source}: ${problem}`, hint);
  };
  const { sequenceLength } = recipe.data;
  const { segmentLength } = recipe.edgeinfinite;
  if (sequenceLength % segmentLength !== 0) {
    bad(`data.sequenceLength ${sequenceLength} is not a multiple of edgeinfinite.segmentLength ${segmentLength}`, "make the sequence a whole number of segments");
  }
  for (const [i, m] of recipe.data.mixture.entries()) {
    const at = (key: string) => keyPath(["data", "mixture", i, key]);
    if (m.source === "synthetic") {
      if (!m.task) bad(`${at("task")} is required for synthetic sources`, "name a task: passkey, needle, multi_needle, kv_retrieval or variable_tracking");
      for (const key of ["path", "column", "columns"] as const) {
        if (m[key] !== undefined) bad(`${at(key)} does not apply to synthetic sources`, "synthetic haystack text comes from data.corpus (or the first text source)");
      }
      continue;
    }
    if (!m.path) bad(`${at("path")} is required for ${m.source} sources`, m.source === "text" ? "give a .txt file or a folder of them" : `give a .${m.source} file`);
    if (m.task !== undefined) bad(`${at("task")} applies only to synthetic sources`, `remove it, or use source: synthetic`);
    if (m.source === "text" && (m.column !== undefined || m.columns !== undefined)) {
      bad(`${at(m.column !== undefined ? "column" : "columns")} applies only to jsonl and csv sources`, "remove it (plain text has no columns)");
    }
    if (m.column !== undefined && m.columns !== undefined) bad(`${at("column")} and ${at("columns")} are both set`, "keep one: column: NAME is short for columns: { text: NAME }");
  }
  const h = recipe.data.heldout;
  if (h.column !== undefined && h.columns !== undefined) bad("data.heldout.column and data.heldout.columns are both set", "keep one: column: NAME is short for columns: { text: NAME }");
  if (h.sequenceLength !== undefined && h.sequenceLength % segmentLength !== 0) {
    bad(`data.heldout.sequenceLength ${h.sequenceLength} is not a multiple of edgeinfinite.segmentLength ${segmentLength}`, "make the sequence a whole number of segments");
  }
  for (const [i, g] of recipe.training.optimizer.groups.entries()) {
    const at = (key: string) => keyPath(["training", "optimizer", "groups", i, key]);
    if (g.lr !== undefined && g.lrScale !== undefined) bad(`${at("lr")} and ${at("lrScale")} are both set`, "keep one: lr is the group's peak learning rate, lrScale multiplies training.optimizer.lr");
    try {
      new RegExp(g.match);
    } catch (e) {
      bad(`${at("match")} "${g.match}" is not a regular expression (${(e as Error).message})`, 'use a substring of the variable names such as "gate", or a valid regular expression');
    }
  }
  const objective = objectiveByName(recipe.training.objective);
  const options = objective.optionsSchema.safeParse(recipe.training.objectiveOptions);
  if (!options.success) {
    const prefix = ["training", "objectiveOptions"];
    const issue = firstIssue(options.error.issues);
    const path = issue.code === "unrecognized_keys" ? [...prefix, ...issue.path, ...issue.keys.slice(0, 1)] : [...prefix, ...issue.path];
    const by = overrides.find((o) => samePrefix(o.path, path));
    throw new EdgeInfError(
      `recipe ${source}${by ? ` (with --set ${by.arg})` : ""}: ${describeSchemaIssue(objective.optionsSchema, recipe.training.objectiveOptions, issue, prefix)} (options of training.objective ${recipe.training.objective})`,
      HINT,
    );
  }
  recipe.training.objectiveOptions = options.data as Record<string, unknown>;
  return recipe;
}

const TABLE_EXT = [".jsonl", ".csv", ".tsv"];

/** A source path fits its `source` kind: jsonl → a .jsonl file, csv → a .csv/.tsv file, text → a folder or a text file. */
function checkSourceKind(recipePath: string, key: string, path: string, kind: "text" | "jsonl" | "csv"): void {
  const ext = extname(path).toLowerCase();
  const isDir = statSync(path).isDirectory();
  const ok = kind === "jsonl" ? !isDir && ext === ".jsonl" : kind === "csv" ? !isDir && (ext === ".csv" || ext === ".tsv") : isDir || !TABLE_EXT.includes(ext);
  if (!ok) {
    const want = kind === "jsonl" ? "a .jsonl file" : kind === "csv" ? "a .csv or .tsv file" : "a .txt file or a folder of them";
    const hint = kind === "text" ? `use source: ${ext === ".jsonl" ? "jsonl" : "csv"} for ${ext} files` : "fix the path or the source kind";
    throw new EdgeInfError(`recipe ${recipePath}: ${key} ${path} is not ${want} (source: ${kind})`, hint);
  }
}

/** Reads, overrides and validates a recipe file; checks that the files it names exist and fit their source kinds. */
export function loadRecipe(path: string, sets: readonly string[] = []): Recipe {
  if (!existsSync(path)) throw new EdgeInfError(`recipe ${path} does not exist`, "pass a file from recipes/, e.g. recipes/quickstart.yaml");
  if (statSync(path).isDirectory()) throw new EdgeInfError(`recipe ${path} is a directory`, "pass a recipe YAML file, e.g. recipes/quickstart.yaml");
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, "utf8"));
  } catch (e) {
    throw new EdgeInfError(`recipe ${path}: invalid YAML: ${(e as Error).message.split("\n")[0]}`, "fix the YAML syntax");
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new EdgeInfError(`recipe ${path}: not a YAML mapping`, "see recipes/quickstart.yaml");
  const overrides = applyOverrides(raw as Record<string, unknown>, sets);
  const recipe = validateRecipe(raw, path, overrides);
  const files: [string, string][] = [];
  if (!recipe.backbone.startsWith("hf:")) files.push(["backbone", recipe.backbone]);
  recipe.data.mixture.forEach((m, i) => {
    if (m.path) files.push([keyPath(["data", "mixture", i, "path"]), m.path]);
    if (typeof m.columns === "string") files.push([keyPath(["data", "mixture", i, "columns"]), m.columns]);
  });
  if (recipe.data.corpus) files.push(["data.corpus", recipe.data.corpus]);
  files.push(["data.heldout.path", recipe.data.heldout.path]);
  if (typeof recipe.data.heldout.columns === "string") files.push(["data.heldout.columns", recipe.data.heldout.columns]);
  for (const [key, p] of files) {
    if (!existsSync(p)) throw new EdgeInfError(`recipe ${path}: ${key} ${p} does not exist`, "fix the path (relative to the current directory)");
  }
  recipe.data.mixture.forEach((m, i) => {
    if (m.source !== "synthetic" && m.path) checkSourceKind(path, keyPath(["data", "mixture", i, "path"]), m.path, m.source);
  });
  if (recipe.data.corpus) checkSourceKind(path, "data.corpus", recipe.data.corpus, "text");
  // Mapping files are read now, so a bad one fails before anything is written.
  const mappings: [string, { column?: string; columns?: string | ColumnMapping }][] = [
    ...recipe.data.mixture.map((m, i): [string, typeof m] => [keyPath(["data", "mixture", i, "columns"]), m]),
    ["data.heldout.columns", recipe.data.heldout],
  ];
  for (const [key, m] of mappings) {
    try {
      columnMapping(m);
    } catch (e) {
      if (e instanceof EdgeInfError) throw new EdgeInfError(`recipe ${path}: ${key}: ${e.message}`);
      throw e;
    }
  }
  return recipe;
}
