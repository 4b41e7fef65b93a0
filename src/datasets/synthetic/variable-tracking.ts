import type { Rng } from "../../util/rng.js";
import { fail } from "../../util/errors.js";
import { variableCompletion, variableCopyNeedle, variableQuery, variableValueNeedle } from "./formats.js";
import { spreadDepths } from "./placement.js";
import type { Needle, TaskInstance, TaskParams } from "./types.js";
import { distinct, randomNumber, randomVariable } from "./vocabulary.js";

/** RULER's defaults: one chain of four hops (five variables). */
export const DEFAULT_HOPS = 4;
export const DEFAULT_CHAINS = 1;

/**
 * Variable tracking (RULER): ` VAR A = 12345.` then ` VAR B = VAR A.`, ` VAR C = VAR B.`, … hidden in order
 * from `depth` to the end of the haystack. Extra chains with other values are distractors at random depths.
 * The question asks which variables hold the first chain's value; `answers` lists every name of that chain
 * (scored as "all present"), and the completion names them in chain order.
 */
export function variableTrackingTask(rng: Rng, depth: number, params: TaskParams): TaskInstance {
  const hops = params.hops ?? DEFAULT_HOPS;
  const chains = params.chains ?? DEFAULT_CHAINS;
  if (!Number.isInteger(hops) || hops < 1 || hops > 32) fail(`variable-tracking hops ${hops} must be 1–32`, "RULER uses 4");
  if (!Number.isInteger(chains) || chains < 1 || chains > 16) fail(`variable-tracking chains ${chains} must be 1–16`, "RULER uses 1");
  const names = distinct(chains * (hops + 1), () => randomVariable(rng), "variable names");
  const values = distinct(chains, () => randomNumber(rng, params.digits), "numbers");
  const needles: Needle[] = [];
  for (let c = 0; c < chains; c++) {
    const chain = names.slice(c * (hops + 1), (c + 1) * (hops + 1));
    const depths = spreadDepths(c === 0 ? depth : rng.next(), chain.length, "forward");
    chain.forEach((name, j) => {
      const text = j === 0 ? variableValueNeedle(name, values[c]!) : variableCopyNeedle(name, chain[j - 1]!);
      needles.push({ text, depth: depths[j]! });
    });
  }
  const asked = names.slice(0, hops + 1);
  return { needles, query: variableQuery(values[0]!), answers: asked, completion: variableCompletion(asked) };
}
