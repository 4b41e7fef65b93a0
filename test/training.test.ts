import { describe, it, expect, beforeAll, vi } from "vitest";
import { mkdtempSync, existsSync, readFileSync, writeFileSync, readdirSync, mkdirSync, copyFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { LlamaModel } from "../src/backbone/model.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig } from "../src/memory/config.js";
import { forwardSegment } from "../src/memory/edgeinfinite.js";
import { initialState, keepState } from "../src/memory/state.js";
import { sequenceGradients } from "../src/training/tbptt.js";

/**
 * sequenceGradients as the trainer sees it: the real one, except that with `tbpttHook.failOnCall = N` the N-th call
 * (counted from when it was set) throws, to fail a run on a later micro-batch of gradient accumulation.
 */
const tbpttHook = vi.hoisted(() => ({ failOnCall: 0, calls: 0 }));
vi.mock("../src/training/tbptt.js", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../src/training/tbptt.js")>();
  return {
    ...actual,
    sequenceGradients: async (...args: Parameters<typeof actual.sequenceGradients>) => {
      if (tbpttHook.failOnCall > 0 && ++tbpttHook.calls === tbpttHook.failOnCall) throw new Error("injected micro-batch failure");
      return actual.sequenceGradients(...args);
    },
  };
});
import { loadRecipe, recipeSchema, RECIPE_DEFAULTS } from "../src/training/recipe.js";
import { z } from "zod";
import { train } from "../src/training/train.js";
import { prepareRun, edgeInfiniteConfigFromRecipe, DATASET_MANIFEST, type TrainRun } from "../src/training/run.js";
import { trainStep } from "../src/training/step.js";
import type { TrainResult } from "../src/training/train-log.js";
import type { Objective } from "../src/training/objectives/index.js";
import { buildSampler, datasetManifest, loadRecipeData } from "../src/training/data.js";
import { resolveCheckpointDir, readCheckpointMeta, loadCheckpoint, saveCheckpoint, loadModuleTensors, removeIncompleteCheckpoints } from "../src/training/checkpoint.js";
import { TEST_CRASH_ENV } from "./fixtures/crash-hook.js";
import { fileListing } from "./fixtures/files.js";
import { readManifest } from "../src/datasets/manifest.js";
import { loadBackbone } from "../src/loaders/index.js";
import { prepareMethod } from "../src/eval/methods.js";
import { readSafetensors, writeSafetensors } from "../src/loaders/safetensors.js";
import { learningRate } from "../src/training/schedule.js";
import { tinyConfig, randomWeights } from "./reference/llama64.js";

const repo = resolve(__dirname, "..");
const shared = resolve(repo, "../shared");
const STORIES = `${shared}/models/stories260K/stories260K.bin`;

/** A small recipe on stories260K (192-token sequences, 4 steps, checkpoints at 2 and 4), written to DIR/recipe.yaml. */
function tinyRecipe(dir: string, extra = "", data?: string): string {
  const path = join(dir, "recipe.yaml");
  writeFileSync(
    path,
    `name: tiny
seed: 7
backend: cpu
backbone: ${STORIES}
data:
${
  data ??
  `  sequenceLength: 192
  mixture:
    - { source: text, path: ${shared}/corpora/gutenberg/train/Peter_Pan.txt, weight: 1 }
  heldout: { path: ${shared}/corpora/gutenberg/heldout/Treasure_Island.txt, sequences: 1 }`
}
edgeinfinite: { sinkTokens: 4, windowTokens: 60, segmentLength: 32 }
training:
  steps: 4
  tbpttSegments: 2
  gradAccumulation: 1
  optimizer: { lr: 0.01 }
  evalInterval: 2
  checkpointInterval: 2
output: ${dir}/out
${extra}`,
  );
  return path;
}

const quiet = { log: () => {}, progress: false };

