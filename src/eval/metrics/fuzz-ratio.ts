import { difflibRatio } from "./difflib-ratio.js";
import { pythonRound } from "./python-round.js";

/**
 * fuzzywuzzy 0.18 `fuzz.ratio(s1, s2)` as LongBench runs it (no python-Levenshtein, so difflib):
 * decorators first — equal strings → 100 (even two empty strings), an empty string → 0 — then
 * `int(round(100 * SequenceMatcher(None, s1, s2).ratio()))` with Python's ties-to-even round.
 *
 * Not fuzzball's `ratio`: its default is the python-Levenshtein formula, its difflib mode rounds
 * with Math.round (12.5 → 13 where Python gives 12) and returns 0 for two empty strings.
 */
export function fuzzRatio(s1: string, s2: string): number {
  if (s1 === s2) return 100;
  if (s1.length === 0 || s2.length === 0) return 0;
  return pythonRound(100 * difflibRatio(s1, s2));
}
