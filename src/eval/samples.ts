/**
 * The samples a suite evaluates: for each task and length, prompt token ids (BOS first) and references. Synthetic
 * and LongBench tasks are LongBench-format records (generated or read from JSONL) with the dataset's template,
 * truncated in the middle when too long; RULER, InfiniteBench and LongBench v2 tasks come from src/eval/sources/,
 * one module per source, through samplesForTask's dispatch. finishSample adds what every sample shares.
 */
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { generateTask } from "../datasets/synthetic/index.js";
import { buildPrompt, questionSuffix, readLongBenchJsonl, samsumNewlineId, truncateMiddle, truncateMiddleText, type LongBenchRecord } from "./longbench.js";
import { commonPrefixLength } from "../datasets/synthetic/compose.js";
import { applyChatTemplate, readChatTemplate, usesChatTemplate, type ChatTemplate } from "./longbench-chat.js";
import { dataset2maxlen } from "./longbench-config.js";
import { metricFor } from "./metrics/index.js";
import { fail } from "../util/errors.js";
import { newlineIds, stopIdsFor, stopsAtNewline } from "./stop-ids.js";
import { loadCorpus } from "../datasets/manifest.js";
import { taskLengths, type Suite, type TaskOf, type TaskSource, type TaskSpec } from "./suite.js";
import { infiniteBenchSamples } from "./sources/infinitebench.js";
import { longBenchV2Samples } from "./sources/longbench-v2.js";
import { rulerSamples } from "./sources/ruler.js";

/** One prompt ready to run under every method. */
export interface EvalSample {
  task: string;
  dataset: string;
  source: TaskSource;
  length: number;
  sampleId: string;
  depth: number | null;
  promptIds: number[];
  truncated: boolean;
  answers: string[];
  allClasses: string[] | null;
  maxNewTokens: number;
  stopIds: number[];
  /** New tokens generated before a stop id may end the answer: 1 for samsum (pred.py's min_length), else 0. */
  minNewTokens: number;
  /**
   * Index in promptIds of the question's first token (the record's input as the template places it, then the rest
   * of the template), or null when the prompt has none or it was lost to truncation. Methods that compress the
   * context without the question (SnapKV with observation "context") prefill up to here first.
   */
  questionStart: number | null;
  /** Labels results break scores down by (LongBench v2: difficulty, length), or null. */
  groups: Record<string, string> | null;
  /** A second prompt built from this one's output (LongBench v2's 0shot_cot); absent for every other sample. */
  followUp?: SampleFollowUp;
}

/**
 * What a two-pass sample needs to build its second prompt once the first output is known (sources/longbench-v2.ts
 * cotAnswerSample): plain data, so a sample still crosses to worker threads.
 */
export interface SampleFollowUp {
  /** pred.py's 0shot_cot_ans prompt with every placeholder filled in except $COT$. */
  template: string;
  /** The chat template the first prompt went through (null: none). */
  chatTemplate: ChatTemplate | null;
  /** New-token limit of the second pass (the task's, then the suite's, then pred.py's 128). */
  maxNewTokens: number;
}

export interface SampleSources {
  tokenizer: Tokenizer;
  /** Texts of the suite's corpus, loaded on first use (synthetic tasks only). */
  corpus: () => readonly string[];
  /** Ids containing a newline (see stop-ids.ts). */
  newlineIds: readonly number[];
  /** Records per task and length beyond which samples are dropped. */
  limit?: number;
  warn?: (message: string) => void;
  /** The model's chat template (tokenizer_config.json), applied to LongBench prompts as pred.py does; none: raw prompts. */
  chatTemplate?: ChatTemplate | null;
}

/**
 * The sources a suite's samples are built from, as every run reads them: the backbone's tokenizer, its newline ids
 * and chat template (read from the suite's backbone folder), and the suite's corpus, loaded on first use.
 */
export function suiteSampleSources(
  suite: Suite,
  tokenizer: Tokenizer,
  opts: { limit?: number; warn?: (message: string) => void } = {},
): SampleSources & { chatTemplate: ChatTemplate | null } {
  let corpus: readonly string[] | null = null;
  return {
    tokenizer,
    newlineIds: newlineIds(tokenizer),
    chatTemplate: readChatTemplate(suite.backbone),
    corpus: () => (corpus ??= loadCorpus(suite.corpus!).texts),
    ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
    ...(opts.warn !== undefined ? { warn: opts.warn } : {}),
  };
}

/** Prompt ids and where the question starts in them (see EvalSample.questionStart). */
export interface PromptIds {
  ids: number[];
  questionStart: number | null;
}

/**
 * The first token of `ids` (the encoding of `text`, BOS as `bos`) that belongs to the last occurrence of `question`
 * in `text`: the tokens that encoding text's part before it yields and `ids` shares. Null when the question is
 * unknown, not in the text (lost to truncation) or empty.
 */
