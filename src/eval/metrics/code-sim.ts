import { fuzzRatio } from "./fuzz-ratio.js";
import { pyLstripChars } from "./python-str.js";

// LongBench metrics.py `code_sim_score`, ported from THUDM/LongBench (MIT).

/** The first line (after leading newlines) containing none of '`', '#', '//'; "" when none. */
export function firstCodeLine(prediction: string): string {
  const allLines = pyLstripChars(prediction, "\n").split("\n");
  return allLines.find((line) => !line.includes("`") && !line.includes("#") && !line.includes("//")) ?? "";
}

/** fuzz.ratio(first code line of the prediction, ground truth) / 100. */
export function codeSimScore(prediction: string, groundTruth: string): number {
  return fuzzRatio(firstCodeLine(prediction), groundTruth) / 100;
}