/** The message of the error `fn` throws (fails the test when it throws nothing); always a single line. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    const msg = (e as Error).message;
    expect(msg.includes("\n"), msg).toBe(false);
    return msg;
  }
  throw new Error("expected an error");
}

describe("recipes", () => {
  it("schema errors name the key path, the bad key or value and what is allowed, in one line, and write nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-recipe-"));
    const base = tinyRecipe(dir);
    const cases: [string[], RegExp[]][] = [
      // unknown keys: the allowed keys of that section
      [["training.stepz=3"], [/unknown key "training\.stepz" \(did you mean "steps"\?\)/, /allowed keys in training: steps, tbpttSegments, batchSize, gradAccumulation, workers, optimizer, schedule, gradClip, evalInterval, checkpointInterval, keepCheckpoints/]],
      [["edgeinfinite.sinkTokenz=4"], [/unknown key "edgeinfinite\.sinkTokenz"/, /allowed keys in edgeinfinite: sinkTokens, windowTokens, segmentLength, memoryRule, gateKind, memoryKeys, trainProjections, gateInitLogit/]],
      [["outputs=/tmp/x"], [/unknown key "outputs"/, /unknown key "outputs" \(did you mean "output"\?\) — allowed keys at the top level: name, seed, backend, backbone, data, edgeinfinite, training, output —/]],
      [["data.mixture.0.colum=body"], [/unknown key "data\.mixture\[0\]\.colum" \(did you mean "column"\?\)/, /allowed keys in data\.mixture\[0\]: source, path, task, column, columns, weight/]],
      [["data.mixture.0.columns={txt: body}"], [/unknown key "data\.mixture\[0\]\.columns\.txt"/, /allowed keys in data\.mixture\[0\]\.columns: text/]],
      // enums: the allowed values
      [["edgeinfinite.gateKind=mlp"], [/edgeinfinite\.gateKind is "mlp" — allowed values: scalar, learned/]],
      [["edgeinfinite.memoryRule=hebbian"], [/edgeinfinite\.memoryRule is "hebbian" — allowed values: linear, delta/]],
      [["edgeinfinite.memoryKeys=rope"], [/edgeinfinite\.memoryKeys is "rope" — allowed values: pre-rope, post-rope/]],
      [["edgeinfinite.trainProjections=[q, o]"], [/edgeinfinite\.trainProjections\[1\] is "o" — allowed values: q, k, v/]],
      [["data.mixture.0.source=parquet"], [/data\.mixture\[0\]\.source is "parquet" — allowed values: text, jsonl, csv, synthetic/]],
      [["backend=tpu"], [/backend is "tpu" — allowed values: auto, tensorflow, webgpu, wasm, cpu/]],
      [["training.optimizer.name=sgd"], [/training\.optimizer\.name is "sgd" — allowed value: adamw/]],
      // wrong types and ranges: the expected type
      [["training.steps=three"], [/training\.steps is "three" \(a string\) — expected a positive integer/]],
      [["training.steps=2.5"], [/training\.steps is 2\.5 \(a number\) — expected a positive integer/]],
      [["training.steps=0"], [/training\.steps is 0 — expected a positive integer/]],
      [["training.tbpttSegments=some"], [/training\.tbpttSegments is "some" — expected a positive integer, or "all"/]],
      [["training.optimizer.beta2=1.5"], [/training\.optimizer\.beta2 is 1\.5 — expected a number from 0 to 1/]],
      [["training.optimizer={lr: fast}"], [/training\.optimizer\.lr is "fast" \(a string\) — expected a positive number/]],
      [["seed=-3"], [/seed is -3 — expected a non-negative integer/]],
      [["name=[a, b]"], [/name is a list — expected a non-empty string/]],
      [["data.mixture=[]"], [/data\.mixture is an empty list — expected a non-empty list of mappings with keys source, path/]],
      [["data.mixture.0.columns={text: [title, 3]}"], [/data\.mixture\[0\]\.columns\.text\[1\] is 3 \(an integer\) — expected a non-empty string/]],
      [["data.heldout={sequences: 2}"], [/data\.heldout\.path is missing — expected a non-empty string/]],
      // checks beyond the schema
      [["backbone=/nope/model.bin"], [/backbone \/nope\/model\.bin does not exist/]],
      [["data.sequenceLength=200"], [/data\.sequenceLength 200 is not a multiple of edgeinfinite\.segmentLength 32/]],
      [["data.heldout.sequenceLength=100"], [/data\.heldout\.sequenceLength 100 is not a multiple of edgeinfinite\.segmentLength 32/]],
    ];
    for (const [sets, res] of cases) {
      const msg = errorOf(() => loadRecipe(base, sets));
      for (const re of res) expect(msg, sets.join(" ")).toMatch(re);
      expect(msg).toContain(base);
      // a schema error says which --set it came from, and where to read about every key
      if (!/does not exist|multiple/.test(msg)) expect(msg).toContain(`(with --set ${sets[0]})`);
      if (!/does not exist|multiple/.test(msg)) expect(msg).toMatch(/see recipes\/README\.md/);
    }
    expect(existsSync(join(repo, "recipes/README.md"))).toBe(true);
    expect(() => loadRecipe(join(dir, "missing.yaml"))).toThrow(/recipe .*missing\.yaml does not exist/);
    expect(existsSync(join(dir, "out"))).toBe(false);
  });

  it("a misspelt key in the file is reported as unknown (not as the key it replaces being missing); a missing key names its type", () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-recipe-"));
    const path = tinyRecipe(dir);
    writeFileSync(path, readFileSync(path, "utf8").replace("  steps: 4", "  stepz: 4"));
    const msg = errorOf(() => loadRecipe(path));
    expect(msg).toMatch(/unknown key "training\.stepz" \(did you mean "steps"\?\) — allowed keys in training: steps,/);
    expect(msg).not.toMatch(/--set/);
    writeFileSync(path, readFileSync(path, "utf8").replace("  stepz: 4\n", "").replace("  sequenceLength: 192\n", ""));
    expect(errorOf(() => loadRecipe(path))).toMatch(/recipe .*recipe\.yaml: data\.sequenceLength is missing — expected a positive integer/);
  });

  it("bad --set arguments are one-line errors naming the argument", () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-recipe-"));
    const base = tinyRecipe(dir);
    expect(errorOf(() => loadRecipe(base, ["training"]))).toMatch(/--set "training" is not key=value/);
    expect(errorOf(() => loadRecipe(base, ["=3"]))).toMatch(/--set "=3" is not key=value/);
    expect(errorOf(() => loadRecipe(base, ["training..steps=3"]))).toMatch(/--set "training\.\.steps=3": key path "training\.\.steps" has an empty part/);
    expect(errorOf(() => loadRecipe(base, ["training.steps.max=3"]))).toMatch(/--set "training\.steps\.max=3": training\.steps is 4, not a section/);
    expect(errorOf(() => loadRecipe(base, ["data.mixture.3.weight=1"]))).toMatch(/data\.mixture is a list of 1; "3" is not an index 0\.\.0/);
    expect(errorOf(() => loadRecipe(base, ["name=[unclosed"]))).toMatch(/--set "name=\[unclosed": the value is not valid YAML/);
    // list items can be set by index; values are YAML
    const r = loadRecipe(base, ["data.mixture.0.weight=2.5", "edgeinfinite.trainProjections=[q, v]", "training.tbpttSegments=all"]);
    expect(r.data.mixture[0]!.weight).toBe(2.5);
    expect(r.edgeinfinite.trainProjections).toEqual(["q", "v"]);
    expect(r.training.tbpttSegments).toBe("all");
    expect(existsSync(join(dir, "out"))).toBe(false);
  });

  it("data sources: keys that do not fit the source kind, files of the wrong kind, bad mapping files", () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-recipe-"));
    const base = tinyRecipe(dir);
    const csv = join(dir, "docs.csv");
    writeFileSync(csv, "title,body\nA,b\n");
    writeFileSync(join(dir, "bad-map.yaml"), "text: 3\n");
    const cases: [string[], RegExp][] = [
      [["data.mixture.0.column=body"], /data\.mixture\[0\]\.column applies only to jsonl and csv sources/],
      [[`data.mixture.0={ source: csv, path: ${csv}, weight: 1, column: body, columns: { text: [title] } }`], /data\.mixture\[0\]\.column and data\.mixture\[0\]\.columns are both set/],
      [["data.mixture.0={ source: synthetic, task: passkey, weight: 1, path: x.txt }"], /data\.mixture\[0\]\.path does not apply to synthetic sources/],
      [["data.mixture.0={ source: synthetic, weight: 1 }"], /data\.mixture\[0\]\.task is required for synthetic sources/],
      [["data.mixture.0={ source: csv, weight: 1 }"], /data\.mixture\[0\]\.path is required for csv sources/],
      [["data.mixture.0.task=passkey"], /data\.mixture\[0\]\.task applies only to synthetic sources/],
      [[`data.mixture.0={ source: jsonl, path: ${csv}, weight: 1 }`], /data\.mixture\[0\]\.path .*docs\.csv is not a \.jsonl file \(source: jsonl\)/],
      [[`data.mixture.0={ source: text, path: ${csv}, weight: 1 }`], /data\.mixture\[0\]\.path .*docs\.csv is not a \.txt file or a folder of them \(source: text\) — use source: csv/],
      [[`data.mixture.0={ source: csv, path: ${dir}/nope.csv, weight: 1 }`], /data\.mixture\[0\]\.path .*nope\.csv does not exist/],
      [[`data.mixture.0={ source: csv, path: ${csv}, weight: 1, columns: ${dir}/nope.yaml }`], /data\.mixture\[0\]\.columns .*nope\.yaml does not exist/],
      [[`data.mixture.0={ source: csv, path: ${csv}, weight: 1, columns: ${dir}/bad-map.yaml }`], /data\.mixture\[0\]\.columns: .*bad-map\.yaml: column mapping must be/],
    ];
    for (const [sets, re] of cases) {
      const msg = errorOf(() => loadRecipe(base, sets));
      expect(msg, sets[0]).toMatch(re);
      expect(msg).toContain(base);
    }
    expect(existsSync(join(dir, "out"))).toBe(false);
  });

  it("recipes/README.md documents every recipe key", () => {
    const readme = readFileSync(join(repo, "recipes/README.md"), "utf8");
    const documented = new Set([...readme.matchAll(/`([^`\n]+)`/g)].flatMap((m) => m[1]!.split(/[^A-Za-z0-9_]+/)));
    const keys: string[] = [];
    const walk = (node: z.ZodType, path: string) => {
      for (;;) {
        const def = node.def as { type: string; innerType?: z.ZodType };
        if (def.innerType && ["optional", "default", "nullable"].includes(def.type)) node = def.innerType;
        else break;
      }
      if (node instanceof z.ZodObject) for (const [k, v] of Object.entries(node.shape as Record<string, z.ZodType>)) {
        keys.push(`${path}${k}`);
        walk(v, `${path}${k}.`);
      }
      else if (node instanceof z.ZodArray) walk(node.element as z.ZodType, path.replace(/\.$/, "[].")); 
    };
    walk(recipeSchema, "");
    expect(keys.length).toBeGreaterThan(40);
    const missing = keys.filter((k) => !documented.has(k.split(/[.[\]]+/).filter(Boolean).pop()!));
    expect(missing).toEqual([]);
    for (const section of ["## Keys", "## `--set`", "## Resume", "quickstart.yaml", "edge-lm-passkey.yaml"]) expect(readme).toContain(section);
  });

  it("defaults live in RECIPE_DEFAULTS: a recipe without the optional keys makes the module's default config, and recipes/README.md shows them", () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-defaults-"));
    const r = loadRecipe(tinyRecipe(dir));
    expect(edgeInfiniteConfigFromRecipe(r)).toEqual(makeEdgeInfiniteConfig({ sinkTokens: 4, windowTokens: 60, segmentLength: 32 }));
    expect(r.training.optimizer).toMatchObject({ ...RECIPE_DEFAULTS.training.optimizer, lr: 0.01, groups: [] });
    expect(r.training).toMatchObject({ gradClip: RECIPE_DEFAULTS.training.gradClip, batchSize: 1, keepCheckpoints: 2, objective: "next-token", objectiveOptions: {} });
    const readme = readFileSync(join(repo, "recipes/README.md"), "utf8");
    const shown: [string, unknown][] = [
      ["seed", RECIPE_DEFAULTS.seed],
      ["backend", RECIPE_DEFAULTS.backend],
      ["sequences", RECIPE_DEFAULTS.heldout.sequences],
      ...Object.entries(RECIPE_DEFAULTS.edgeinfinite).filter(([k]) => k !== "trainProjections"),
      ...Object.entries(RECIPE_DEFAULTS.training).filter(([, v]) => typeof v !== "object"),
      ...Object.entries(RECIPE_DEFAULTS.training.schedule).map(([k, v]): [string, unknown] => [`schedule.${k}`, v]),
      ...(["name", "eps", "weightDecay"] as const).map((k): [string, unknown] => [`optimizer.${k}`, RECIPE_DEFAULTS.training.optimizer[k]]),
    ];
    // Arrays are shown as written in YAML: [0, 0].
    const written = (value: unknown): string => (Array.isArray(value) ? `[${value.join(", ")}]` : String(value));
    for (const [key, value] of shown) expect(readme, key).toMatch(new RegExp(`\\| \`${key.replace(/\./g, "\\.")}\` \\| [^|\\n]+ \\| \`${written(value).replace(/[.+\-[\]]/g, "\\$&")}\` \\|`));
  });

  it("shipped recipes validate", () => {
    for (const f of readdirSync(join(repo, "recipes")).filter((f) => f.endsWith(".yaml"))) {
      const path = join(repo, "recipes", f);
      const text = readFileSync(path, "utf8");
      if (text.includes("edge-lm") && !existsSync(join(shared, "models/edge-lm"))) continue;
      process.chdir(repo);
      expect(() => loadRecipe(path)).not.toThrow();
    }
  });

  it("warmup + cosine schedule", () => {
    expect(learningRate(0, 1, 4, 20, 0.1)).toBeCloseTo(0.25, 12);
    expect(learningRate(3, 1, 4, 20, 0.1)).toBeCloseTo(1, 12);
    expect(learningRate(12, 1, 4, 20, 0.1)).toBeCloseTo(0.1 + 0.45 * (1 + Math.cos(Math.PI * 0.5)), 12);
    expect(learningRate(20, 1, 4, 20, 0.1)).toBeCloseTo(0.1, 12);
  });
});

/** A CSV with a title, a body (with commas, quotes and a newline inside quotes) and a column that must not be read. */
function storiesCsv(dir: string): { path: string; rows: { title: string; body: string; notes: string }[] } {
  const rows = Array.from({ length: 6 }, (_, i) => ({
    title: `Title${i} of the Garden`,
    body: `Once upon a time, a girl named Lily${i} found a "red" ball.\nShe played with it all day and was happy.`,
    notes: `SECRET-NOTE-${i}`,
  }));
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  const path = join(dir, "stories.csv");
  writeFileSync(path, "title,body,notes\n" + rows.map((r) => [q(r.title), q(r.body), r.notes].join(",")).join("\n") + "\n");
  return { path, rows };
}

