/**
 * The samples a suite evaluates: for each task and length, LongBench-format records (generated or read from JSONL),
 * turned into prompt token ids with the dataset's template, BOS first, truncated in the middle when too long.
 */
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { generateTask } from "../datasets/synthetic/index.js";
import { buildPrompt, questionSuffix, readLongBenchJsonl, samsumNewlineId, truncateMiddle, truncateMiddleText, type LongBenchRecord } from "./longbench.js";
import { commonPrefixLength } from "../datasets/synthetic/compose.js";
import { applyChatTemplate, usesChatTemplate, type ChatTemplate } from "./longbench-chat.js";
import { dataset2maxlen } from "./longbench-config.js";
import { metricFor } from "./metrics/index.js";
import { fail } from "../util/errors.js";
import { stopIdsFor, stopsAtNewline } from "./stop-ids.js";
import { taskLengths, type Suite, type TaskSpec } from "./suite.js";

/** One prompt ready to run under every method. */
export interface EvalSample {
  task: string;
  dataset: string;
  source: "synthetic" | "longbench";
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

/** Prompt ids and where the question starts in them (see EvalSample.questionStart). */
interface PromptIds {
  ids: number[];
  questionStart: number | null;
}

/**
 * The first token of `ids` (the encoding of `text`, BOS as `bos`) that belongs to the last occurrence of `question`
 * in `text`: the tokens that encoding text's part before it yields and `ids` shares. Null when the question is
 * unknown, not in the text (lost to truncation) or empty.
 */
function questionStartIn(src: SampleSources, text: string, question: string | null, ids: readonly number[], bos: boolean): number | null {
  const at = question === null || question === "" ? -1 : text.lastIndexOf(question);
  if (at < 0) return null;
  const start = commonPrefixLength(src.tokenizer.encode(text.slice(0, at), { bos }), ids);
  return start > 0 && start < ids.length ? start : null;
}

/**
 * A LongBench prompt as pred.py feeds it: middle-truncated by decoding both halves and
 * re-tokenising, wrapped in the chat template except on noChatTemplateDatasets.
 */
function longBenchPromptIds(src: SampleSources, dataset: string, prompt: string, full: number[], length: number, question: string | null): PromptIds {
  const cut = truncateMiddleText(src.tokenizer, full, length);
  const template = src.chatTemplate && usesChatTemplate(dataset) ? src.chatTemplate : null;
  if (cut === null && template === null) return { ids: full, questionStart: questionStartIn(src, prompt, question, full, true) };
  const text = template ? applyChatTemplate(template, cut ?? prompt) : (cut as string);
  // A template that writes the BOS token itself gets no second one (transformers encodes it without special tokens).
  const bos = !(template && template.bosToken !== "" && text.startsWith(template.bosToken));
  const ids = src.tokenizer.encode(text, { bos });
  return { ids, questionStart: questionStartIn(src, text, question, ids, bos) };
}

/** Where index i of `length` ids lands after truncateMiddle(ids, maxLength); a dropped one, where the kept tail starts. */
function indexAfterTruncation(i: number, length: number, maxLength: number): number {
  if (length <= maxLength) return i;
  const half = Math.trunc(maxLength / 2);
  return i < half ? i : Math.max(half, i - (length - 2 * half));
}

const DEFAULT_COUNT = 10;
const DEFAULT_MAX_NEW_TOKENS = 32;

/** Depth encoded in a synthetic id (`passkey_2048_42_7_d0.35` → 0.35). */
export function depthFromId(id: string): number | null {
  const m = /_d([0-9.]+)$/.exec(id);
  return m ? Number(m[1]) : null;
}

/** Dataset key of a task's prompt template and metric (synthetic tasks: the generator's canonical name). */
function datasetOf(task: TaskSpec, record: LongBenchRecord): string {
  if (task.source === "synthetic") return record.dataset ?? task.name;
  return task.dataset ?? task.name;
}

function recordsFor(suite: Suite, task: TaskSpec, length: number, src: SampleSources): LongBenchRecord[] {
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
  const records = readLongBenchJsonl(task.path!, { onError: task.onError, ...(src.warn ? { warn: src.warn } : {}) });
  if (records.length === 0) fail(`${task.path}: no LongBench rows for task "${task.name}"`, "give the task's JSONL file (THUDM/LongBench data/<task>.jsonl), one record per line");
  // Classification tasks score against all_classes: a row without it would fail only once generated, without FILE:LINE.
  const unclassed = records.findIndex((r) => r.all_classes === null && metricFor(datasetOf(task, r)) === "classification");
  if (unclassed >= 0) {
    const r = records[unclassed]!;
    fail(`${task.path}: row ${unclassed + 1} (_id ${r._id}) has no "all_classes", which ${datasetOf(task, r)}'s classification metric needs`, "add the task's label list as all_classes to every row");
  }
  return task.count !== undefined ? records.slice(0, task.count) : records;
}

/** Every sample of one task, length by length, in file/generation order. */
export function samplesForTask(suite: Suite, task: TaskSpec, src: SampleSources): EvalSample[] {
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
      const full = src.tokenizer.encode(prompt, { bos: true });
      const question = questionSuffix(dataset, record);
      // LongBench tasks: `length` caps the prompt; maxLength caps every prompt.
      let { ids, questionStart } =
        task.source === "longbench" ? longBenchPromptIds(src, dataset, prompt, full, length, question) : { ids: full, questionStart: questionStartIn(src, prompt, question, full, true) };
      if (suite.maxLength !== undefined) {
        if (questionStart !== null) questionStart = indexAfterTruncation(questionStart, ids.length, suite.maxLength);
        ids = truncateMiddle(ids, suite.maxLength);
      }
      const sampleId = seen.has(record._id) ? `${record._id}#${index}` : record._id;
      seen.add(sampleId);
      out.push({
        task: task.name,
        dataset,
        source: task.source,
        length,
        sampleId,
        depth: task.source === "synthetic" ? depthFromId(record._id) : null,
        promptIds: ids,
        truncated: ids.length < full.length || (task.source === "longbench" && full.length > length),
        answers: record.answers,
        allClasses: record.all_classes,
        maxNewTokens: task.maxNewTokens ?? suite.generation.maxNewTokens ?? dataset2maxlen[dataset] ?? DEFAULT_MAX_NEW_TOKENS,
        stopIds:
          task.source === "longbench" && dataset === "samsum" && task.stopAtNewline === undefined
            ? [...(src.tokenizer.eosIds ?? [src.tokenizer.eosId]), samsumNewlineId(src.tokenizer)] // pred.py: EOS or the single "\n" token
            : stopIdsFor(src.tokenizer.eosIds ?? src.tokenizer.eosId, src.newlineIds, task.stopAtNewline ?? stopsAtNewline(task.source, dataset)),
        // pred.py: samsum generates with min_length = context_length + 1, so its first new token is never a stop id.
        minNewTokens: task.source === "longbench" && dataset === "samsum" ? 1 : 0,
        questionStart,
      });
    });
  }
  return out;
}
