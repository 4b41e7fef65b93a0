import type { Rng } from "../../util/rng.js";
import { fail } from "../../util/errors.js";
import { answerCompletion, magicNeedle, magicQuery } from "./formats.js";
import { spreadDepths } from "./placement.js";
import type { TaskInstance, TaskParams } from "./types.js";
import { NAMES, distinct, randomName, randomNumber } from "./vocabulary.js";

/** edge-lm saw 1–4 magic-number needles per sequence; "multi" means at least two. */
export const MULTI_NEEDLE_RANGE = [2, 4] as const;

/**
 * Several magic numbers for different names, spread evenly over the haystack; the question asks for
 * the first one, which sits at `depth`.
 */
export function multiNeedleTask(rng: Rng, depth: number, params: TaskParams): TaskInstance {
  const count = params.needles ?? rng.range(MULTI_NEEDLE_RANGE[0], MULTI_NEEDLE_RANGE[1]);
  if (!Number.isInteger(count) || count < 2 || count > NAMES.length) {
    fail(`multi-needle needs 2–${NAMES.length} needles, got ${count}`, "set needles to 2–4 (the trained range)");
  }
  const names = distinct(count, () => randomName(rng), "names");
  const values = distinct(count, () => randomNumber(rng, params.digits), "numbers");
  const depths = spreadDepths(depth, count, "circular");
  return {
    needles: names.map((name, j) => ({ text: magicNeedle(name, values[j]!), depth: depths[j]! })),
    query: magicQuery(names[0]!),
    answers: [values[0]!],
    completion: answerCompletion(values[0]!),
  };
}
