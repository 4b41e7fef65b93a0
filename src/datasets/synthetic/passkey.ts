import type { Rng } from "../../util/rng.js";
import { PASSKEY_QUERY, answerCompletion, passkeyNeedle } from "./formats.js";
import type { TaskInstance, TaskParams } from "./types.js";
import { randomNumber } from "./vocabulary.js";

/** Passkey retrieval: one pass key needle at `depth`; the answer is the key. */
export function passkeyTask(rng: Rng, depth: number, params: TaskParams): TaskInstance {
  const key = randomNumber(rng, params.digits);
  return {
    needles: [{ text: passkeyNeedle(key), depth }],
    query: PASSKEY_QUERY,
    answers: [key],
    completion: answerCompletion(key),
  };
}
