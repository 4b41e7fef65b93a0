import { fail } from "../../util/errors.js";
import { classificationScore } from "./classification.js";
import { codeSimScore } from "./code-sim.js";
import { countScore } from "./count.js";
import { numpyMean } from "./numpy-mean.js";
import { numpyRound } from "./numpy-round.js";
import { pythonRound } from "./python-round.js";
import { firstLine } from "./python-str.js";
import { qaF1Score } from "./qa-f1.js";
import { qaF1ZhScore } from "./qa-f1-zh.js";
import { retrievalScore } from "./retrieval.js";
import { retrievalZhScore } from "./retrieval-zh.js";
import { rougeScore, type RougeRecursion } from "./rouge.js";
import { rougeZhScore } from "./rouge-zh.js";
import { stringMatchAll } from "./string-match.js";

export { classificationScore } from "./classification.js";
export { codeSimScore, firstCodeLine } from "./code-sim.js";
export { countScore } from "./count.js";
export { difflibRatio } from "./difflib-ratio.js";
export { exactMatchScore, normalizedExactMatchScore } from "./exact-match.js";
export { fuzzRatio } from "./fuzz-ratio.js";
export { normalizeAnswer } from "./normalize-answer.js";
export { normalizeZhAnswer, CN_PUNCTUATION } from "./normalize-zh-answer.js";
export { numpyMean } from "./numpy-mean.js";
export { numpyRound } from "./numpy-round.js";
export { perplexityFromNll } from "./perplexity.js";
export { pythonRound } from "./python-round.js";
export { firstLine } from "./python-str.js";
export { qaF1Score } from "./qa-f1.js";
export { qaF1ZhScore } from "./qa-f1-zh.js";
export { retrievalScore } from "./retrieval.js";
export { retrievalZhScore } from "./retrieval-zh.js";
export { rougeScore, type RougeRecursion } from "./rouge.js";
export { rulerPostprocess, rulerTaskScore, type RulerMetric } from "./ruler.js";
export { rougeLSummaryLevel, type RougeLScores } from "./rouge-l.js";
export { rougeZhScore } from "./rouge-zh.js";
export { stringMatchAll, stringMatchPart } from "./string-match.js";
export { tokenF1 } from "./token-f1.js";
export { segmentZh } from "./zh-segment.js";

/** Metric names as LongBench's eval.py functions (`qa_f1_score` → "qa_f1") plus RULER's string_match_all. */
export type MetricName =
  | "qa_f1"
  | "qa_f1_zh"
  | "rouge"
  | "rouge_zh"
  | "classification"
  | "retrieval"
  | "retrieval_zh"
  | "count"
  | "code_sim"
  | "string_match_all";

/**
 * LongBench eval.py `dataset2metric` (THUDM/LongBench, MIT), verbatim, followed by our synthetic
 * retrieval tasks, which are scored like RULER's niah / variable_tracking (string_match_all).
 */
export const dataset2metric = {
  narrativeqa: "qa_f1",
  qasper: "qa_f1",
  multifieldqa_en: "qa_f1",
  multifieldqa_zh: "qa_f1_zh",
  hotpotqa: "qa_f1",
  "2wikimqa": "qa_f1",
  musique: "qa_f1",
  dureader: "rouge_zh",
  gov_report: "rouge",
  qmsum: "rouge",
  multi_news: "rouge",
  vcsum: "rouge_zh",
  trec: "classification",
  triviaqa: "qa_f1",
  samsum: "rouge",
  lsht: "classification",
  passage_retrieval_en: "retrieval",
  passage_count: "count",
  passage_retrieval_zh: "retrieval_zh",
  lcc: "code_sim",
  "repobench-p": "code_sim",
  // Synthetic tasks (not LongBench): fraction of the answers found in the prediction.
  passkey: "string_match_all",
  needle: "string_match_all",
  multi_needle: "string_match_all",
  kv_retrieval: "string_match_all",
  variable_tracking: "string_match_all",
  // The same tasks as src/datasets/synthetic spells them (it writes these into `dataset`).
  "multi-needle": "string_match_all",
  "kv-retrieval": "string_match_all",
  "variable-tracking": "string_match_all",
} as const satisfies Record<string, MetricName>;

export type DatasetName = keyof typeof dataset2metric;

export const knownDatasets: readonly DatasetName[] = Object.keys(dataset2metric) as DatasetName[];

/** LongBench eval.py: these datasets are scored on the prediction's first line only. */
export const firstLineDatasets: ReadonlySet<string> = new Set(["trec", "triviaqa", "samsum", "lsht"]);

export function isKnownDataset(dataset: string): dataset is DatasetName {
  return Object.prototype.hasOwnProperty.call(dataset2metric, dataset);
}