/** A fresh folder holding stories.csv and a tiny recipe whose data section is `data(csv)`, loaded with `sets`. */
function csvRecipe(data: (csv: string) => string, sets: string[] = []) {
  const dir = mkdtempSync(join(tmpdir(), "ei-csv-"));
  const { path: csv } = storiesCsv(dir);
  return { dir, csv, recipe: loadRecipe(tinyRecipe(dir, "", data(csv)), sets) };
}

describe("recipe data and the dataset manifest", () => {
  it("a CSV source reads two columns through an inline mapping or a mapping file; training writes dataset.manifest.json", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-csv-"));
    const { path: csv, rows } = storiesCsv(dir);
    const mapFile = join(dir, "body-then-title.yaml");
    writeFileSync(mapFile, "text: [body, title]\n");
    const peter = `${shared}/corpora/gutenberg/train/Peter_Pan.txt`;
    const heldoutPath = `${shared}/corpora/gutenberg/heldout/Treasure_Island.txt`;
    const recipePath = tinyRecipe(
      dir,
      "",
      `  sequenceLength: 64
  mixture:
    - { source: csv, path: ${csv}, columns: { text: [title, body] }, weight: 2 }
    - { source: csv, path: ${csv}, columns: ${mapFile}, weight: 1 }
    - { source: text, path: ${peter}, weight: 1 }
  heldout: { path: ${heldoutPath}, sequences: 1 }`,
    );
    const recipe = loadRecipe(recipePath, ["training.steps=2", "training.gradAccumulation=2", "edgeinfinite={ sinkTokens: 4, windowTokens: 28, segmentLength: 16 }"]);
    // the texts: both columns joined by a blank line, in the mapping's order; the third column is never read
    const data = loadRecipeData(recipe);
    expect(data.corpora[0]!.corpus.texts).toEqual(rows.map((r) => `${r.title}\n\n${r.body}`));
    expect(data.corpora[1]!.corpus.texts).toEqual(rows.map((r) => `${r.body}\n\n${r.title}`));
    expect(data.corpora.flatMap((c) => c.corpus.texts).join(" ")).not.toContain("SECRET-NOTE");
    // sequences drawn from the CSV source decode to its text
    const { tokenizer } = await loadBackbone(STORIES);
    const sample = buildSampler(recipe, tokenizer, data);
    const seqs = Array.from({ length: 12 }, (_, i) => sample(Math.floor(i / 2), i % 2));
    const fromCsv = seqs.filter((s) => s.source.startsWith("0:"));
    expect(fromCsv.length).toBeGreaterThan(0);
    for (const s of fromCsv) expect(tokenizer.decode(s.ids)).toMatch(/Title\d of the Garden|Lily\d|played with it all day/);

    const result = await train(recipe, quiet);
    expect(result.steps).toBe(2);
    const out = recipe.output;
    const manifestPath = join(out, DATASET_MANIFEST);
    const m = readManifest(manifestPath); // validates the format
    const raw = JSON.parse(readFileSync(manifestPath, "utf8")) as typeof m;
    expect(raw).toEqual(m); // nothing the reader does not know about
    expect(m.name).toBe("tiny");
    expect(m.seed).toBe(7);
    expect(m.sequenceLength).toBe(64);
    expect(m.records).toBe(4); // 2 steps × 2 accumulated sequences
    expect(m.tokens).toBe(4 * 65);
    const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");
    expect(m.sources).toEqual([
      { path: csv, bytes: statSync(csv).size, sha256: sha(csv) },
      { path: peter, bytes: statSync(peter).size, sha256: sha(peter) },
      { path: heldoutPath, bytes: statSync(heldoutPath).size, sha256: sha(heldoutPath) },
    ]);
    expect(m.mixture!.map((e) => [e.source, e.weight, e.share, e.columns, e.documents, e.bytes])).toEqual([
      ["csv", 2, 0.5, { text: ["title", "body"] }, 6, statSync(csv).size],
      ["csv", 1, 0.25, { text: ["body", "title"] }, 6, statSync(csv).size],
      ["text", 1, 0.25, undefined, 1, statSync(peter).size],
    ]);
    // per-source sequence counts are what the run actually drew
    const drawn = buildSampler(recipe, tokenizer);
    const actual = [0, 0, 0];
    for (let step = 0; step < 2; step++) for (let i = 0; i < 2; i++) actual[Number(drawn(step, i).source.split(":")[0])]!++;
    expect(m.mixture!.map((e) => e.sequences)).toEqual(actual);
    expect(m.heldout).toMatchObject({ path: heldoutPath, sequences: 1, sequenceLength: 64, seed: (7 + 0x5eed) >>> 0, documents: 1 });
    // written atomically: no temp files beside it; run.json points at it
    expect(readdirSync(out).filter((f) => f.includes(".tmp"))).toEqual([]);
    expect(JSON.parse(readFileSync(join(out, "run.json"), "utf8")).dataset).toEqual({ manifest: DATASET_MANIFEST, sequences: 4, tokens: 260, files: 3 });
  }, 120_000);

  it("the manifest's per-source counts match a long sampled stream", async () => {
    const { csv, recipe } = csvRecipe(
      (csv) => `  sequenceLength: 256
  mixture:
    - { source: csv, path: ${csv}, column: body, weight: 0.2 }
    - { source: text, path: ${shared}/corpora/gutenberg/train/Peter_Pan.txt, weight: 0.5 }
    - { source: synthetic, task: passkey, weight: 0.3 }
  heldout: { path: ${csv}, column: title, sequences: 1 }`,
      ["training.steps=40"],
    );
    const data = loadRecipeData(recipe);
    const m = datasetManifest(recipe, data);
    const { tokenizer } = await loadBackbone(STORIES);
    const sample = buildSampler(recipe, tokenizer, data);
    const actual = [0, 0, 0];
    for (let step = 0; step < 40; step++) actual[Number(sample(step, 0).source.split(":")[0])]!++;
    expect(m.mixture!.map((e) => e.sequences)).toEqual(actual);
    expect(actual.every((n) => n > 0)).toBe(true);
    expect(m.mixture![2]).toMatchObject({ source: "synthetic", task: "passkey", haystack: csv, documents: 6 });
    expect(m.heldout).toMatchObject({ path: csv, columns: { text: "title" }, documents: 6 });
  }, 60_000);

  it("a data error (a column the CSV lacks, held-out sequences too short for memory) fails before the output folder is created", async () => {
    const { dir, recipe } = csvRecipe(
      (csv) => `  sequenceLength: 192
  mixture:
    - { source: csv, path: ${csv}, columns: { text: [title, summary] }, weight: 1 }
  heldout: { path: ${shared}/corpora/gutenberg/heldout/Treasure_Island.txt, sequences: 1 }`,
    );
    await expect(train(recipe, quiet)).rejects.toThrow(/stories\.csv: unknown column "summary" \(columns: title, body, notes\)/);
    expect(existsSync(join(dir, "out"))).toBe(false);
    // held-out sequences no longer than sink + window would never use memory: refused, nothing written
    const short = loadRecipe(tinyRecipe(dir), ["data.heldout.sequenceLength=64"]);
    await expect(train(short, quiet)).rejects.toThrow(/held-out sequences of 64 tokens ≤ sinkTokens \+ windowTokens 64 would never use memory/);
    expect(existsSync(join(dir, "out"))).toBe(false);
  }, 60_000);
});

