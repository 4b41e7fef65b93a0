import { readFileSync, existsSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { EdgeInfError } from "../util/errors.js";

/**
 * A training recipe (YAML). Paths are relative to the working directory the command runs in.
 * Every key is checked: an unknown key, a wrong type or a bad value is reported with its path and the allowed values.
 */
const mixtureEntry = z
  .object({
    source: z.enum(["text", "jsonl", "csv", "synthetic"]),
    path: z.string().optional(),
    task: z.enum(["passkey", "needle", "multi_needle", "kv_retrieval", "variable_tracking"]).optional(),
    column: z.string().optional(),
    weight: z.number().positive(),
  })
  .strict();

export const recipeSchema = z
  .object({
    name: z.string().min(1),
    seed: z.number().int().nonnegative().default(0),
    backend: z.enum(["auto", "tensorflow", "webgpu", "wasm", "cpu"]).default("auto"),
    backbone: z.string().min(1),
    tokenizer: z.string().optional(),
    data: z
      .object({
        sequenceLength: z.number().int().positive(),
        /** Text used as haystack for synthetic tasks (default: the first text source). */
        corpus: z.string().optional(),
        mixture: z.array(mixtureEntry).min(1),
        heldout: z
          .object({ path: z.string(), sequences: z.number().int().positive().default(4), sequenceLength: z.number().int().positive().optional() })
          .strict(),
      })
      .strict(),
    edgeinfinite: z
      .object({
        sinkTokens: z.number().int().nonnegative(),
        windowTokens: z.number().int().positive(),
        segmentLength: z.number().int().positive(),
        memoryRule: z.enum(["linear", "delta"]).default("linear"),
        gateKind: z.enum(["scalar", "learned"]).default("scalar"),
        memoryKeys: z.enum(["pre-rope", "post-rope"]).default("pre-rope"),
        trainProjections: z.array(z.enum(["q", "k", "v"])).default(["q", "k", "v"]),
        gateInitLogit: z.number().default(-6),
      })
      .strict(),
    training: z
      .object({
        steps: z.number().int().positive(),
        tbpttSegments: z.union([z.number().int().positive(), z.literal("all")]).default(1),
        batchSize: z.number().int().positive().default(1),
        gradAccumulation: z.number().int().positive().default(1),
        optimizer: z
          .object({
            name: z.literal("adamw").default("adamw"),
            lr: z.number().positive(),
            beta1: z.number().min(0).max(1).default(0.9),
            beta2: z.number().min(0).max(1).default(0.999),
            eps: z.number().positive().default(1e-8),
            weightDecay: z.number().nonnegative().default(0),
          })
          .strict(),
        schedule: z
          .object({ warmupSteps: z.number().int().nonnegative().default(0), minLrRatio: z.number().min(0).max(1).default(0.1) })
          .strict()
          .default({ warmupSteps: 0, minLrRatio: 0.1 }),
        gradClip: z.number().nonnegative().default(1),
        evalInterval: z.number().int().positive(),
        checkpointInterval: z.number().int().positive(),
        keepCheckpoints: z.number().int().positive().default(2),
      })
      .strict(),
    output: z.string().min(1),
  })
  .strict();

export type Recipe = z.infer<typeof recipeSchema>;

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.length ? issue.path.join(".") : "(top level)";
  if (issue.code === "unrecognized_keys") return `unknown key "${issue.keys.join('", "')}" at ${path}`;
  if (issue.code === "invalid_value") return `${path}: ${issue.message}`;
  return `${path}: ${issue.message}`;
}

/** Parses --set key.path=value overrides into the raw recipe object (YAML scalars: numbers, booleans, lists). */
export function applyOverrides(raw: Record<string, unknown>, sets: readonly string[]): void {
  for (const s of sets) {
    const eq = s.indexOf("=");
    if (eq <= 0) throw new EdgeInfError(`--set "${s}" is not key=value`, "write e.g. --set training.steps=100");
    const keys = s.slice(0, eq).split(".");
    const value: unknown = parseYaml(s.slice(eq + 1));
    let node: Record<string, unknown> = raw;
    for (const k of keys.slice(0, -1)) {
      const child = node[k];
      if (child === undefined) node[k] = {};
      else if (typeof child !== "object" || child === null || Array.isArray(child))
        throw new EdgeInfError(`--set ${s}: ${k} is not a section`, "check the key path against the recipe");
      node = node[k] as Record<string, unknown>;
    }
    node[keys[keys.length - 1]!] = value;
  }
}

/** Validates a raw recipe object; errors name the recipe file, the key path and what is allowed. */
export function validateRecipe(raw: unknown, source: string): Recipe {
  const r = recipeSchema.safeParse(raw);
  if (!r.success) {
    throw new EdgeInfError(`recipe ${source}: ${describeIssue(r.error.issues[0]!)}`, "fix the recipe (see recipes/README.md)");
  }
  const recipe = r.data;
  const { sequenceLength } = recipe.data;
  const { segmentLength } = recipe.edgeinfinite;
  if (sequenceLength % segmentLength !== 0) {
    throw new EdgeInfError(
      `recipe ${source}: data.sequenceLength ${sequenceLength} is not a multiple of edgeinfinite.segmentLength ${segmentLength}`,
      "make the sequence a whole number of segments",
    );
  }
  for (const [i, m] of recipe.data.mixture.entries()) {
    if (m.source === "synthetic" && !m.task) throw new EdgeInfError(`recipe ${source}: data.mixture.${i}.task is required for synthetic sources`, "name a task, e.g. passkey");
    if (m.source !== "synthetic" && !m.path) throw new EdgeInfError(`recipe ${source}: data.mixture.${i}.path is required for ${m.source} sources`, "give a file or folder");
  }
  return recipe;
}

/** Reads, overrides and validates a recipe file; checks that the files it names exist. */
export function loadRecipe(path: string, sets: readonly string[] = []): Recipe {
  if (!existsSync(path)) throw new EdgeInfError(`recipe ${path} does not exist`, "pass a file from recipes/, e.g. recipes/quickstart.yaml");
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, "utf8"));
  } catch (e) {
    throw new EdgeInfError(`recipe ${path}: invalid YAML: ${(e as Error).message.split("\n")[0]}`, "fix the YAML syntax");
  }
  if (typeof raw !== "object" || raw === null) throw new EdgeInfError(`recipe ${path}: not a YAML mapping`, "see recipes/quickstart.yaml");
  applyOverrides(raw as Record<string, unknown>, sets);
  const recipe = validateRecipe(raw, path);
  const files: [string, string][] = [["data.heldout.path", recipe.data.heldout.path]];
  recipe.data.mixture.forEach((m, i) => m.path && files.push([`data.mixture.${i}.path`, m.path]));
  if (recipe.data.corpus) files.push(["data.corpus", recipe.data.corpus]);
  if (!recipe.backbone.startsWith("hf:")) files.push(["backbone", recipe.backbone]);
  for (const [key, p] of files) {
    if (!existsSync(p)) throw new EdgeInfError(`recipe ${path}: ${key} ${p} does not exist`, "fix the path (relative to the current directory)");
  }
  return recipe;
}
