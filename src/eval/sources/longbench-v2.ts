/**
 * LongBench v2 as suite samples: the items of the user's data.json (THUDM/LongBench-v2), pred.py's prompt
 * (0shot, 0shot_cot or 0shot_no_context), truncated as query_llm does — `ids[:max_len//2] + ids[-max_len//2:]` decoded
 * and re-encoded, so an odd length keeps the larger half at the end — with the suite's length as max_len, then sent as
 * a chat message (the backbone's chat template, when it has one). Scored by extract_answer against the item's
 * answer; difficulty and length go with each sample so results.json can break accuracy down as result.py does.
 *
 * 0shot_cot is pred.py's `--cot`: the 0shot_cot prompt generates up to 1024 tokens; that output, Python-stripped,
 * is pred.py's `response` and replaces $COT$ in 0shot_cot_ans (the chain's last replace, so every $COT$ the question
 * or choices brought in is replaced too), which goes through the same truncation and chat template and generates up to
 * 128 tokens; extract_answer reads the second output. The sample carries that second prompt as a SampleFollowUp (plain
 * data, so it crosses to worker threads) and the harness runs it (src/eval/harness.ts runSample).
 */
import { longBenchV2Prompt, type LongBenchV2Item } from "../longbench-v2.js";
import { pyStrip } from "../metrics/python-str.js";
import type { Tokenizer } from "../../tokenizers/tokenizer.js";
import { fail } from "../../util/errors.js";
import { finishSample, truncatedPromptIds, uniqueId, type EvalSample, type SampleFollowUp, type SampleSources } from "../samples.js";
import { taskLengths, taskOfSample, type Suite, type TaskOf } from "../suite.js";
import { isObject, nonStringKey, readRecords, type Parsed } from "./records.js";

/** pred.py's max_new_tokens: the answer (0shot, 0shot_no_context, and the second CoT pass). */
const MAX_NEW_TOKENS = 128;
/** pred.py's max_new_tokens of the first CoT pass. */
export const COT_MAX_NEW_TOKENS = 1024;
/** pred.py's `.replace('$COT$', response)`, the last of the 0shot_cot_ans chain. */
const COT = "$COT$";
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
      const sample = finishSample(suite, task, src, {
        dataset: "longbench-v2",
        length,
        sampleId: uniqueId(seen, item._id, index),
        depth: null,
        prompt: ids,
        truncated: ids.fullLength > length,
        answers: [item.answer],
        groups: { difficulty: item.difficulty, length: item.length },
        defaultMaxNewTokens: task.prompt === "0shot_cot" ? COT_MAX_NEW_TOKENS : MAX_NEW_TOKENS,
      });
      if (task.prompt === "0shot_cot") {
        // 0shot_cot_ans with every placeholder but $COT$ filled in: exactly pred.py's chain before its last replace.
        sample.followUp = {
          template: longBenchV2Prompt("0shot_cot_ans", item, COT),
          chatTemplate: src.chatTemplate ?? null,
          maxNewTokens: task.maxNewTokens ?? suite.generation.maxNewTokens ?? MAX_NEW_TOKENS,
        };
      }
      out.push(sample);
    });
  }
  return out;
}

/** pred.py's second CoT prompt: 0shot_cot_ans with $COT$ = the first pass's output, stripped (`response = output.strip()`). */
export function cotAnswerPrompt(followUp: Pick<SampleFollowUp, "template">, firstOutput: string): string {
  return followUp.template.split(COT).join(pyStrip(firstOutput));
}

/**
 * The second CoT pass of `sample` as a sample of its own: pred.py's 0shot_cot_ans prompt for `firstOutput`, through
 * query_llm's truncation and the chat template as the first pass, then the suite's maxLength cap; the first pass's
 * stop ids and the answer's token limit. The question starts at the template's own question block (the first
 * "What is the correct answer", before anything substituted).
 */
export function cotAnswerSample(suite: Suite, sample: EvalSample, firstOutput: string, tokenizer: Tokenizer): EvalSample {
  const followUp = sample.followUp;
  if (followUp === undefined) throw new Error(`sample ${sample.sampleId} of task "${sample.task}" has no second pass`);
  const task = taskOfSample(suite, sample);
  const prompt = cotAnswerPrompt(followUp, firstOutput);
  const at = prompt.indexOf(QUESTION_MARK);
  const src: SampleSources = { tokenizer, corpus: () => [], newlineIds: [], chatTemplate: followUp.chatTemplate };
  const ids = truncatedPromptIds(src, prompt, sample.length, at < 0 ? null : prompt.slice(at), followUp.chatTemplate, Math.ceil(sample.length / 2));
  const answer = finishSample(suite, task, src, {
    dataset: sample.dataset,
    length: sample.length,
    sampleId: sample.sampleId,
    depth: sample.depth,
    prompt: ids,
    truncated: ids.fullLength > sample.length,
    answers: sample.answers,
    groups: sample.groups,
    defaultMaxNewTokens: MAX_NEW_TOKENS,
  });
  return { ...answer, maxNewTokens: followUp.maxNewTokens, stopIds: sample.stopIds };
}