describe("objectives and optimizer groups", () => {
  it("recipe checks: optimizer groups (lr and lrScale together, a bad pattern), objective names and objective options, in one line", () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-groups-"));
    const base = tinyRecipe(dir);
    const cases: [string[], RegExp][] = [
      [["training.optimizer.groups=[{ match: gate, lr: 0.1, lrScale: 2 }]"], /training\.optimizer\.groups\[0\]\.lr and training\.optimizer\.groups\[0\]\.lrScale are both set/],
      [["training.optimizer.groups=[{ match: 'gate(' }]"], /training\.optimizer\.groups\[0\]\.match "gate\(" is not a regular expression/],
      [["training.optimizer.groups=[{ match: gate, lrscale: 2 }]"], /unknown key "training\.optimizer\.groups\[0\]\.lrscale" \(did you mean "lrScale"\?\)/],
      [["training.optimizer.groups=[{ match: gate, weightDecay: -1 }]"], /training\.optimizer\.groups\[0\]\.weightDecay is -1 — expected a non-negative number/],
      [["training.objective=distill"], /training\.objective is "distill" — allowed values: next-token, attention-transfer/],
      [["training.objectiveOptions={ teacher: full }"], /\(with --set training\.objectiveOptions=\{ teacher: full \}\): unknown key "training\.objectiveOptions\.teacher" .*\(options of training\.objective next-token\)/],
    ];
    for (const [sets, re] of cases) expect(errorOf(() => loadRecipe(base, sets)), sets[0]).toMatch(re);
    const r = loadRecipe(base, ["training.optimizer.groups=[{ match: gate, lr: 0.1 }, { match: memory, weightDecay: 0.5 }]"]);
    expect(r.training.optimizer.groups).toEqual([{ match: "gate", lr: 0.1 }, { match: "memory", weightDecay: 0.5 }]);
    expect(r.training.objective).toBe("next-token");
    expect(r.training.objectiveOptions).toEqual({});
  });

  it("a group that matches none of the module's variables fails before the output folder is created", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-groups-"));
    const recipe = loadRecipe(tinyRecipe(dir), ["training.optimizer.groups=[{ match: gate }, { match: gates }]"]);
    await expect(train(recipe, quiet)).rejects.toThrow(
      /training\.optimizer\.groups\[1\]\.match "gates" matches none of the module's variables \(layers\.0\.gate\.bias, layers\.0\.memory\.query_map, .*\)/,
    );
    expect(existsSync(join(dir, "out"))).toBe(false);
  }, 60_000);

  it("trainStep takes gradients from the run's objective and AdamW applies each group's lr and weight decay (float64 reference)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-groups-"));
    const recipe = loadRecipe(tinyRecipe(dir), [
      "training.steps=3",
      "training.gradClip=0",
      "training.schedule={ warmupSteps: 1, minLrRatio: 0.2 }",
      "training.optimizer={ lr: 0.01, weightDecay: 0.1, beta1: 0.8, beta2: 0.95, eps: 1e-6, groups: [{ match: 'gate\\.bias$', lr: 0.05, weightDecay: 0 }, { match: value_map, lrScale: 3 }] }",
    ]);
    const prepared = await prepareRun(recipe, quiet);
    const run = prepared as TrainRun;
    expect("finished" in prepared).toBe(false);
    const tensorsBefore = tf.memory().numTensors;
    try {
      const vars = run.module.trainableVariables();
      const names = [...vars.keys()];
      // deterministic gradients from a stand-in objective: what trainStep averages, checks and hands to AdamW
      const gradOf = (name: string, size: number, step: number) => Float64Array.from({ length: size }, (_, i) => 0.01 * Math.sin(i + 7 * names.indexOf(name) + 3 * step) + (i % 3 === 0 ? 1e-3 : 0));
      let calls = 0;
      const stub: Objective<unknown> = {
        summary: "test",
        optionsSchema: z.unknown(),
        gradients: async ({ module, sequence }) => {
          const step = calls++;
          expect(sequence.ids.length).toBe(193);
          const grads = new Map<string, tf.Tensor>();
          for (const [name, v] of module.trainableVariables()) grads.set(name, tf.tensor(Float32Array.from(gradOf(name, v.size, step)), v.shape));
          return { loss: 2.5, tokens: 192, grads };
        },
      };
      run.objective = stub;
      const initial = new Map(names.map((n) => [n, Float64Array.from(vars.get(n)!.dataSync())]));
      for (let step = 0; step < 3; step++) {
        const r = await trainStep(run, step);
        expect(r).toMatchObject({ loss: 2.5, lr: learningRate(step, 0.01, 1, 3, 0.2), tokens: 192 });
        const sq = names.reduce((a, n) => a + Float32Array.from(gradOf(n, vars.get(n)!.size, step)).reduce((b, g) => b + g * g, 0), 0);
        expect(r.gradNorm).toBeCloseTo(Math.sqrt(sq), 5);
      }
      expect(calls).toBe(3);
      // float64 AdamW over the same 3 steps; `group` gives each variable's lr multiple and weight decay
      const reference = (group: (name: string) => { scale: number; wd: number }) => {
        const out = new Map<string, Float64Array>();
        for (const n of names) {
          const th = Float64Array.from(initial.get(n)!);
          const mm = new Float64Array(th.length);
          const vv = new Float64Array(th.length);
          const { scale, wd } = group(n);
          for (let step = 0; step < 3; step++) {
            const lr = learningRate(step, 0.01, 1, 3, 0.2);
            const g = Float32Array.from(gradOf(n, th.length, step)); // the stub's float32 gradients
            for (let i = 0; i < th.length; i++) {
              mm[i] = 0.8 * mm[i]! + 0.2 * g[i]!;
              vv[i] = 0.95 * vv[i]! + 0.05 * g[i]! * g[i]!;
              const update = mm[i]! / (1 - 0.8 ** (step + 1)) / (Math.sqrt(vv[i]! / (1 - 0.95 ** (step + 1))) + 1e-6);
              th[i] = th[i]! - lr * scale * (update + wd * th[i]!);
            }
          }
          out.set(n, th);
        }
        return out;
      };
      const maxDiff = (want: Map<string, Float64Array>) => {
        let d = 0;
        for (const n of names) {
          const got = vars.get(n)!.dataSync();
          want.get(n)!.forEach((w, i) => (d = Math.max(d, Math.abs(got[i]! - w))));
        }
        return d;
      };
      const grouped = reference((n) => (/gate\.bias$/.test(n) ? { scale: 5, wd: 0 } : /value_map/.test(n) ? { scale: 3, wd: 0.1 } : { scale: 1, wd: 0.1 }));
      expect(maxDiff(grouped)).toBeLessThan(2e-6);
      // the groups made a difference far above that tolerance
      expect(maxDiff(reference(() => ({ scale: 1, wd: 0.1 })))).toBeGreaterThan(1e-2);
    } finally {
      run.dispose();
    }
    expect(tf.memory().numTensors).toBeLessThanOrEqual(tensorsBefore);
  }, 60_000);

  it("training.batchSize 3 (one forward/backward of 3 sequences) steps like batchSize 1 × gradAccumulation 3; the held-out loss is the same", async () => {
    const runs: TrainRun[] = [];
    try {
      for (const sets of [["training.batchSize=1", "training.gradAccumulation=3"], ["training.batchSize=3", "training.gradAccumulation=1"]]) {
        const dir = mkdtempSync(join(tmpdir(), "ei-batch-"));
        const prepared = await prepareRun(loadRecipe(tinyRecipe(dir), [...sets, "training.steps=1"]), quiet);
        expect("finished" in prepared).toBe(false);
        runs.push(prepared as TrainRun);
      }
      const [looped, batched] = runs as [TrainRun, TrainRun];
      expect(batched.baselineHeldoutLoss).toBe(looped.baselineHeldoutLoss);
      const calls: number[] = [];
      const real = batched.objective.batchGradients!;
      batched.objective = { ...batched.objective, batchGradients: (inputs) => (calls.push(inputs.sequences.length), real(inputs)) };
      const a = await trainStep(looped, 0);
      const b = await trainStep(batched, 0);
      expect(calls).toEqual([3]);
      expect(b.tokens).toBe(a.tokens);
      expect(b.loss).toBeCloseTo(a.loss, 5);
      expect(b.gradNorm).toBeCloseTo(a.gradNorm, 4);
      for (const [name, v] of looped.module.trainableVariables()) {
        const want = v.dataSync();
        const got = batched.module.trainableVariables().get(name)!.dataSync();
        let d = 0;
        for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(got[i]! - want[i]!));
        expect(d, name).toBeLessThan(1e-5);
      }
    } finally {
      for (const r of runs) r.dispose();
    }
  }, 120_000);
});

