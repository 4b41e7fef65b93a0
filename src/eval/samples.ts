/**
 * The samples a suite evaluates: for each task and length, LongBench-format records (generated or read from JSONL),
 * turned into prompt token ids with the dataset's template, BOS first, truncated in the middle when too long.
 */
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { generateTask } from "../datasets/synthetic/index.js";
import { buildPrompt, readLongBenchJsonl, truncateMiddle, type LongBenchRecord } from "./longbench.js";
import { dataset2maxlen } from "./longbench-config.js";
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
      const full = src.tokenizer.encode(buildPrompt(dataset, record), { bos: true });
      // LongBench tasks: `length` caps the prompt; maxLength caps every prompt.
      let ids = task.source === "longbench" ? truncateMiddle(full, length) : full;
      if (suite.maxLength !== undefined) ids = truncateMiddle(ids, suite.maxLength);
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
        truncated: ids.length < full.length,
        answers: record.answers,
        allClasses: record.all_classes,
        maxNewTokens: task.maxNewTokens ?? suite.generation.maxNewTokens ?? dataset2maxlen[dataset] ?? DEFAULT_MAX_NEW_TOKENS,
        stopIds: stopIdsFor(src.tokenizer.eosIds ?? src.tokenizer.eosId, src.newlineIds, task.stopAtNewline ?? stopsAtNewline(task.source, dataset)),
      });
    });
  }
  return out;
}
