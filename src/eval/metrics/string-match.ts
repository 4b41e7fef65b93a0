import { fail } from "../../util/errors.js";

/**
 * RULER's substring metrics (NVIDIA/RULER scripts/eval/synthetic/constants.py, Apache-2.0), per
 * sample: an answer counts when `answer.lower() in prediction.lower()`. RULER multiplies by 100
 * and averages over samples; here that is done by the dataset scorer.
 */
function containedFlags(prediction: string, answers: readonly string[], metric: string): boolean[] {
  if (answers.length === 0) fail(`${metric}: the answers list is empty`, "every record needs at least one answer");
  const haystack = prediction.toLowerCase();
  return answers.map((answer) => haystack.includes(answer.toLowerCase()));
}

/** string_match_all: fraction of the answers contained in the prediction (case-insensitive). */
export function stringMatchAll(prediction: string, answers: readonly string[]): number {
  const flags = containedFlags(prediction, answers, "string_match_all");
  return flags.reduce((sum, hit) => sum + (hit ? 1.0 : 0.0), 0) / flags.length;
}

/** string_match_part: 1 if any answer is contained in the prediction (case-insensitive), else 0. */
export function stringMatchPart(prediction: string, answers: readonly string[]): number {
  return containedFlags(prediction, answers, "string_match_part").some((hit) => hit) ? 1.0 : 0.0;
}