describe("segment-wise TBPTT", () => {
  beforeAll(async () => {
    await initBackend("cpu");
  });
  const c = tinyConfig();
  const ids = Array.from({ length: 65 }, (_, i) => (i * 11 + 5) % c.vocabSize);
  const cfg = makeEdgeInfiniteConfig({ sinkTokens: 2, windowTokens: 8, segmentLength: 8 });

  it("k = all equals full backprop; k = 1 equals the sum of per-segment gradients with the carried state held constant", async () => {
    const model = LlamaModel.fromHost(c, randomWeights(c, 2));
    const module = new MemoryGatingModule(c, { ...cfg, gateInitLogit: 0 });
    const vars = module.trainableVariables();
    const inputs = ids.slice(0, -1);
    const targets = ids.slice(1);
    const segLoss = (st: ReturnType<typeof initialState>, s: number) => {
      const seg = inputs.slice(s * 8, s * 8 + 8);
      const r = forwardSegment(model, module, st, seg);
      const logp = tf.logSoftmax(model.logits(r.hidden));
      const nll = tf.neg(tf.sum(tf.mul(logp, tf.oneHot(tf.tensor1d(targets.slice(s * 8, s * 8 + 8), "int32"), c.vocabSize))));
      return { loss: tf.div(nll, targets.length) as tf.Scalar, state: r.state };
    };
    // full BPTT written directly: one tape over all 8 segments
    const full = tf.variableGrads(() => {
      let st = initialState(c);
      let total: tf.Scalar = tf.scalar(0);
      for (let s = 0; s < 8; s++) {
        const r = segLoss(st, s);
        total = tf.add(total, r.loss);
        st = r.state;
      }
      return total;
    }, [...vars.values()]);
    // k = 1 written directly: each segment's own tape, state from the previous one as a constant
    const perSegment = new Map<string, Float32Array>();
    let st = initialState(c);
    for (let s = 0; s < 8; s++) {
      let next = st;
      const g = tf.variableGrads(() => {
        const r = segLoss(st, s);
        next = keepState(r.state);
        return r.loss;
      }, [...vars.values()]);
      for (const [name, v] of vars) {
        // with k = 1 key/value maps get no gradient (memory written in a segment is read only by later ones)
        const add = g.grads[v.name]?.dataSync() ?? new Float32Array(v.size);
        const acc = perSegment.get(name) ?? new Float32Array(v.size);
        perSegment.set(name, acc.map((a, i) => a + add[i]!));
      }
      tf.dispose([g.value, ...Object.values(g.grads)]);
      st = next;
    }
    const kAll = await sequenceGradients(model, module, ids, 1000);
    const k1 = await sequenceGradients(model, module, ids, 1);
    let differs = false;
    for (const [name, v] of vars) {
      const want = full.grads[v.name]!.dataSync();
      const gotAll = kAll.grads.get(name)!.dataSync();
      const got1 = k1.grads.get(name)!.dataSync();
      const want1 = perSegment.get(name)!;
      const scale = Math.max(1e-6, ...Array.from(want).map(Math.abs));
      const scale1 = Math.max(1e-6, ...Array.from(want1).map(Math.abs));
      for (let i = 0; i < want.length; i++) {
        expect(Math.abs(gotAll[i]! - want[i]!) / scale, name).toBeLessThan(1e-4);
        expect(Math.abs(got1[i]! - want1[i]!) / scale1, name).toBeLessThan(1e-4);
        if (Math.abs(got1[i]! - want[i]!) / scale > 1e-3) differs = true;
      }
    }
    expect(differs).toBe(true); // truncation changes the gradient
    expect(kAll.loss).toBeCloseTo(full.value.dataSync()[0]!, 5);
    tf.dispose([full.value, ...Object.values(full.grads), ...kAll.grads.values(), ...k1.grads.values()]);
    module.dispose();
    model.dispose();
  });

  it("peak memory grows with k, not with sequence length", async () => {
    const model = LlamaModel.fromHost(c, randomWeights(c, 2));
    const module = new MemoryGatingModule(c, cfg);
    const peak = async (n: number, k: number) => {
      const seq = Array.from({ length: n * 8 + 1 }, (_, i) => (i * 7 + 1) % c.vocabSize);
      const info = await tf.profile(async () => {
        const { grads } = await sequenceGradients(model, module, seq, k);
        tf.dispose([...grads.values()]);
      });
      return info.peakBytes;
    };
    const short2 = await peak(8, 2);
    const long2 = await peak(32, 2);
    const short8 = await peak(8, 8);
    expect(Math.abs(long2 - short2) / short2).toBeLessThan(0.05);
    expect(short8).toBeGreaterThan(2 * short2);
    module.dispose();
    model.dispose();
  });
});

