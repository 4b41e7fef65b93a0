import type { Rng } from "../../util/rng.js";
import { answerCompletion, magicNeedle, magicQuery } from "./formats.js";
import type { TaskInstance, TaskParams } from "./types.js";
import { randomName, randomNumber } from "./vocabulary.js";

/** Single needle: one "special magic number for {Name}" at `depth`; the answer is the number. */
export function needleTask(rng: Rng, depth: number, params: TaskParams): TaskInstance {
  const name = randomName(rng);
  const value = randomNumber(rng, params.digits);
  return {
    needles: [{ text: magicNeedle(name, value), depth }],
    query: magicQuery(name),
    answers: [value],
    completion: answerCompletion(value),
  };
}
