import { pyFindDigitRuns } from "./python-str.js";

// LongBench metrics.py `count_score`, ported from THUDM/LongBench (MIT).

/** Fraction of the prediction's digit runs that equal the ground-truth count string. */
export function countScore(prediction: string, groundTruth: string): number {
  const numbers = pyFindDigitRuns(prediction);
  const rightNum = numbers.filter((number) => number === groundTruth).length;
  return numbers.length === 0 ? 0.0 : rightNum / numbers.length;
}
