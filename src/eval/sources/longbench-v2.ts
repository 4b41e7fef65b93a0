/**
 * LongBench v2 as suite samples: the items of the user's data.json (THUDM/LongBench-v2), pred.py's prompt
 * (0shot or 0shot_no_context), truncated as query_llm does — `ids[:max_len//2] + ids[-max_len//2:]` decoded and
 * re-encoded, so an odd length keeps the larger half at the end — with the suite's length as max_len, then sent as
 * a chat message (the backbone's chat template, when it has one). Scored by extract_answer against the item's
 * answer; difficulty and length go with each sample so results.json can break accuracy down as result.py does.
 */
import { longBenchV2Prompt, type LongBenchV2Item } from "../longbench-v2.js";
import { fail } from "../../util/errors.js";
import { finishSample, truncatedPromptIds, uniqueId, type EvalSample, type SampleSources } from "../samples.js";
import { taskLengths, type Suite, type TaskOf } from "../suite.js";
import { isObject, nonStringKey, readRecords, type Parsed } from "./records.js";

/** pred.py's max_new_tokens without CoT. */
const MAX_NEW_TOKENS = 128;
const ITEM_KEYS = ["_id", "difficulty", "length", "question", "choice_A", "choice_B", "choice_C", "choice_D", "answer", "context"] as const;

function parseItem(value: unknown): Parsed<LongBenchV2Item> {
  if (!isObject(value)) return { problem: "item is not a JSON object" };
  const problem = nonStringKey(value, ITEM_KEYS);
  if (problem !== null) return { problem };
  const item = Object.fromEntries(ITEM_KEYS.map((k) => [k, value[k] as string])) as unknown as LongBenchV2Item;
  if (!["A", "B", "C", "D"].includes(item.answer)) return { problem: `"answer" must be one of A, B, C, D, got ${JSON.stringify(item.answer)}` };
  return { record: item };
}

/** The start of pred.py's question block, where the question starts in both prompts. */
const QUESTION_MARK = "What is the correct answer to this question:";

export function longBenchV2Samples(suite: Suite, task: TaskOf<"longbench-v2">, src: SampleSources): EvalSample[] {
  const items = readRecords<LongBenchV2Item>(task.path, "LongBench v2 data file", parseItem, { jsonArray: true, onError: task.onError, ...(src.warn ? { warn: src.warn } : {}) });
  if (items.length === 0) fail(`${task.path}: no LongBench v2 items for task "${task.name}"`, "give THUDM/LongBench-v2's data.json (see docs/evaluation.md)");
  const used = items.slice(0, Math.min(task.count ?? items.length, src.limit ?? items.length));
  const out: EvalSample[] = [];
  for (const length of taskLengths(suite, task)) {
    const seen = new Set<string>();
    used.forEach((item, index) => {
      const prompt = longBenchV2Prompt(task.prompt, item);
      const at = prompt.lastIndexOf(QUESTION_MARK);
      const ids = truncatedPromptIds(src, prompt, length, at < 0 ? null : prompt.slice(at), src.chatTemplate ?? null, Math.ceil(length / 2));
      out.push(
        finishSample(suite, task, src, {
          dataset: "longbench-v2",
          length,
          sampleId: uniqueId(seen, item._id, index),
          depth: null,
          prompt: ids,
          truncated: ids.fullLength > length,
          answers: [item.answer],
          groups: { difficulty: item.difficulty, length: item.length },
          defaultMaxNewTokens: MAX_NEW_TOKENS,
        }),
      );
    });
  }
  return out;
}
