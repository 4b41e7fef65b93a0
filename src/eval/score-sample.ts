/**
 * One prediction's score in [0, 1] for a sample of any source, in one place: LongBench's scorer (synthetic and
 * LongBench tasks), RULER's string_match_all/part on the post-processed prediction (the task score is 100 × the
 * mean, as RULER's evaluate.py), InfiniteBench's get_score_one_*, LongBench v2's extract_answer == answer.
 */
import { RULER_TASKS } from "../datasets/ruler/tasks.js";
import type { InfiniteBenchTaskName } from "./metrics/infinitebench.js";
import { infiniteBenchTaskScore } from "./metrics/infinitebench.js";
import { scorePrediction } from "./metrics/index.js";
import { rulerPostprocess } from "./metrics/ruler.js";
import { stringMatchAll, stringMatchPart } from "./metrics/string-match.js";
import { extractLongBenchV2Answer } from "./longbench-v2.js";
import type { TaskSpec } from "./suite.js";

/** What scoring reads of a sample. */
export interface Scorable {
  dataset: string;
  answers: readonly string[];
  allClasses: readonly string[] | null;
}

export function scoreSample(task: TaskSpec, sample: Scorable, prediction: string): number {
  switch (task.source) {
    case "synthetic":
    case "longbench":
      return scorePrediction(sample.dataset, prediction, sample.answers, sample.allClasses);
    case "ruler": {
      const metric = (RULER_TASKS as Readonly<Record<string, { metric: string } | undefined>>)[sample.dataset]?.metric ?? "string_match_all";
      return (metric === "string_match_all" ? stringMatchAll : stringMatchPart)(rulerPostprocess(prediction), sample.answers);
    }
    case "infinitebench":
      return infiniteBenchTaskScore(sample.dataset as InfiniteBenchTaskName, prediction, sample.answers, task.template);
    case "longbench-v2":
      return extractLongBenchV2Answer(prediction) === sample.answers[0] ? 1 : 0;
  }
}
