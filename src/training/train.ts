import { saveCheckpoint } from "./checkpoint.js";
import { Progress } from "./progress.js";
import { prepareRun, heldoutLoss, backboneChecksum, defaultLog, type TrainRun, type TrainOptions } from "./run.js";
import { trainStep } from "./step.js";
import { checkFinite, stoppedAtStep } from "./step-checks.js";
import type { TrainResult } from "./train-log.js";
import type { Recipe } from "./recipe.js";

/** Runs a recipe: segment-wise TBPTT of the memory-gating module on a frozen backbone (docs/training.md). */
export async function train(recipe: Recipe, options: TrainOptions = {}): Promise<TrainResult> {
  const prepared = await prepareRun(recipe, options);
  if ("finished" in prepared) {
    (options.log ?? defaultLog)(`${alreadyFinished(recipe, prepared.step)}; nothing to do, its files are left as they are`);
    return prepared.finished;
  }
  const run = prepared;
  try {
    const t = recipe.training;
    const endStep = Math.max(run.startStep, Math.min(t.steps, options.stopAtStep ?? Infinity));
    // A run killed after its last checkpoint but before summary.json: no steps left, the summary comes from the checkpoint.
    if (run.startStep >= t.steps) run.log(`${alreadyFinished(recipe, run.startStep)}; writing the summary.json it lacks from its last checkpoint`);
    const progress = new Progress("train", t.steps, process.stderr, options.progress === false ? 1e9 : 10, run.startStep);
    // The last measured values (from the checkpoint resumed from, until this run measures its own).
    const resumed = run.resumedFrom?.metrics ?? {};
    let last = { loss: resumed.loss ?? NaN, heldoutLoss: resumed.heldoutLoss ?? NaN };
    let tokensDone = 0;
    const t0 = performance.now();
    for (let step = run.startStep; step < endStep; step++) {
      const done = step + 1;
      const r = await stopOnFailure(run, done, () => trainStep(run, step));
      tokensDone += r.tokens;
      const tps = (tokensDone * 1000) / (performance.now() - t0);
      const evaluate = done % t.evalInterval === 0 || done === t.steps;
      const heldout = evaluate ? await stopOnFailure(run, done, () => measureHeldout(run), "held-out loss") : undefined;
      last = { loss: r.loss, heldoutLoss: heldout ?? last.heldoutLoss };
      run.trainLog.append({ step: done, loss: r.loss, lr: r.lr, gradNorm: r.gradNorm, tokensPerSecond: tps, heldoutLoss: heldout ?? null, baselineHeldoutLoss: run.baselineHeldoutLoss });
      progress.update(done, `loss ${r.loss.toFixed(4)} | ${tps.toFixed(0)} tok/s${heldout !== undefined ? ` | held-out ${heldout.toFixed(4)}` : ""}`);
      if (done % t.checkpointInterval === 0 || done === t.steps) {
        await saveRunCheckpoint(run, done, { loss: r.loss, ...(Number.isFinite(last.heldoutLoss) ? { heldoutLoss: last.heldoutLoss } : {}) });
      }
    }
    if (endStep > run.startStep) progress.finish(`loss ${last.loss.toFixed(4)}`);
    const tokensPerSecond = tokensDone > 0 ? (tokensDone * 1000) / (performance.now() - t0) : (run.trainLog.rows().filter((row) => row.step <= endStep).pop()?.tokensPerSecond ?? 0);
    return await finish(run, { steps: endStep, finalLoss: last.loss, heldoutLoss: last.heldoutLoss, tokensPerSecond });
  } finally {
    run.dispose();
  }
}

async function measureHeldout(run: TrainRun): Promise<number> {
  const loss = await heldoutLoss(run.model, run.module, run.heldout, run.recipe.training.batchSize);
  await checkFinite(loss, "mean NLL", "lower training.optimizer.lr");
  return loss;
}

const alreadyFinished = (recipe: Recipe, step: number) =>
  `${recipe.output} already finished at step ${step} (training.steps ${recipe.training.steps})`;

/** `fn` (one step and its held-out evaluation); a failure becomes one line naming the step and the last good checkpoint. */
async function stopOnFailure<T>(run: TrainRun, step: number, fn: () => Promise<T>, during?: string): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw stoppedAtStep(e, step, run.out, during);
  }
}

async function saveRunCheckpoint(run: TrainRun, step: number, metrics: Record<string, number>): Promise<string> {
  const { recipe, backbone } = run;
  return saveCheckpoint(
    run.out,
    run.module,
    {
      step,
      backbone: { id: backbone.source.id, sha256: backbone.source.sha256, format: backbone.source.format, path: backbone.source.path },
      recipe,
      seed: recipe.seed,
      metrics: { baselineHeldoutLoss: run.baselineHeldoutLoss, ...metrics },
      optimizer: { name: "adamw", step: run.optimizer.step },
    },
    await run.optimizer.stateTensors(),
    recipe.training.keepCheckpoints,
    run.hooks,
  );
}

/** Checks the backbone is untouched, writes summary.json and prints the trained-vs-untrained comparison. */
async function finish(run: TrainRun, r: Pick<TrainResult, "steps" | "finalLoss" | "heldoutLoss" | "tokensPerSecond">): Promise<TrainResult> {
  const checksum = await backboneChecksum(run.model);
  if (checksum !== run.backboneChecksum) throw new Error("backbone weights changed during training (this is a bug)");
  const result: TrainResult = {
    steps: r.steps,
    finalLoss: r.finalLoss,
    heldoutLoss: r.heldoutLoss,
    baselineHeldoutLoss: run.baselineHeldoutLoss,
    checkpointDir: run.out,
    trainableParameters: run.trainableParameters,
    backboneParameters: run.backboneParameters,
    backboneChecksum: checksum,
    tokensPerSecond: r.tokensPerSecond,
  };
  run.trainLog.writeSummary(result);
  if (Number.isFinite(r.heldoutLoss)) {
    const { baselineHeldoutLoss: baseline } = run;
    const delta = r.heldoutLoss - baseline;
    const diff = `${delta < 0 ? "−" : "+"}${Math.abs(delta).toFixed(Math.abs(delta) < 5e-4 ? 6 : 4)}`;
    run.log(`held-out loss: trained ${r.heldoutLoss.toFixed(4)} vs untrained ${run.baselineHeldoutLoss.toFixed(4)} (${diff}, ${r.heldoutLoss < baseline ? "better" : "not better"})`);
  }
  return result;
}
