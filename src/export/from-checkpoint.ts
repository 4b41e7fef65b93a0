import { existsSync } from "node:fs";
import { identifyBackbone, type BackboneIdentity } from "../loaders/index.js";
import { MemoryGatingModule } from "../memory/module.js";
import { validateEdgeInfiniteConfig } from "../memory/config.js";
import { loadModuleTensors, runConfig, readCheckpointMeta, resolveCheckpointDir, type CheckpointMeta } from "../training/checkpoint.js";
import { EdgeInfError } from "../util/errors.js";

/**
 * Opens a training checkpoint for export: finds the backbone it was trained on, proves it is that backbone
 * (sha256 of the weight files, as recorded at training time), and builds the trained memory-gating module.
 * Only the backbone's config and hash are read, never its weights into tensors: the export needs the head layout.
 */

export interface ExportCheckpoint {
  module: MemoryGatingModule;
  meta: CheckpointMeta;
  /** The step folder that was read. */
  dir: string;
  backbone: BackboneIdentity;
  /** "model": the caller's --model; "recorded": the backbone path the checkpoint's recipe names. */
  backboneFrom: "model" | "recorded";
}

const short = (sha: string) => `${sha.slice(0, 12)}…`;

function checkMeta(meta: CheckpointMeta, dir: string): void {
  const bb = meta?.backbone as Partial<CheckpointMeta["backbone"]> | undefined;
  if (!bb || typeof bb.sha256 !== "string" || typeof bb.id !== "string") {
    throw new EdgeInfError(`checkpoint ${dir}/checkpoint.json does not record its backbone (id and sha256)`, "pass a checkpoint written by edgeinf train");
  }
  if (!meta.edgeinfinite || typeof meta.edgeinfinite !== "object") {
    throw new EdgeInfError(`checkpoint ${dir}/checkpoint.json has no edgeinfinite settings`, "pass a checkpoint written by edgeinf train");
  }
}

/** The backbone path (or hf: id) the checkpoint's recipe was trained with, if it recorded one. */
export function recordedBackbone(meta: CheckpointMeta): string | null {
  const recipe = meta.recipe as { backbone?: unknown } | undefined;
  return recipe && typeof recipe.backbone === "string" && recipe.backbone !== "" ? recipe.backbone : null;
}

/** One error line naming the first trainable tensor holding NaN or ±Inf (a diverged training's checkpoint). */
export function checkFiniteWeights(module: MemoryGatingModule, dir: string): void {
  for (const [name, v] of module.trainableVariables()) {
    const data = v.dataSync();
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i]!)) {
        throw new EdgeInfError(`checkpoint ${dir}: tensor ${name} holds ${data[i]} at index ${i}`, "the training diverged before this step: export an earlier step folder, or retrain with a lower learning rate");
      }
    }
  }
}

/**
 * Resolves the checkpoint (DIR with latest.json, or a step folder) and its backbone: `model` if given (refused when
 * its sha256 differs from the one recorded in training), else the backbone path recorded in the checkpoint's recipe
 * (relative paths are relative to the working directory, as in training; hf: ids only from the local cache).
 * Call initBackend first: the module is built from tfjs tensors.
 */
export async function openCheckpointForExport(checkpoint: string, opts: { model?: string } = {}): Promise<ExportCheckpoint> {
  const dir = resolveCheckpointDir(checkpoint);
  const meta = readCheckpointMeta(dir);
  checkMeta(meta, dir);
  const trained = `"${meta.backbone.id}" (sha256 ${short(meta.backbone.sha256)})`;

  let backbone: BackboneIdentity;
  let backboneFrom: ExportCheckpoint["backboneFrom"];
  if (opts.model !== undefined) {
    backbone = await identifyBackbone(opts.model);
    backboneFrom = "model";
    if (backbone.sha256 !== meta.backbone.sha256) {
      throw new EdgeInfError(
        `checkpoint ${dir} was trained on backbone ${trained}, not on --model ${opts.model} = "${backbone.id}" (sha256 ${short(backbone.sha256)})`,
        `pass --model with the backbone it was trained on, or export a checkpoint trained on "${backbone.id}"`,
      );
    }
  } else {
    const spec = recordedBackbone(meta);
    const fix = `pass --model with the backbone ${trained} it was trained on`;
    if (spec === null) throw new EdgeInfError(`checkpoint ${dir} does not record where its backbone ${trained} is`, fix);
    if (!spec.startsWith("hf:") && !existsSync(spec)) {
      throw new EdgeInfError(`checkpoint ${dir} was trained on backbone ${trained} at ${spec}, which does not exist here`, fix);
    }
    try {
      backbone = await identifyBackbone(spec, { offline: true });
    } catch (e) {
      if (!(e instanceof EdgeInfError)) throw e;
      const problem = e.hint ? e.message.slice(0, e.message.length - e.hint.length - 3) : e.message;
      throw new EdgeInfError(`checkpoint ${dir}: cannot open its recorded backbone ${spec} (${problem})`, fix);
    }
    backboneFrom = "recorded";
    if (backbone.sha256 !== meta.backbone.sha256) {
      throw new EdgeInfError(
        `checkpoint ${dir} was trained on backbone ${trained}, but ${spec} (the path it recorded) now holds sha256 ${short(backbone.sha256)}`,
        fix,
      );
    }
  }

  // The settings it runs at: its `inference` layout (edgeinf layout) over the trained ones, as eval/generate use.
  const cfg = runConfig(meta, dir);
  validateEdgeInfiniteConfig(cfg, backbone.config);
  const module = new MemoryGatingModule(backbone.config, cfg);
  try {
    loadModuleTensors(module, dir); // strict: an export must not silently ship untrained (initial) tensors
    checkFiniteWeights(module, dir); // generate refuses NaN logits; an exported file must not carry them elsewhere
  } catch (e) {
    module.dispose();
    throw e;
  }
  return { module, meta, dir, backbone, backboneFrom };
}
