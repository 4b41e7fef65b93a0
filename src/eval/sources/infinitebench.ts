/**
 * InfiniteBench tasks as suite samples. passkey, number_string and kv_retrieval are generated at each of the suite's
 * lengths by construct_synthetic_dataset.py's rules (src/datasets/infinitebench.ts), the noise lines / JSON pairs
 * sized by binary search so the prompt fits, the needle (or the asked pair) at the task's depths; or, with `path`,
 * read from InfiniteBench's own files like the book, dialogue, math and code tasks. File prompts longer than the
 * length are middle-truncated as eval_yarn_mistral.py's truncate_by_tokens does (encode, keep max//2 ids from each
 * end, decode, re-encode); no chat template (InfiniteBench feeds open models the raw prompt).
 */
import { depthGrid } from "../../datasets/synthetic/index.js";
import { infiniteBenchPrompt, kvRetrievalRecord, numberStringKey, numberStringRecord, passkeyRecord, type InfiniteBenchModel, type InfiniteBenchRecord, type InfiniteBenchTask } from "../../datasets/infinitebench.js";
import { INFINITEBENCH_FILE_MAX_NEW_TOKENS, INFINITEBENCH_FILE_TASKS, infiniteBenchFileAnswers, infiniteBenchFilePrompt, labelStrings, type InfiniteBenchFileRow, type InfiniteBenchFileTask, type InfiniteBenchLabel } from "../../datasets/infinitebench-files.js";
import { uuid4FromBits } from "../../datasets/ruler/niah.js";
import { seededRulerRandom } from "../../datasets/ruler/common.js";
import { syntheticId } from "../../datasets/synthetic/index.js";
import { Rng } from "../../util/rng.js";
import { fail } from "../../util/errors.js";
import { DEFAULT_COUNT, finishSample, questionStartIn, truncatedPromptIds, uniqueId, type EvalSample, type SampleSources } from "../samples.js";
import { taskLengths, type Suite, type TaskOf } from "../suite.js";
import { fitToTokens, sampleSeed } from "./fit.js";
import { isObject, nonStringKey, readRecords, typeName, type Parsed } from "./records.js";

export const INFINITEBENCH_GENERATED_TASKS: readonly InfiniteBenchTask[] = ["passkey", "number_string", "kv_retrieval"];
export const INFINITEBENCH_TASK_NAMES: readonly string[] = [...INFINITEBENCH_GENERATED_TASKS, ...INFINITEBENCH_FILE_TASKS];

/** eval_utils.DATA_NAME_TO_MAX_NEW_TOKENS for the generated tasks. */
const GENERATED_MAX_NEW_TOKENS: Readonly<Record<InfiniteBenchTask, number>> = { passkey: 6, number_string: 12, kv_retrieval: 50 };

export function isInfiniteBenchTask(name: string): name is InfiniteBenchTask | InfiniteBenchFileTask {
  return INFINITEBENCH_TASK_NAMES.includes(name);
}

export function isInfiniteBenchFileTask(name: string): name is InfiniteBenchFileTask {
  return (INFINITEBENCH_FILE_TASKS as readonly string[]).includes(name);
}

function isGeneratedTask(name: string): name is InfiniteBenchTask {
  return (INFINITEBENCH_GENERATED_TASKS as readonly string[]).includes(name);
}

/** A generated record's builder: the needle / asked pair drawn once, the haystack size left open. */
type SizedBuilder = (size: number) => InfiniteBenchRecord;

/**
 * Record `seed`'s builder for `task` at `depth`: passkey's 5 digits, number_string's 10 (5 drawn, 5 repeated in
 * place), or kv_retrieval's UUID pairs (drawn as the size grows, so a smaller size keeps a prefix of the same pairs).
 */
export function generatedBuilder(task: InfiniteBenchTask, seed: number, depth: number): SizedBuilder {
  const rng = new Rng(seed);
  const before = (size: number): number => Math.round(depth * size);
  if (task === "passkey") {
    const key = Array.from({ length: 5 }, () => String(rng.range(0, 9))).join("");
    return (size) => passkeyRecord(key, size, before(size));
  }
  if (task === "number_string") {
    const digits = Array.from({ length: 5 }, () => rng.range(0, 9));
    const key = numberStringKey(digits, Array.from({ length: 5 }, (_, k) => rng.range(0, 4 + k)));
    return (size) => numberStringRecord(key, size, before(size));
  }
  const random = seededRulerRandom(seed);
  const pairs: [string, string][] = [];
  return (size) => {
    while (pairs.length < size) pairs.push([uuid4FromBits(random.getrandbits128()), uuid4FromBits(random.getrandbits128())]);
    return kvRetrievalRecord(pairs, size, Math.min(Math.floor(depth * size), size - 1));
  };
}

export interface InfiniteBenchSized {
  size: number;
  record: InfiniteBenchRecord;
  prompt: string;
  ids: number[];
}

/** A generated record sized to `length` tokens (BOS included): the most noise lines / pairs that fit. */
export function infiniteBenchSized(task: InfiniteBenchTask, template: InfiniteBenchModel, build: SizedBuilder, length: number, src: Pick<SampleSources, "tokenizer">): InfiniteBenchSized {
  const fitted = fitToTokens(
    (size) => {
      const record = build(size);
      const prompt = infiniteBenchPrompt(task, template, record);
      return { record, prompt, ids: src.tokenizer.encode(prompt, { bos: true }) };
    },
    (built) => built.ids.length,
    length,
  );
  if (fitted === null) fail(`InfiniteBench ${task}: the shortest prompt is longer than ${length} tokens`, "use a longer length for this task");
  return { size: fitted.size, ...fitted.built };
}

