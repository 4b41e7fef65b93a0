/** Messages between the parent and a pool worker (src/parallel/worker.ts). Everything here is structured-cloneable. */
import type { EdgeInfiniteConfig } from "../memory/config.js";
import type { ObjectiveName } from "../training/objectives/index.js";
import type { SegmentOptions } from "../memory/edgeinfinite-attention.js";
import type { EvalSample } from "../eval/samples.js";
import type { SampleRow } from "../eval/samples-log.js";
import type { MethodSpec, Suite } from "../eval/suite.js";

/** workerData: what a worker loads once. */
export interface WorkerInit {
  backend: string;
  backbone: string;
}

/** Named float32 tensors on the wire (weights to workers, gradients back). */
export interface WireTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** A training sequence of one micro-batch. */
export interface WireSequence {
  ids: number[];
  lossMask?: number[];
}

export type WorkerTask =
  /** Resolves once the backend runs and the backbone is loaded. */
  | { kind: "ready" }
  /** The module a worker computes gradients of: its config and current trainable weights (replacing earlier ones). */
  | { kind: "setModule"; config: EdgeInfiniteConfig; weights: WireTensor[] }
  /**
   * Gradients of one micro-batch with the module last set: one sequence, or several of equal length in one batched
   * forward/backward (the objective's batchGradients, as train()'s in-process step runs a batch).
   */
  | { kind: "gradients"; sequences: WireSequence[]; tbpttSegments: number; options: SegmentOptions; objective?: ObjectiveName; objectiveOptions?: unknown }
  /** Prepares a suite's methods (checkpoints loaded once) before its samples run. */
  | { kind: "prepareEval"; suite: Suite; methods: MethodSpec[]; longestTokens: number }
  /** One sample under one prepared method → its samples.jsonl row. */
  | { kind: "evalSample"; sample: EvalSample; method: string; taskHash: string; methodHash: string; backend: string; warmUp: boolean }
  /** Frees what prepareEval loaded. */
  | { kind: "endEval" };

export interface GradientsResult {
  /** Σ over the micro-batch's sequences of each one's loss. */
  lossSum: number;
  tokens: number;
  /** Σ over the micro-batch's sequences of each one's gradients. */
  grads: WireTensor[];
}

export type EvalSampleResult = SampleRow;

export interface WireError {
  problem: string;
  hint?: string;
  /** An EdgeInfError (one-line user error) rather than a bug. */
  edgeinf: boolean;
  stack?: string;
}

export interface WorkerRequest {
  id: number;
  task: WorkerTask;
}

export type WorkerReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: WireError };
