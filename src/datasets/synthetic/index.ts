import { basename, extname } from "node:path";
import type { Tokenizer } from "../../tokenizers/tokenizer.js";
import { fail } from "../../util/errors.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { Rng } from "../../util/rng.js";
import { type DatasetManifest, type ManifestSource, writeManifest } from "../manifest.js";
import { composeRecordText, composeTrainingIds } from "./compose.js";
import { INTRO } from "./formats.js";
import { HaystackSource } from "./haystack.js";
import { kvRetrievalTask } from "./kv-retrieval.js";
import { multiNeedleTask } from "./multi-needle.js";
import { needleTask } from "./needle.js";
import { passkeyTask } from "./passkey.js";
import type { SyntheticRecord, TaskGenerator, TaskInstance, TaskParams } from "./types.js";
import { variableTrackingTask } from "./variable-tracking.js";

export type { SyntheticRecord, TaskInstance, TaskParams, Needle } from "./types.js";
export { HaystackSource, splitSentences } from "./haystack.js";

export const TASKS = {
  passkey: passkeyTask,
  needle: needleTask,
  "multi-needle": multiNeedleTask,
  "kv-retrieval": kvRetrievalTask,
  "variable-tracking": variableTrackingTask,
} as const satisfies Record<string, TaskGenerator>;

export type TaskName = keyof typeof TASKS;
export const TASK_NAMES = Object.keys(TASKS) as TaskName[];

/** The trained number range: 3–7 digits. */
export const DEFAULT_DIGITS = [3, 7] as const;

export interface GenerateTaskOptions {
  tokenizer: Tokenizer;
  /** Prose texts the haystacks are cut from. */
  corpus: readonly string[];
  /** Tokens of `context + input` (no BOS); met within about one word, always from below. */
  targetTokens: number;
  count: number;
  seed: number;
  /** Depths (0..1) of the asked needle, cycled over records; default evenly spaced from 0.05 to 0.95. */
  depths?: readonly number[];
  /** Inclusive digit range of hidden numbers; default [3, 7]. */
  digits?: readonly [number, number];
  /** Start the context with the trained intro sentence (default true). */
  intro?: boolean;
  /** multi-needle / kv-retrieval needle count (default: random in the trained range). */
  needles?: number;
  /** variable-tracking hops and chains. */
  hops?: number;
  chains?: number;
}

const MAX_ATTEMPTS = 20;

/** Parse a task name from user input; underscores are accepted for hyphens ("kv_retrieval"). */
export function taskName(name: string): TaskName {
  const canonical = name.replace(/_/g, "-");
  if (!(canonical in TASKS)) fail(`unknown synthetic task "${name}" (tasks: ${TASK_NAMES.join(", ")})`, "pick one of those");
  return canonical as TaskName;
}

/** Default depth grid: `count` depths evenly spaced over [0.05, 0.95] (0.5 for a single record). */
export function depthGrid(count: number): number[] {
  if (count === 1) return [0.5];
  return Array.from({ length: count }, (_, i) => 0.05 + (0.9 * i) / (count - 1));
}

export function checkTaskParams(opts: { digits?: readonly [number, number] }): readonly [number, number] {
  const digits = opts.digits ?? DEFAULT_DIGITS;
  const [lo, hi] = digits;
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi < lo || hi > 15) {
    fail(`digits [${lo}, ${hi}] must be integers with 1 ≤ min ≤ max ≤ 15`, "use e.g. [3, 7] (the trained range)");
  }
  return digits;
}

function occurrences(text: string, word: string): number {
  const escaped = word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return (text.match(new RegExp(`(?<![0-9A-Za-z])${escaped}(?![0-9A-Za-z])`, "g")) ?? []).length;
}

/** True when every answer occurs in `text` only inside the needles (the prose does not contain it by chance). */
export function answersOnlyInNeedles(text: string, instance: TaskInstance): boolean {
  const needleText = instance.needles.map((n) => n.text).join(" ");
  return instance.answers.every((a) => occurrences(text, a) === occurrences(needleText, a));
}

/**
 * Draw a task instance and compose it, redrawing (seeded) when a hidden value also occurs in the prose,
 * so that exact-match answers are unambiguous.
 */
export function withUnambiguousAnswer<T>(
  rng: Rng,
  draw: () => TaskInstance,
  compose: (instance: TaskInstance) => T & { text: string },
): { instance: TaskInstance; result: T & { text: string } } {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const instance = draw();
    const result = compose(instance);
    if (answersOnlyInNeedles(result.text, instance)) return { instance, result };
  }
  return fail(`could not hide an answer that does not already occur in the haystack (seed ${rng.seed})`, "use more digits");
}