function generatedSamples(suite: Suite, task: TaskOf<"infinitebench">, name: InfiniteBenchTask, src: SampleSources): EvalSample[] {
  const count = task.count ?? DEFAULT_COUNT;
  const depths = task.depths ?? depthGrid(count);
  const out: EvalSample[] = [];
  for (const length of taskLengths(suite, task)) {
    for (let index = 0; index < Math.min(count, src.limit ?? Infinity); index++) {
      const depth = depths[index % depths.length]!;
      const build = generatedBuilder(name, sampleSeed("infinitebench", suite.seed, name, length, index), depth);
      const sized = infiniteBenchSized(name, task.template, build, length, src);
      // The question is the record's input and whatever the template writes after it.
      const question = sized.prompt.slice(sized.prompt.lastIndexOf(sized.record.input));
      out.push(
        finishSample(suite, task, src, {
          dataset: name,
          length,
          sampleId: syntheticId(name, length, suite.seed, index, depth),
          depth,
          prompt: { ids: sized.ids, questionStart: questionStartIn(src, sized.prompt, question, sized.ids, true) },
          truncated: false,
          answers: [sized.record.answer],
          defaultMaxNewTokens: GENERATED_MAX_NEW_TOKENS[name],
        }),
      );
    }
  }
  return out;
}

function isLabel(value: unknown): value is InfiniteBenchLabel {
  const scalar = (x: unknown): boolean => typeof x === "string" || (typeof x === "number" && Number.isFinite(x));
  return scalar(value) || (Array.isArray(value) && value.every((x) => scalar(x) || (Array.isArray(x) && x.every((y) => typeof y === "number"))));
}

/** One row of an InfiniteBench file, or what is wrong with it (context/input strings, answer, options a string list). */
function parseRow(value: unknown): Parsed<InfiniteBenchFileRow> {
  if (!isObject(value)) return { problem: "line is not a JSON object" };
  const problem = nonStringKey(value, ["context", "input"]);
  if (problem !== null) return { problem };
  if (!isLabel(value["answer"])) return { problem: `"answer" must be a string, a number or a list of them, got ${typeName(value["answer"])}` };
  const options = value["options"] ?? [];
  if (!Array.isArray(options) || !options.every((o) => typeof o === "string")) return { problem: `"options" must be a list of strings, got ${typeName(options)}` };
  const id = value["id"];
  return { record: { context: value["context"] as string, input: value["input"] as string, answer: value["answer"], options, ...(typeof id === "number" || typeof id === "string" ? { id } : {}) } };
}

/** Prompt and references of one file row, or the reason create_prompt / get_answer would fail on it. */
function fileRowParts(name: InfiniteBenchTask | InfiniteBenchFileTask, template: InfiniteBenchModel, row: InfiniteBenchFileRow): { prompt: string; answers: string[] } | string {
  try {
    if (isGeneratedTask(name)) return { prompt: infiniteBenchPrompt(name, template, row), answers: labelStrings(row.answer) };
    return { prompt: infiniteBenchFilePrompt(name, template, row), answers: infiniteBenchFileAnswers(name, row) };
  } catch (e) {
    return (e as Error).message;
  }
}

function fileSamples(suite: Suite, task: TaskOf<"infinitebench">, name: InfiniteBenchTask | InfiniteBenchFileTask, path: string, src: SampleSources): EvalSample[] {
  const rows = readRecords<InfiniteBenchFileRow>(path, "InfiniteBench JSONL file", parseRow, { onError: task.onError, ...(src.warn ? { warn: src.warn } : {}) });
  if (rows.length === 0) fail(`${path}: no InfiniteBench rows for task "${task.name}"`, `give the task's JSONL file (OpenBMB/InfiniteBench data: ${name}.jsonl)`);
  const used = rows.slice(0, Math.min(task.count ?? rows.length, src.limit ?? rows.length));
  const parts = used.map((row, i) => {
    const built = fileRowParts(name, task.template, row);
    if (typeof built === "string") fail(`${path}: row ${i + 1} (id ${String(row.id ?? i)}): ${built}`, `fix the row or remove it; InfiniteBench's create_prompt would fail on it too`);
    return { row, ...built };
  });
  const maxNew = isGeneratedTask(name) ? GENERATED_MAX_NEW_TOKENS[name] : INFINITEBENCH_FILE_MAX_NEW_TOKENS[name];
  const out: EvalSample[] = [];
  for (const length of taskLengths(suite, task)) {
    const seen = new Set<string>();
    parts.forEach(({ row, prompt, answers }, index) => {
      const ids = truncatedPromptIds(src, prompt, length, row.input === "" ? null : row.input, null);
      out.push(
        finishSample(suite, task, src, {
          dataset: name,
          length,
          sampleId: uniqueId(seen, String(row.id ?? index), index),
          depth: null,
          prompt: ids,
          truncated: ids.fullLength > length,
          answers,
          defaultMaxNewTokens: maxNew,
        }),
      );
    });
  }
  return out;
}

export function infiniteBenchSamples(suite: Suite, task: TaskOf<"infinitebench">, src: SampleSources): EvalSample[] {
  const name = task.task ?? task.name;
  if (!isInfiniteBenchTask(name)) fail(`unknown InfiniteBench task "${name}"`, `known InfiniteBench tasks: ${INFINITEBENCH_TASK_NAMES.join(", ")}`);
  if (task.path !== undefined) return fileSamples(suite, task, name, task.path, src);
  if (!isGeneratedTask(name)) fail(`InfiniteBench task "${name}" needs "path"`, `give its JSONL file (OpenBMB/InfiniteBench data: ${name}.jsonl)`);
  return generatedSamples(suite, task, name, src);
}