export function questionStartIn(src: SampleSources, text: string, question: string | null, ids: readonly number[], bos: boolean): number | null {
  const at = question === null || question === "" ? -1 : text.lastIndexOf(question);
  if (at < 0) return null;
  const start = commonPrefixLength(src.tokenizer.encode(text.slice(0, at), { bos }), ids);
  return start > 0 && start < ids.length ? start : null;
}

/** `prompt` encoded with BOS, untruncated, and where `question` starts in it. */
export function plainPromptIds(src: SampleSources, prompt: string, question: string | null): PromptIds {
  const ids = src.tokenizer.encode(prompt, { bos: true });
  return { ids, questionStart: questionStartIn(src, prompt, question, ids, true) };
}

/**
 * A prompt as LongBench's pred.py (and InfiniteBench's and LongBench v2's) feed it: encoded with BOS, and when longer
 * than `length` middle-truncated by decoding both halves and re-tokenising; wrapped in `template` when one is given.
 * `tail` is how many ids the second half keeps (default half of length; LongBench v2's `ids[-max_len//2:]` keeps the
 * larger half of an odd length).
 */
export function truncatedPromptIds(src: SampleSources, prompt: string, length: number, question: string | null, template: ChatTemplate | null, tail?: number): PromptIds & { fullLength: number } {
  const full = src.tokenizer.encode(prompt, { bos: true });
  const cut = truncateMiddleText(src.tokenizer, full, length, tail);
  if (cut === null && template === null) return { ids: full, questionStart: questionStartIn(src, prompt, question, full, true), fullLength: full.length };
  const text = template ? applyChatTemplate(template, cut ?? prompt) : (cut as string);
  // A template that writes the BOS token itself gets no second one (transformers encodes it without special tokens).
  const bos = !(template && template.bosToken !== "" && text.startsWith(template.bosToken));
  const ids = src.tokenizer.encode(text, { bos });
  return { ids, questionStart: questionStartIn(src, text, question, ids, bos), fullLength: full.length };
}

/** Where index i of `length` ids lands after truncateMiddle(ids, maxLength); a dropped one, where the kept tail starts. */
function indexAfterTruncation(i: number, length: number, maxLength: number): number {
  if (length <= maxLength) return i;
  const half = Math.trunc(maxLength / 2);
  return i < half ? i : Math.max(half, i - (length - 2 * half));
}

/** Records generated per task and length when the task does not say `count`. */
export const DEFAULT_COUNT = 10;
const DEFAULT_MAX_NEW_TOKENS = 32;

/** Depth encoded in a synthetic id (`passkey_2048_42_7_d0.35` → 0.35). */
export function depthFromId(id: string): number | null {
  const m = /_d([0-9.]+)$/.exec(id);
  return m ? Number(m[1]) : null;
}

/** Dataset key of a task's prompt template and metric (synthetic tasks: the generator's canonical name). */
function datasetOf(task: TaskOf<"synthetic" | "longbench">, record: LongBenchRecord): string {
  if (task.source === "synthetic") return record.dataset ?? task.name;
  return task.dataset ?? task.name;
}

function recordsFor(suite: Suite, task: TaskOf<"synthetic" | "longbench">, length: number, src: SampleSources): LongBenchRecord[] {
  if (task.source === "synthetic") {
    return generateTask(task.name, {
      tokenizer: src.tokenizer,
      corpus: src.corpus(),
      targetTokens: length,
      count: task.count ?? DEFAULT_COUNT,
      seed: suite.seed,
      ...(task.depths !== undefined ? { depths: task.depths } : {}),
      ...(task.digits !== undefined ? { digits: task.digits } : {}),
      ...(task.needles !== undefined ? { needles: task.needles } : {}),
      ...(task.hops !== undefined ? { hops: task.hops } : {}),
      ...(task.chains !== undefined ? { chains: task.chains } : {}),
      ...(task.intro !== undefined ? { intro: task.intro } : {}),
    });
  }
  const records = readLongBenchJsonl(task.path, { onError: task.onError, ...(src.warn ? { warn: src.warn } : {}) });
  if (records.length === 0) fail(`${task.path}: no LongBench rows for task "${task.name}"`, "give the task's JSONL file (THUDM/LongBench data/<task>.jsonl), one record per line");
  // Classification tasks score against all_classes: a row without it would fail only once generated, without FILE:LINE.
  const unclassed = records.findIndex((r) => r.all_classes === null && metricFor(datasetOf(task, r)) === "classification");
  if (unclassed >= 0) {
    const r = records[unclassed]!;
    fail(`${task.path}: row ${unclassed + 1} (_id ${r._id}) has no "all_classes", which ${datasetOf(task, r)}'s classification metric needs`, "add the task's label list as all_classes to every row");
  }
  return task.count !== undefined ? records.slice(0, task.count) : records;
}

