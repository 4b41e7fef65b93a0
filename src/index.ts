/**
 * The public API of edgeinfinite: `import { … } from "edgeinfinite"` (package.json's exports map allows only this
 * entry). A curated set, grouped as the toolkit works: start a backend, load a backbone, train the memory-gating
 * module, compare it with the KV-cache methods, score, report and export. docs/api.md has a whole program and a
 * line on each name. Everything else under src/ is internal and may change.
 */

export const VERSION = "0.1.0";

/** Backend selection: start the fastest tfjs backend this machine can run, and say why (docs/backends.md). */
export { initBackend, backendName, type BackendName, type BackendInfo, type BackendAttempt, type InitBackendOptions } from "./backend/select.js";

/** Tensors: the tfjs-core instance the library computes with (logits, module tensors; tf.memory() to check for leaks). */
export * as tf from "./tf.js";

/** Loading a backbone: llama2.c .bin, Hugging Face folder or hf:owner/name, frozen host weights + tokenizer (docs/loaders.md). */
export { loadBackbone, identifyBackbone, type LoadedBackbone, type BackboneSource, type BackboneIdentity } from "./loaders/index.js";
export type { ResolveOptions } from "./loaders/hub.js";
export type { LlamaConfig } from "./backbone/config.js";
export type { Tokenizer } from "./tokenizers/tokenizer.js";
export { LlamaModel } from "./backbone/model.js";

/** Generation and sessions: one InferenceSession per sequence for any method, and greedy or sampled decoding over it. */
export { generate, type GenerateOptions, type GenerateResult } from "./backbone/generate.js";
export type { SamplingOptions } from "./backbone/sampling.js";
export type { InferenceSession } from "./backbone/session.js";
export { createSession, prepareMethod, type MethodInput, type PreparedMethod, type SessionContext } from "./eval/methods.js";
export { endOfTextIds } from "./tokenizers/tokenizer.js";

/** KV-cache methods: the one registry of full KV, the eviction methods and EdgeInfinite (docs/methods.md). */
export { METHODS, methodNames, methodByName, createPolicy, type PolicyOptions } from "./cache/registry.js";
export { resolveBudget } from "./cache/budget.js";
export type { MethodDescriptor, MethodInstance, MethodOptions } from "./cache/method.js";
export type { CachePolicy } from "./cache/policy.js";
export { CachedSession } from "./cache/cached-session.js";

/** The memory-gating module of EdgeInfinite: its trainable parameters, settings and inference session (docs/edgeinfinite.md). */
export { MemoryGatingModule, type LayerMemoryParams } from "./memory/module.js";
export { makeEdgeInfiniteConfig, validateEdgeInfiniteConfig, DEFAULT_EDGEINFINITE, type EdgeInfiniteConfig, type Layout } from "./memory/config.js";
export { EdgeInfiniteSession, edgeInfiniteNll, edgeInfiniteNllBatch } from "./memory/edgeinfinite.js";
export { retrievalProbes, retrievalScores, allocateExactTokens, type RetrievalProbe } from "./memory/retrieval-heads.js";

/** Training: recipes (YAML + --set style overrides, validated) and segment-wise TBPTT on a frozen backbone (docs/training.md). */
export { train } from "./training/train.js";
export { type TrainOptions } from "./training/run.js";
export { type TrainResult } from "./training/train-log.js";
export { loadRecipe, validateRecipe, applyOverrides, recipeSchema, RECIPE_DEFAULTS, type Recipe, type Override } from "./training/recipe.js";
export { loadCheckpoint, readCheckpointMeta, resolveCheckpointDir, writeCheckpointLayout, type CheckpointMeta } from "./training/checkpoint.js";

/** Evaluation: suites (YAML or objects) run sample by sample into a resumable run folder (docs/evaluation.md). */
export { runSuite, type RunSuiteOptions, type RunResult, type ProgressEvent } from "./eval/harness.js";
export { loadSuite, parseSuite, TASK_SOURCES, type Suite, type TaskSpec, type TaskSource, type MethodSpec, type MethodSpecInput, type GenerationSpec } from "./eval/suite.js";
/** One prediction's score for a sample of any task source (the harness's scorer). */
export { scoreSample, type Scorable } from "./eval/score-sample.js";
export { longBenchV2Breakdowns, type LongBenchV2Breakdown } from "./eval/longbench-v2.js";
/** RULER's 13 tasks as record builders (docs/datasets.md). */
export {
  RULER_TASKS,
  RULER_TASK_NAMES,
  buildRulerRecord,
  loadRulerResources,
  defaultRulerWords,
  defaultRulerCommonWords,
  type RulerTaskName,
  type RulerTaskSpec,
  type RulerResources,
  type RulerResourceFiles,
  type RulerRecordRequest,
} from "./datasets/ruler/tasks.js";
export { seededRulerRandom, type RulerRecord, type RulerTaskRandom } from "./datasets/ruler/common.js";
export type { ProgressMode } from "./eval/progress.js";
export type { SampleRow } from "./eval/samples-log.js";

/** Scoring: LongBench's and RULER's metrics, per prediction, per dataset and per prediction file (docs/metrics.md). */
export {
  scorePrediction,
  scoreDataset,
  scoreDatasetByLength,
  metricFor,
  dataset2metric,
  knownDatasets,
  isKnownDataset,
  lengthBucket,
  qaF1Score,
  qaF1ZhScore,
  rougeScore,
  rougeZhScore,
  classificationScore,
  retrievalScore,
  retrievalZhScore,
  countScore,
  codeSimScore,
  stringMatchAll,
  stringMatchPart,
  perplexityFromNll,
  type MetricName,
  type DatasetName,
  type ScoreOptions,
  type PredictionRow,
  type LengthBucket,
  type RougeRecursion,
} from "./eval/metrics/index.js";
export { scorePredictionsFile, scorePredsDir, type ScoreResult, type PredsDirResult } from "./eval/score.js";

/** Report: a run folder's comparison tables (Markdown, CSV, JSON) and plots (SVG, PNG). */
export { report, comparisonText, rebuildTables, readResults, type ReportResult, type PlotOptions, type Rasteriser } from "./eval/report.js";
export { markdownTable, scorePivot, type AggregateRow, type ResultsJson } from "./eval/tables.js";

/** Export: a trained module's per-segment step as ONNX, or its tensors as safetensors, from a checkpoint (docs/export.md). */
export { exportOnnx, DEFAULT_OPSET, MIN_OPSET, MAX_OPSET, type ExportOnnxOptions, type ExportOnnxResult } from "./export/onnx.js";
export { exportSafetensors, type ExportSafetensorsResult } from "./export/safetensors.js";
export { openCheckpointForExport, type ExportCheckpoint } from "./export/from-checkpoint.js";

/** Errors: bad input is an EdgeInfError whose message is one line, "what is wrong — how to fix it" (docs/reliability.md). */
export { EdgeInfError } from "./util/errors.js";