/** One uninterrupted 4-step run of tinyRecipe, shared by the tests that compare against it. */
let referenceRun: Promise<{ dir: string; out: string; result: TrainResult }> | undefined;
function reference() {
  referenceRun ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-train-ref-"));
    const result = await train(loadRecipe(tinyRecipe(dir)), quiet);
    return { dir, out: join(dir, "out"), result };
  })();
  return referenceRun;
}

const moduleBytes = (out: string) => readFileSync(join(resolveCheckpointDir(out), "module.safetensors"));

/** A copy of stories260K with one weight changed (another backbone of the same shape), as DIR/NAME.bin plus its tokenizer. */
function otherStories(dir: string, name: string): string {
  mkdirSync(dir, { recursive: true });
  const bin = readFileSync(STORIES);
  bin.writeFloatLE(bin.readFloatLE(bin.length - 4) + 0.5, bin.length - 4);
  const path = join(dir, `${name}.bin`);
  writeFileSync(path, bin);
  copyFileSync(join(shared, "models/stories260K/tok512.bin"), join(dir, "tok512.bin"));
  return path;
}

/** Runs train() from the sources (tsx) as a child process with the crash hooks of `env` (test/fixtures/train-child.ts); resolves with its exit code and signal. */
function trainChild(recipe: string, env: Record<string, string>): Promise<{ code: number | null; signal: NodeJS.Signals | null; pid: number; stderr: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(repo, "test/fixtures/train-child.ts"), recipe], {
    cwd: repo,
    env: { ...process.env, ...env },
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((done) => child.on("exit", (code, signal) => done({ code, signal, pid: child.pid!, stderr })));
}

