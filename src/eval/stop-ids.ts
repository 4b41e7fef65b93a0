/**
 * Token ids that end an answer. Every task stops at EOS; our synthetic retrieval tasks also stop at a newline,
 * since their answer is one line. RULER, InfiniteBench and LongBench v2 stop at EOS only by default, as their own
 * pipelines do (a suite may set stopAtNewline: true to save decode time).
 */
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import type { TaskSource } from "./suite.js";

/** Every vocabulary id whose text contains a newline (byte token, "\n", "\n\n", ...). */
export function newlineIds(tokenizer: Tokenizer): number[] {
  const ids: number[] = [];
  for (let id = 0; id < tokenizer.vocabSize; id++) if (tokenizer.decode([id]).includes("\n")) ids.push(id);
  return ids;
}

/** Datasets whose answer is one line: synthetic retrieval (all of them) and LongBench's samsum. */
export function stopsAtNewline(source: TaskSource, dataset: string): boolean {
  return source === "synthetic" || (source === "longbench" && dataset === "samsum");
}

/** EOS (every EOS id of models that have several), plus the newline ids when the answer is one line. */
export function stopIdsFor(eos: number | readonly number[], newline: readonly number[], atNewline: boolean): number[] {
  const ends = typeof eos === "number" ? [eos] : [...eos];
  return atNewline ? [...ends, ...newline] : ends;
}
