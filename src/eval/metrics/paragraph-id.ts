import { fail } from "../../util/errors.js";
import { pyFindDigitRuns } from "./python-str.js";

/**
 * Shared body of LongBench's `retrieval_score` / `retrieval_zh_score` (THUDM/LongBench, MIT):
 * the ground-truth paragraph id is the first match of `pattern`; the score is the fraction of
 * digit runs in the prediction that equal it (0 when the prediction has no digits).
 */
export function paragraphIdScore(prediction: string, groundTruth: string, pattern: RegExp, metric: string): number {
  const match = pattern.exec(groundTruth);
  if (match === null) {
    // Python raises IndexError on `matches[0]` here.
    fail(
      `${metric} metric: ground truth ${JSON.stringify(groundTruth.slice(0, 40))} has no paragraph id`,
      `answers must look like ${pattern.source.replace("(\\p{Nd}+)", "N")}`,
    );
  }
  const groundTruthId = match[1]!;
  const numbers = pyFindDigitRuns(prediction);
  const rightNum = numbers.filter((number) => number === groundTruthId).length;
  return numbers.length === 0 ? 0.0 : rightNum / numbers.length;
}