/** What a source module hands finishSample for one prompt. */
export interface SampleParts {
  dataset: string;
  length: number;
  sampleId: string;
  depth: number | null;
  prompt: PromptIds;
  /** Whether the source cut the prompt to its length (the suite's maxLength may cut it too). */
  truncated: boolean;
  answers: string[];
  allClasses?: string[] | null;
  groups?: Record<string, string> | null;
  /** The benchmark's own new-token limit, used when neither the task nor the suite sets one. */
  defaultMaxNewTokens: number;
}

/**
 * One sample from a source's parts: the suite's maxLength cap, the new-token limit (task, then suite, then the
 * benchmark's), the stop ids (EOS, plus newlines where the answer is one line) and samsum's min_length.
 */
export function finishSample(suite: Suite, task: TaskSpec, src: SampleSources, parts: SampleParts): EvalSample {
  let { ids, questionStart } = parts.prompt;
  const uncapped = ids.length;
  if (suite.maxLength !== undefined) {
    if (questionStart !== null) questionStart = indexAfterTruncation(questionStart, ids.length, suite.maxLength);
    ids = truncateMiddle(ids, suite.maxLength);
  }
  // pred.py: samsum stops on EOS or the single "\n" token, and generates with min_length = context_length + 1.
  const samsum = task.source === "longbench" && parts.dataset === "samsum" && task.stopAtNewline === undefined;
  const eos = src.tokenizer.eosIds ?? src.tokenizer.eosId;
  return {
    task: task.name,
    dataset: parts.dataset,
    source: task.source,
    length: parts.length,
    sampleId: parts.sampleId,
    depth: parts.depth,
    promptIds: ids,
    truncated: parts.truncated || ids.length < uncapped,
    answers: parts.answers,
    allClasses: parts.allClasses ?? null,
    maxNewTokens: task.maxNewTokens ?? suite.generation.maxNewTokens ?? parts.defaultMaxNewTokens,
    stopIds: samsum ? [...(typeof eos === "number" ? [eos] : eos), samsumNewlineId(src.tokenizer)] : stopIdsFor(eos, src.newlineIds, task.stopAtNewline ?? stopsAtNewline(task.source, parts.dataset)),
    minNewTokens: samsum ? 1 : 0,
    questionStart,
    groups: parts.groups ?? null,
  };
}

/** `id`, or `id#index` when an earlier record of the task had the same id (sample ids key resumed rows). */
export function uniqueId(seen: Set<string>, id: string, index: number): string {
  const unique = seen.has(id) ? `${id}#${index}` : id;
  seen.add(unique);
  return unique;
}

/** Every sample of one task, length by length, in file/generation order: the source's module builds them. */
export function samplesForTask(suite: Suite, task: TaskSpec, src: SampleSources): EvalSample[] {
  switch (task.source) {
    case "synthetic":
    case "longbench":
      return longBenchStyleSamples(suite, task, src);
    case "ruler":
      return rulerSamples(suite, task, src);
    case "infinitebench":
      return infiniteBenchSamples(suite, task, src);
    case "longbench-v2":
      return longBenchV2Samples(suite, task, src);
  }
}

/** Synthetic and LongBench tasks: LongBench-format records with the dataset's template. */
function longBenchStyleSamples(suite: Suite, task: TaskOf<"synthetic" | "longbench">, src: SampleSources): EvalSample[] {
  const out: EvalSample[] = [];
  // LongBench records do not depend on the length: read the file once.
  let longbench: LongBenchRecord[] | null = null;
  for (const length of taskLengths(suite, task)) {
    const records =
      task.source === "longbench" ? (longbench ??= recordsFor(suite, task, length, src)) : recordsFor(suite, task, length, src);
    const seen = new Set<string>();
    records.slice(0, src.limit ?? records.length).forEach((record, index) => {
      const dataset = datasetOf(task, record);
      const prompt = buildPrompt(dataset, record);
      const question = questionSuffix(dataset, record);
      // LongBench tasks: `length` caps the prompt (pred.py's truncation, chat template); synthetic ones fit it already.
      const ids =
        task.source === "longbench"
          ? truncatedPromptIds(src, prompt, length, question, src.chatTemplate && usesChatTemplate(dataset) ? src.chatTemplate : null)
          : { ...plainPromptIds(src, prompt, question), fullLength: 0 };
      const fitted = task.source === "longbench" ? ids.fullLength > length : false;
      out.push(
        finishSample(suite, task, src, {
          dataset,
          length,
          sampleId: uniqueId(seen, record._id, index),
          depth: task.source === "synthetic" ? depthFromId(record._id) : null,
          prompt: ids,
          truncated: fitted,
          answers: record.answers,
          allClasses: record.all_classes,
          defaultMaxNewTokens: dataset2maxlen[dataset] ?? DEFAULT_MAX_NEW_TOKENS,
        }),
      );
    });
  }
  return out;
}