/** The dataset's metric, or a one-line error that lists the known datasets. */
export function metricFor(dataset: string): MetricName {
  if (!isKnownDataset(dataset)) {
    fail(`unknown task "${dataset}"`, `known tasks: ${knownDatasets.join(", ")}`);
  }
  return dataset2metric[dataset];
}

/** Scoring choices where the official scorer's behaviour is a quirk worth opting out of. */
export interface ScoreOptions {
  /** ROUGE on very long sentence pairs: "longbench" (default) scores pltrdy's RecursionError 0 as eval.py does; "exact" gives the true ROUGE-L. */
  rougeRecursion?: RougeRecursion;
}

/** A metric scored against one ground truth at a time (LongBench takes the max over answers). */
type AnswerMetric = (prediction: string, groundTruth: string, allClasses: readonly string[] | null, options: ScoreOptions) => number;

const perAnswerMetrics: Record<Exclude<MetricName, "string_match_all">, AnswerMetric> = {
  qa_f1: qaF1Score,
  qa_f1_zh: qaF1ZhScore,
  rouge: (prediction, groundTruth, _allClasses, options) => rougeScore(prediction, groundTruth, options.rougeRecursion),
  rouge_zh: (prediction, groundTruth, _allClasses, options) => rougeZhScore(prediction, groundTruth, options.rougeRecursion),
  classification: classificationScore,
  retrieval: retrievalScore,
  retrieval_zh: retrievalZhScore,
  count: countScore,
  code_sim: codeSimScore,
};

/**
 * One prediction's score in [0, 1], as in LongBench's `scorer`: first-line rule for
 * trec/triviaqa/samsum/lsht, then the max over ground truths starting from 0 (no answers → 0).
 * string_match_all instead scores the whole answers list at once (fraction found), like RULER.
 */
export function scorePrediction(
  dataset: string,
  prediction: string,
  answers: readonly string[],
  allClasses: readonly string[] | null = null,
  options: ScoreOptions = {},
): number {
  const metric = metricFor(dataset);
  const scored = firstLineDatasets.has(dataset) ? firstLine(prediction) : prediction;
  if (metric === "string_match_all") return stringMatchAll(scored, answers);
  const metricFn = perAnswerMetrics[metric];
  let score = 0;
  for (const groundTruth of answers) score = Math.max(score, metricFn(scored, groundTruth, allClasses, options));
  return score;
}

/** One row of a LongBench prediction file (pred.py writes exactly these keys). */
export interface PredictionRow {
  pred: string;
  answers: readonly string[];
  all_classes: readonly string[] | null;
  length?: number;
}

/** LongBench `scorer`: round(100 · Σscore / n, 2) with Python's round (ties to even). */
export function scoreDataset(dataset: string, rows: readonly PredictionRow[], options: ScoreOptions = {}): number {
  metricFor(dataset);
  if (rows.length === 0) fail(`cannot score "${dataset}": no predictions`, "the predictions file has no rows");
  let totalScore = 0;
  for (const row of rows) totalScore += scorePrediction(dataset, row.pred, row.answers, row.all_classes, options);
  return pythonRound((100 * totalScore) / rows.length, 2);
}

export type LengthBucket = "0-4k" | "4-8k" | "8k+";

/** LongBench-E length buckets of `scorer_e`: length < 4000, < 8000, else. */
export function lengthBucket(length: number): LengthBucket {
  if (length < 4000) return "0-4k";
  if (length < 8000) return "4-8k";
  return "8k+";
}

/**
 * LongBench `scorer_e`: per bucket round(100 · np.mean(scores), 2). `100 * np.mean(...)` is a
 * numpy float, so `round` is numpy's (rint of x·100, ties to even on the float product), not
 * Python's correctly rounded one. An empty bucket is NaN, as numpy's mean of an empty list is
 * (JSON.stringify prints it as null).
 */
export function scoreDatasetByLength(dataset: string, rows: readonly PredictionRow[], options: ScoreOptions = {}): Record<LengthBucket, number> {
  metricFor(dataset);
  const buckets: Record<LengthBucket, number[]> = { "0-4k": [], "4-8k": [], "8k+": [] };
  rows.forEach((row, index) => {
    if (typeof row.length !== "number" || !Number.isFinite(row.length)) {
      fail(`cannot bucket "${dataset}" row ${index + 1} by length: it has no numeric "length"`, "LongBench-E scoring needs a length on every row");
    }
    buckets[lengthBucket(row.length)].push(scorePrediction(dataset, row.pred, row.answers, row.all_classes, options));
  });
  return {
    "0-4k": numpyRound(100 * numpyMean(buckets["0-4k"]), 2),
    "4-8k": numpyRound(100 * numpyMean(buckets["4-8k"]), 2),
    "8k+": numpyRound(100 * numpyMean(buckets["8k+"]), 2),
  };
}
