import type { Rng } from "../../util/rng.js";

/**
 * One evaluation sample in LongBench's JSONL layout. The model sees `context + input` (after BOS) and should
 * continue with one of `answers`. `length` is the token count of `context + input` without BOS.
 */
export interface SyntheticRecord {
  input: string;
  context: string;
  answers: string[];
  all_classes: null;
  length: number;
  _id: string;
  dataset: string;
}

/** A string hidden in the haystack at a relative depth (0 = start of the haystack, 1 = its end). */
export interface Needle {
  text: string;
  depth: number;
}

/** What a task generator decides before the haystack is known. */
export interface TaskInstance {
  needles: Needle[];
  /** The question appended after the context (starts with "\n\n"). */
  query: string;
  /** Accepted answers (exact-match targets, e.g. the number without space or period). */
  answers: string[];
  /** The continuation the model was trained to produce after `query`, e.g. " 48213.". */
  completion: string;
}

export interface TaskParams {
  /** Inclusive range of digits for the hidden numbers. */
  digits: readonly [number, number];
  /** Needle count for multi-needle (2–4) and kv-retrieval (2–8); random in that range when absent. */
  needles?: number;
  /** Variable tracking: assignments after the first (chain length = hops + 1). */
  hops?: number;
  /** Variable tracking: independent chains (one is asked about, the others distract). */
  chains?: number;
}

/** A task generator: pure function of the seeded Rng, the depth of the asked needle and the parameters. */
export type TaskGenerator = (rng: Rng, depth: number, params: TaskParams) => TaskInstance;
