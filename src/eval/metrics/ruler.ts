import { fail } from "../../util/errors.js";
import { pythonRound } from "./python-round.js";
import { pyStrip } from "./python-str.js";
import { stringMatchAll, stringMatchPart } from "./string-match.js";

// RULER's task score (NVIDIA/RULER scripts/eval/evaluate.py + scripts/eval/synthetic/constants.py, Apache-2.0).

/** RULER task → metric: niah_*, vt, cwe, fwe use string_match_all; qa_1/qa_2 string_match_part. */
export type RulerMetric = "string_match_all" | "string_match_part";

/** evaluate.py `postprocess_pred`: strip, control characters U+0000..U+001F → "\n", strip again. */
export function rulerPostprocess(prediction: string): string {
  return pyStrip(pyStrip(prediction).replace(/[\u0000-\u001f]/g, "\n"));
}

/**
 * RULER's task score over a prediction file: each prediction post-processed, the per-sample
 * metric summed, `/ len(preds) * 100`, Python-rounded to 2 decimals (in that float order).
 */
export function rulerTaskScore(metric: RulerMetric, predictions: readonly string[], references: readonly (readonly string[])[]): number {
  if (predictions.length === 0 || predictions.length !== references.length) {
    fail(`RULER ${metric}: ${predictions.length} predictions for ${references.length} references`, "pass one reference list per prediction");
  }
  const perSample = metric === "string_match_all" ? stringMatchAll : stringMatchPart;
  let total = 0;
  predictions.forEach((prediction, i) => {
    total += perSample(rulerPostprocess(prediction), references[i]!);
  });
  return pythonRound((total / predictions.length) * 100, 2);
}