/** LongBench-format records for a synthetic task; same options and seed give identical records. */
export function generateTask(requestedName: string, opts: GenerateTaskOptions): SyntheticRecord[] {
  const name = taskName(requestedName);
  const task = TASKS[name];
  if (!Number.isInteger(opts.targetTokens) || opts.targetTokens < 1) {
    fail(`targetTokens ${opts.targetTokens} must be a positive integer`, "e.g. 1024 or 2048");
  }
  if (!Number.isInteger(opts.count) || opts.count < 1) fail(`count ${opts.count} must be a positive integer`, "e.g. 100");
  const depths = opts.depths ?? depthGrid(opts.count);
  if (depths.length === 0 || depths.some((d) => !(d >= 0 && d <= 1))) {
    fail(`depths [${depths.join(", ")}] must be a non-empty list of numbers in 0..1`, "e.g. [0.1, 0.5, 0.9]");
  }
  const params: TaskParams = { digits: checkTaskParams(opts), needles: opts.needles, hops: opts.hops, chains: opts.chains };
  const haystack = new HaystackSource(opts.corpus);
  const rng = new Rng(opts.seed);
  const records: SyntheticRecord[] = [];
  for (let i = 0; i < opts.count; i++) {
    const depth = depths[i % depths.length]!;
    const { result } = withUnambiguousAnswer(
      rng,
      () => task(rng, depth, params),
      (instance) => {
        const composed = composeRecordText(
          { tokenizer: opts.tokenizer, sentences: haystack.sentencesFrom(rng), intro: opts.intro === false ? "" : INTRO, instance },
          opts.targetTokens,
        );
        return { ...composed, instance, text: composed.context };
      },
    );
    records.push({
      input: result.query,
      context: result.context,
      answers: result.instance.answers,
      all_classes: null,
      length: result.tokens,
      _id: syntheticId(name, opts.targetTokens, opts.seed, i, depth),
      dataset: name,
    });
  }
  return records;
}

/** `{task}_{targetTokens}_{seed}_{index}_d{depth}`, e.g. `passkey_2048_42_7_d0.35`: the depth is kept for heatmaps. */
export function syntheticId(name: string, targetTokens: number, seed: number, index: number, depth: number): string {
  return `${name}_${targetTokens}_${seed}_${index}_d${Number(depth.toFixed(4))}`;
}

/** One training sequence of exactly `sequenceLength` ids for `name`, answer at the end, loss mask on it. */
export function generateTrainingSequence(
  name: TaskName,
  opts: {
    tokenizer: Tokenizer;
    haystack: HaystackSource;
    sequenceLength: number;
    rng: Rng;
    depth: number;
    intro: boolean;
    params: TaskParams;
  },
): { ids: number[]; lossMask: number[]; instance: TaskInstance } {
  const task = TASKS[name];
  const { instance, result } = withUnambiguousAnswer(
    opts.rng,
    () => task(opts.rng, opts.depth, opts.params),
    (inst) =>
      composeTrainingIds(
        { tokenizer: opts.tokenizer, sentences: opts.haystack.sentencesFrom(opts.rng), intro: opts.intro ? INTRO : "", instance: inst },
        opts.sequenceLength,
      ),
  );
  return { ids: result.ids, lossMask: result.lossMask, instance };
}

/** Records as JSONL (one object per line), written atomically. */
export function writeJsonl(path: string, records: readonly object[]): void {
  writeFileAtomic(path, records.map((r) => JSON.stringify(r)).join("\n") + (records.length > 0 ? "\n" : ""));
}

/**
 * Generate a task, write it as JSONL at `outPath` and its manifest beside it (both atomic).
 * `sources` are the corpus files the haystack came from (see `loadCorpus`).
 */
export function writeSyntheticDataset(
  outPath: string,
  name: string,
  opts: GenerateTaskOptions,
  sources: readonly ManifestSource[],
  datasetName = basename(outPath, extname(outPath)),
): DatasetManifest {
  const records = generateTask(name, opts);
  writeJsonl(outPath, records);
  const task = taskName(name);
  const manifest: DatasetManifest = {
    name: datasetName,
    sources: [...sources],
    generator: {
      task,
      targetTokens: opts.targetTokens,
      count: opts.count,
      depths: opts.depths ?? "grid 0.05..0.95",
      digits: opts.digits ?? DEFAULT_DIGITS,
      intro: opts.intro !== false,
      ...(opts.needles !== undefined ? { needles: opts.needles } : {}),
      ...(opts.hops !== undefined ? { hops: opts.hops } : {}),
      ...(opts.chains !== undefined ? { chains: opts.chains } : {}),
      tokenizerVocabSize: opts.tokenizer.vocabSize,
    },
    seed: opts.seed,
    records: records.length,
    tokens: records.reduce((n, r) => n + r.length, 0),
    createdAt: new Date().toISOString(),
  };
  writeManifest(outPath, manifest);
  return manifest;
}
