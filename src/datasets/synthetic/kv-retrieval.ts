import type { Rng } from "../../util/rng.js";
import { fail } from "../../util/errors.js";
import { answerCompletion, kvNeedle, kvQuery } from "./formats.js";
import { spreadDepths } from "./placement.js";
import type { TaskInstance, TaskParams } from "./types.js";
import { distinct, randomKey, randomNumber } from "./vocabulary.js";

/** edge-lm saw 2–8 key-value needles per sequence. */
export const KV_NEEDLE_RANGE = [2, 8] as const;

/**
 * Key-value retrieval: several "value of key 'adjective-animal'" needles spread evenly over the haystack;
 * the question asks for the first key, whose needle sits at `depth`.
 */
export function kvRetrievalTask(rng: Rng, depth: number, params: TaskParams): TaskInstance {
  const count = params.needles ?? rng.range(KV_NEEDLE_RANGE[0], KV_NEEDLE_RANGE[1]);
  if (!Number.isInteger(count) || count < 1 || count > 64) {
    fail(`kv-retrieval needs 1–64 needles, got ${count}`, "set needles to 2–8 (the trained range)");
  }
  const keys = distinct(count, () => randomKey(rng), "keys");
  const values = distinct(count, () => randomNumber(rng, params.digits), "numbers");
  const depths = spreadDepths(depth, count, "circular");
  return {
    needles: keys.map((key, j) => ({ text: kvNeedle(key, values[j]!), depth: depths[j]! })),
    query: kvQuery(keys[0]!),
    answers: [values[0]!],
    completion: answerCompletion(values[0]!),
  };
}