describe("training runs", () => {
  it("--resume continues bit-for-bit like an uninterrupted run; the backbone is untouched", async () => {
    const ref = await reference();
    const b = mkdtempSync(join(tmpdir(), "ei-train-b-"));
    await train(loadRecipe(tinyRecipe(b)), { ...quiet, stopAtStep: 2 });
    expect(readCheckpointMeta(join(b, "out")).step).toBe(2);
    const rb = await train(loadRecipe(tinyRecipe(b)), { ...quiet, resume: true });
    expect(Buffer.compare(moduleBytes(ref.out), moduleBytes(join(b, "out")))).toBe(0);
    expect(rb.finalLoss).toBe(ref.result.finalLoss);
    expect(rb.backboneChecksum).toBe(ref.result.backboneChecksum);
    // the module did change
    const t = readSafetensors(join(resolveCheckpointDir(ref.out), "module.safetensors"));
    expect(Array.from(t.get("layers.0.gate.bias")!.data).some((v) => Math.abs(v + 6) > 1e-4)).toBe(true);
    // an existing output without --resume is refused
    await expect(train(loadRecipe(tinyRecipe(ref.dir)), quiet)).rejects.toThrow(/already holds a checkpoint at step 4 — pass --resume/);
    // the run records its data
    expect(readManifest(join(ref.out, DATASET_MANIFEST)).records).toBe(4);
  }, 180_000);

  it("with training.batchSize 2 (two sequences per forward), --resume still continues bit-for-bit", async () => {
    const sets = ["training.batchSize=2"];
    const [a, b] = [mkdtempSync(join(tmpdir(), "ei-batch-a-")), mkdtempSync(join(tmpdir(), "ei-batch-b-"))];
    const whole = await train(loadRecipe(tinyRecipe(a), sets), quiet);
    await train(loadRecipe(tinyRecipe(b), sets), { ...quiet, stopAtStep: 2 });
    const resumed = await train(loadRecipe(tinyRecipe(b), sets), { ...quiet, resume: true });
    expect(Buffer.compare(moduleBytes(join(a, "out")), moduleBytes(join(b, "out")))).toBe(0);
    expect(resumed.finalLoss).toBe(whole.finalLoss);
    expect(resumed.heldoutLoss).toBe(whole.heldoutLoss);
  }, 300_000);

  it("a checkpoint made for another backbone is refused by --resume and by prepareMethod (eval/generate), naming both backbones", async () => {
    const ref = await reference();
    const dir = mkdtempSync(join(tmpdir(), "ei-other-"));
    const other = otherStories(join(dir, "a"), "stories260K-finetuned");
    const before = fileListing(ref.out);
    // --resume with the other backbone
    const recipe = loadRecipe(join(ref.dir, "recipe.yaml"), [`backbone=${other}`]);
    const resumed = await train(recipe, { ...quiet, resume: true }).then(
      () => "",
      (e: Error) => e.message,
    );
    const named = /checkpoint .*step-000004 was trained on backbone "stories260K" \(sha256 b0a507e7ad0f…\), not on "stories260K-finetuned" \(sha256 [0-9a-f]{12}…\) — pass the backbone it was trained on/;
    expect(resumed).toMatch(named);
    expect(resumed.includes("\n")).toBe(false);
    expect(fileListing(ref.out)).toEqual(before); // nothing written
    // loading it for generation / evaluation (eval/methods.ts prepareMethod, what generate and eval use)
    const otherBackbone = await loadBackbone(other);
    expect(errorOf(() => prepareMethod({ name: "edgeinfinite", checkpoint: ref.out }, otherBackbone))).toMatch(named);
    expect(() => loadCheckpoint(ref.out, otherBackbone)).toThrow(named);
    // two backbones with the same file name: the message names both paths
    const sameName = await loadBackbone(otherStories(join(dir, "b"), "stories260K"));
    const msg = errorOf(() => prepareMethod({ name: "edgeinfinite", checkpoint: ref.out }, sameName));
    expect(msg).toContain(`"stories260K" at ${STORIES}`);
    expect(msg).toContain(`"stories260K" at ${join(dir, "b", "stories260K.bin")}`);
    // the right backbone loads it
    const prepared = prepareMethod({ name: "edgeinfinite", checkpoint: ref.out }, await loadBackbone(STORIES));
    expect(prepared.checkpointDir).toMatch(/step-000004$/);
    prepared.dispose();
  }, 180_000);

  it("training.initFrom starts from a trained module's weights with a fresh optimizer; a missing folder or another backbone's module is one line and creates nothing", async () => {
    const ref = await reference();
    const dir = mkdtempSync(join(tmpdir(), "ei-init-"));
    const recipe = loadRecipe(tinyRecipe(dir), [`training.initFrom=${ref.out}`]);
    const lines: string[] = [];
    const run = (await prepareRun(recipe, { ...quiet, log: (l) => lines.push(l) })) as TrainRun;
    try {
      const want = readSafetensors(join(resolveCheckpointDir(ref.out), "module.safetensors"));
      const vars = run.module.trainableVariables();
      expect([...vars.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [name, v] of vars) expect(Buffer.from(v.dataSync().buffer).equals(Buffer.from(want.get(name)!.data.buffer)), name).toBe(true);
      expect(run.startStep).toBe(0);
      expect(run.optimizer.step).toBe(0);
      expect(lines.some((l) => /module initialised from .*step-000004 \(step 4; training\.initFrom\)/.test(l))).toBe(true);
      // the untrained module differs from the trained one (the check above can fail)
      const fresh = new MemoryGatingModule(run.backbone.config, run.config);
      const differs = [...fresh.trainableVariables()].some(([n, v]) => !Buffer.from(v.dataSync().buffer).equals(Buffer.from(want.get(n)!.data.buffer)));
      fresh.dispose();
      expect(differs).toBe(true);
    } finally {
      run.dispose();
    }
    const missingDir = mkdtempSync(join(tmpdir(), "ei-init-missing-"));
    const missing = loadRecipe(tinyRecipe(missingDir), [`training.initFrom=${join(missingDir, "nope")}`]);
    const msg = await prepareRun(missing, quiet).then(() => "", (e: Error) => e.message);
    expect(msg).toMatch(/^training\.initFrom .*nope does not exist — point it at a trained module's folder/);
    expect(existsSync(join(missingDir, "out"))).toBe(false);
    const otherDir = mkdtempSync(join(tmpdir(), "ei-init-other-"));
    const other = loadRecipe(tinyRecipe(otherDir), [`training.initFrom=${ref.out}`, `backbone=${otherStories(join(otherDir, "m"), "other")}`]);
    const otherMsg = await prepareRun(other, quiet).then(() => "", (e: Error) => e.message);
    expect(otherMsg).toMatch(/was trained on backbone "stories260K" .* not on "other"/);
    expect(otherMsg.includes("\n")).toBe(false);
    expect(existsSync(join(otherDir, "out"))).toBe(false);
  }, 180_000);

  it("a NaN loss stops the run with a message and keeps the last good checkpoint", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-nan-"));
    const recipe = loadRecipe(tinyRecipe(dir), ["training.optimizer.lr=1e30", "training.checkpointInterval=1", "training.steps=6", "training.gradClip=0"]);
    await expect(train(recipe, quiet)).rejects.toThrow(/loss became (NaN|Infinity|-Infinity) at step \d+; stopped, the last good checkpoint/);
    const meta = readCheckpointMeta(join(dir, "out"));
    expect(meta.step).toBeGreaterThanOrEqual(1);
    expect(readSafetensors(join(resolveCheckpointDir(join(dir, "out")), "module.safetensors")).size).toBeGreaterThan(0);
  }, 120_000);

  it("a run that fails on a later micro-batch (gradient accumulation) frees the gradients it had summed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-micro-"));
    const recipe = loadRecipe(tinyRecipe(dir), ["training.gradAccumulation=3", "training.steps=2", "training.workers=1"]); // in-process: the hook wraps this process's objective
    const before = tf.memory().numTensors;
    tbpttHook.calls = 0;
    tbpttHook.failOnCall = 2; // step 1's second micro-batch: the first one's gradients are in the sum
    try {
      await expect(train(recipe, quiet)).rejects.toThrow("injected micro-batch failure");
      expect(tbpttHook.calls).toBe(2);
    } finally {
      tbpttHook.failOnCall = 0;
    }
    expect(tf.memory().numTensors).toBe(before);
  }, 120_000);

  it("a damaged module.safetensors (a tensor removed, an extra one, a wrong shape) is refused by loadCheckpoint and --resume, in one line", async () => {
    const ref = await reference();
    const backbone = await loadBackbone(STORIES);
    const good = readSafetensors(join(resolveCheckpointDir(ref.out), "module.safetensors"));
    const cases: Array<[string, (t: Record<string, { shape: number[]; data: Float32Array }>) => void, RegExp]> = [
      ["removed", (t) => delete t["layers.1.gate.bias"], /^checkpoint \S+module\.safetensors lacks 1 trainable tensor\(s\) of its config \(layers\.1\.gate\.bias\) — the checkpoint is damaged; use an earlier step folder$/],
      ["extra", (t) => (t["layers.0.gate.extra"] = { shape: [2], data: new Float32Array(2) }), /^checkpoint \S+module\.safetensors holds 1 tensor\(s\) its config does not train \(layers\.0\.gate\.extra\) — its checkpoint\.json and module\.safetensors disagree; use another checkpoint$/],
      ["shape", (t) => (t["layers.0.gate.bias"] = { shape: [1, t["layers.0.gate.bias"]!.data.length], data: t["layers.0.gate.bias"]!.data }), /^checkpoint \S+module\.safetensors: tensor layers\.0\.gate\.bias has shape \[1, \d+\], this backbone's head layout needs \[\d+\] — the checkpoint does not fit this backbone, or is damaged; use a checkpoint trained on it$/],
    ];
    const baseline = tf.memory().numTensors;
    for (const [name, damage, message] of cases) {
      const dir = mkdtempSync(join(tmpdir(), `ei-damaged-${name}-`));
      const step = join(dir, "out", "step-000004");
      mkdirSync(step, { recursive: true });
      for (const f of ["checkpoint.json", "optimizer.safetensors"]) copyFileSync(join(resolveCheckpointDir(ref.out), f), join(step, f));
      writeFileSync(join(dir, "out", "latest.json"), JSON.stringify({ step: 4, path: "step-000004" }));
      const tensors = Object.fromEntries(good);
      damage(tensors);
      writeSafetensors(join(step, "module.safetensors"), tensors);
      expect(errorOf(() => loadCheckpoint(join(dir, "out"), backbone)), name).toMatch(message);
      expect(tf.memory().numTensors, name).toBe(baseline); // the refused module was disposed
      const recipe = loadRecipe(tinyRecipe(dir), ["training.steps=6"]);
      const resumed = await train(recipe, { ...quiet, resume: true }).then(() => "", (e: Error) => e.message);
      expect(resumed, name).toMatch(message);
    }
    // the intact checkpoint still loads, and loadModuleTensors is what it uses
    const { module } = loadCheckpoint(ref.out, backbone);
    expect(() => loadModuleTensors(module, resolveCheckpointDir(ref.out))).not.toThrow();
    module.dispose();
  }, 180_000);

  it(`kill -9 midway through writing a step folder (${TEST_CRASH_ENV}=write-step-folder@4) leaves step 2 loadable, and --resume finishes like an uninterrupted run`, async () => {
    const ref = await reference();
    const dir = mkdtempSync(join(tmpdir(), "ei-crash-"));
    const recipePath = tinyRecipe(dir);
    const out = join(dir, "out");
    const child = await trainChild(recipePath, { [TEST_CRASH_ENV]: "write-step-folder@4", EDGEINF_BACKEND: "cpu" });
    expect(child.signal, child.stderr).toBe("SIGKILL");
    // the interrupted write: module.safetensors is in the temp folder, the rest is not, nothing was renamed
    const tmp = join(out, `.step-000004.tmp-${child.pid}`);
    expect(readdirSync(tmp).sort()).toEqual(["module.safetensors"]);
    expect(existsSync(join(out, "step-000004"))).toBe(false);
    expect(JSON.parse(readFileSync(join(out, "latest.json"), "utf8"))).toEqual({ step: 2, path: "step-000002" });
    // the previous checkpoint loads
    const backbone = await loadBackbone(STORIES);
    const loaded = loadCheckpoint(out, backbone);
    expect(loaded.meta.step).toBe(2);
    expect(loaded.dir).toBe(join(out, "step-000002"));
    loaded.module.dispose();
    // and resumes: the temp folder is cleared, steps 3-4 are redone, the result equals the uninterrupted run's
    const lines: string[] = [];
    const resumed = await train(loadRecipe(recipePath), { ...quiet, resume: true, log: (l) => lines.push(l) });
    expect(lines).toContain(`removed ${tmp}: an interrupted checkpoint write`);
    expect(existsSync(tmp)).toBe(false);
    expect(readCheckpointMeta(out).step).toBe(4);
    expect(Buffer.compare(moduleBytes(out), moduleBytes(ref.out))).toBe(0);
    expect(resumed.finalLoss).toBe(ref.result.finalLoss);
    // the log rows the crashed run wrote for steps 3-4 were replaced, not duplicated
    const steps = readFileSync(join(out, "train_log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).step);
    expect(steps).toEqual([1, 2, 3, 4]);
    expect(readFileSync(join(out, "train_log.csv"), "utf8").trim().split("\n").slice(1).map((l) => Number(l.split(",")[0]))).toEqual([1, 2, 3, 4]);
  }, 180_000);

  it("kill -9 after a step folder is renamed but before latest.json is replaced: latest.json still names the previous step", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-kill-latest-"));
    const child = spawn(process.execPath, ["--import", "tsx", join(repo, "test/fixtures/checkpoint-writer.ts"), dir], {
      cwd: repo,
      env: { ...process.env, [TEST_CRASH_ENV]: "before-latest@3" },
    });
    const signal = await new Promise<NodeJS.Signals | null>((done) => child.on("exit", (_, s) => done(s)));
    expect(signal).toBe("SIGKILL");
    expect(readdirSync(dir).sort()).toEqual(["latest.json", "step-000001", "step-000002", "step-000003"]);
    expect(readdirSync(join(dir, "step-000003")).sort()).toEqual(["checkpoint.json", "module.safetensors", "optimizer.safetensors"]);
    expect(readCheckpointMeta(dir).step).toBe(2);
    expect(resolveCheckpointDir(dir)).toBe(join(dir, "step-000002"));
    expect(readSafetensors(join(dir, "step-000002", "optimizer.safetensors")).get("m.big")!.data.length).toBe(4_000_000);
    // writing step 3 again replaces the orphan folder and moves latest.json
    await initBackend("cpu");
    const module = new MemoryGatingModule(tinyConfig(), makeEdgeInfiniteConfig({ sinkTokens: 2, windowTokens: 8, segmentLength: 4 }));
    await saveCheckpoint(dir, module, { step: 3, backbone: { id: "tiny", sha256: "0".repeat(64), format: "test" } });
    module.dispose();
    expect(readCheckpointMeta(dir).step).toBe(3);
    expect(readdirSync(join(dir, "step-000003")).sort()).toEqual(["checkpoint.json", "module.safetensors"]);
  }, 60_000);

  it("kill -9 at a random moment of repeated checkpoint writes leaves a loadable checkpoint (timing-based)", async () => {
    // Complements the deterministic tests above: the kill lands wherever the writer is (a safetensors write, the
    // rename, latest.json, pruning), and whatever latest.json names must be complete.
    const dir = mkdtempSync(join(tmpdir(), "ei-kill-"));
    const child = spawn(process.execPath, ["--import", "tsx", join(repo, "test/fixtures/checkpoint-writer.ts"), dir], { cwd: repo });
    let saved = 0;
    await new Promise<void>((done) => {
      child.stdout.on("data", (d: Buffer) => {
        saved += (d.toString().match(/saved/g) ?? []).length;
        if (saved >= 3) {
          // kill while the next write is in flight
          setTimeout(() => child.kill("SIGKILL"), 7);
        }
      });
      child.on("exit", () => done());
    });
    expect(saved).toBeGreaterThanOrEqual(3);
    const meta = readCheckpointMeta(dir);
    expect(meta.step).toBeGreaterThanOrEqual(3);
    const step = resolveCheckpointDir(dir);
    expect(readSafetensors(join(step, "module.safetensors")).size).toBeGreaterThan(0);
    expect(readSafetensors(join(step, "optimizer.safetensors")).get("m.big")!.data.length).toBe(4_000_000);
    // a temp folder the kill may have left is recognised as incomplete and removed; complete folders stay
    const complete = readdirSync(dir).filter((f) => /^step-\d+$/.test(f));
    removeIncompleteCheckpoints(dir);
    expect(readdirSync(dir).filter((f) => f.startsWith(".step-"))).toEqual([]);
    expect(readdirSync(dir).filter((f) => /^step-\d+$/.test(f))).toEqual(complete);
  }, 60_000);
});
