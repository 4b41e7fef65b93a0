import { existsSync } from "node:fs";
import { join } from "node:path";
import * as tf from "../tf.js";
import { assertFiniteAsync } from "../util/finite.js";
import { EdgeInfError } from "../util/errors.js";
import { readCheckpointMeta, resolveCheckpointDir } from "./checkpoint.js";

/** The problem part of an EdgeInfError's message (without ` — hint`). */
const problemOf = (e: EdgeInfError): string => (e.hint !== undefined ? e.message.slice(0, e.message.length - e.hint.length - 3) : e.message);

/**
 * Fails when a training value is NaN/±Inf (`WHAT became NaN`) or the webgpu device reported errors (its outputs, this
 * value included, are then not trustworthy). `what` is e.g. "training loss".
 */
export async function checkFinite(value: number, what: string, hint: string): Promise<void> {
  try {
    await assertFiniteAsync(value, what);
  } catch (e) {
    if (!(e instanceof EdgeInfError)) throw e;
    if (!Number.isFinite(value)) throw new EdgeInfError(`${what} became ${value}`, hint);
    throw e;
  }
}

/** The step folder latest.json of `out` names and its step, or null when there is none (or it cannot be read). */
export function lastCheckpoint(out: string): { dir: string; step: number } | null {
  if (!existsSync(join(out, "latest.json"))) return null;
  try {
    return { dir: resolveCheckpointDir(out), step: readCheckpointMeta(out).step };
  } catch {
    return null;
  }
}

/** Where the last good checkpoint of `out` is, in words: "the last good checkpoint OUT/step-000004 (step 4) is kept". */
export function lastCheckpointNote(out: string): string {
  const last = lastCheckpoint(out);
  return last ? `the last good checkpoint ${last.dir} (step ${last.step}) is kept` : "no checkpoint has been written yet";
}

/**
 * A one-line error for a run that stopped at `step` because of `e` (a non-finite loss, gradient norm or held-out
 * NLL, or a device error) `during` e.g. the held-out loss: the problem, the step, the last good checkpoint and how to go
 * on. Other errors pass as they are.
 */
export function stoppedAtStep(e: unknown, step: number, out: string, during?: string): unknown {
  if (!(e instanceof EdgeInfError)) return e;
  const problem = problemOf(e);
  const backend = /backend/.test(problem) ? "" : ` (backend ${tf.getBackend()})`;
  const then = lastCheckpoint(out) ? "then continue with --resume" : "then run it again";
  return new EdgeInfError(`${problem}${during ? `, in the ${during}` : ""} at step ${step}; stopped, ${lastCheckpointNote(out)}${backend}`, `${e.hint ?? "see docs/training.md"}, ${then}`);
}
