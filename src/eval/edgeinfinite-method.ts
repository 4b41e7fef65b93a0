/**
 * EdgeInfinite (Chen et al., arXiv 2503.22196) as a method of the registry: the frozen backbone with the
 * memory-gating module of a checkpoint (or an untrained one), sink + window of plain KV, older tokens in memory.
 * One place decides the module every command uses: `eval`, `generate` and `ppl` all come here.
 */
import { existsSync } from "node:fs";
import { z } from "zod";
import type { LoadedBackbone } from "../loaders/index.js";
import type { MethodDescriptor, MethodOptions, MethodInstance } from "../cache/method.js";
import { LAYOUT_KEYS, layoutOverrides, layoutSchema, makeEdgeInfiniteConfig, validateEdgeInfiniteConfig, type EdgeInfiniteConfig } from "../memory/config.js";
import { EdgeInfiniteSession, edgeInfiniteNll, edgeInfiniteNllBatch } from "../memory/edgeinfinite.js";
import { mapInEqualLengthBatches } from "../backbone/nll.js";
import { MemoryGatingModule } from "../memory/module.js";
import { loadCheckpoint, runConfig } from "../training/checkpoint.js";
import { fail } from "../util/errors.js";

const optionsSchema = layoutSchema.extend({
  /** A folder written by `edgeinf train`; absent: the untrained module (gate at its initial value). */
  checkpoint: z.string().min(1).optional(),
  /** When the checkpoint folder does not exist: "error" (the default) or run the untrained module. */
  checkpointIfMissing: z.enum(["error", "untrained"]).optional(),
  /** Decoded tokens leave the window in blocks of this many (default 1, per token; segmentLength: decode in segments, faster). */
  decodeSegment: z.number().int().positive().optional(),
  /** Untrained module only (a checkpoint fixes them): read mode, feature map, gate kind, initial gate logit. */
  readMode: z.enum(["blend", "shared"]).optional(),
  featureMap: z.enum(["elu", "hedgehog"]).optional(),
  gateKind: z.enum(["scalar", "learned"]).optional(),
  gateInitLogit: z.number().optional(),
});

type EdgeInfiniteOptions = z.infer<typeof optionsSchema>;

/** Settings that shape an untrained module only (a checkpoint's trained parameters assume its own). */
function untrainedOverridesOf(o: EdgeInfiniteOptions): Partial<EdgeInfiniteConfig> {
  const out: Partial<EdgeInfiniteConfig> = {};
  if (o.readMode !== undefined) out.readMode = o.readMode;
  if (o.featureMap !== undefined) out.featureMap = o.featureMap;
  if (o.gateKind !== undefined) out.gateKind = o.gateKind;
  if (o.gateInitLogit !== undefined) out.gateInitLogit = o.gateInitLogit;
  return out;
}

/** Whether two settings place tokens alike (every layout key equal; the rest is the checkpoint's either way). */
function sameLayout(a: EdgeInfiniteConfig, b: EdgeInfiniteConfig): boolean {
  return LAYOUT_KEYS.every((k) => JSON.stringify(a[k]) === JSON.stringify(b[k]));
}

function prefixErrors(where: string, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if (e instanceof Error) fail(`${where}: ${e.message}`);
    throw e;
  }
}

/**
 * The module to run: the checkpoint's, at the layout its `inference` block names (`edgeinf layout`; else the one it
 * was trained at), with the options' layout keys (sink, window, segment, routing, exact cache) overriding both — the
 * trained maps do not depend on them — or, without a checkpoint (or a missing one with checkpointIfMissing:
 * untrained), an untrained module with the default settings (DEFAULT_EDGEINFINITE) overridden the same way.
 */
function loadModule(o: EdgeInfiniteOptions, backbone: LoadedBackbone, where: string): { module: MemoryGatingModule; checkpointDir: string | null } {
  const untrainedOnly = untrainedOverridesOf(o);
  if (o.checkpoint !== undefined && existsSync(o.checkpoint)) {
    const fixed = Object.keys(untrainedOnly);
    if (fixed.length > 0) fail(`${where}: ${fixed.join(", ")} shape an untrained module; checkpoint ${o.checkpoint} fixes them`, `remove ${fixed.join(", ")}`);
    const loaded = loadCheckpoint(o.checkpoint, backbone);
    const base = loaded.module.config;
    let cfg: EdgeInfiniteConfig;
    try {
      cfg = runConfig(loaded.meta, loaded.dir, layoutOverrides(o));
      prefixErrors(where, () => validateEdgeInfiniteConfig(cfg, backbone.config));
    } catch (e) {
      loaded.module.dispose();
      throw e;
    }
    if (sameLayout(cfg, base)) return { module: loaded.module, checkpointDir: loaded.dir };
    const module = new MemoryGatingModule(backbone.config, cfg);
    try {
      module.loadFrom(loaded.module);
    } finally {
      loaded.module.dispose();
    }
    return { module, checkpointDir: loaded.dir };
  }
  if (o.checkpoint !== undefined && o.checkpointIfMissing !== "untrained") {
    fail(`${where}: checkpoint ${o.checkpoint} does not exist`, "train one (edgeinf train), fix the path, or set checkpointIfMissing: untrained");
  }
  const cfg = makeEdgeInfiniteConfig({ ...layoutOverrides(o), ...untrainedOnly });
  prefixErrors(where, () => validateEdgeInfiniteConfig(cfg, backbone.config));
  return { module: new MemoryGatingModule(backbone.config, cfg), checkpointDir: null };
}

export const edgeinfiniteMethod: MethodDescriptor = {
  name: "edgeinfinite",
  summary: "EdgeInfinite: sink + window of plain KV, older tokens compressed into a gated memory (trained module or untrained)",
  paper: "Chen et al., EdgeInfinite: A Memory-Efficient Infinite-Context Transformer for Edge Devices, arXiv 2503.22196",
  optionsSchema,
  refusedKeys: { budget: "edgeinfinite takes no budget (set sinkTokens, windowTokens and segmentLength instead)" },
  defaultLabel(options: MethodOptions) {
    const o = options as EdgeInfiniteOptions;
    const untrained = o.checkpoint === undefined || (!existsSync(o.checkpoint) && o.checkpointIfMissing === "untrained");
    return untrained ? "edgeinfinite-untrained" : "edgeinfinite";
  },
  instantiate(options, backbone, where): MethodInstance {
    const o = options as EdgeInfiniteOptions;
    const { module, checkpointDir } = loadModule(o, backbone, where);
    return {
      module,
      checkpointDir,
      edgeinfinite: module.config,
      createSession: (ctx) => new EdgeInfiniteSession(ctx.model, module, { maxScoreBytes: ctx.maxScoreBytes, ...(o.decodeSegment !== undefined ? { decodeSegment: o.decodeSegment } : {}) }),
      dispose: () => module.dispose(),
    };
  },
  nll: (instance, model, _backbone, ids) => edgeInfiniteNll(model, instance.module!, ids),
  // Texts of equal token counts (e.g. cut by --max-tokens) step through memory together.
  nllBatch: (instance, model, _backbone, texts, _context, batchSize) =>
    mapInEqualLengthBatches(
      texts.map((ids) => ({ ids })),
      batchSize,
      (group) => edgeInfiniteNllBatch(model, instance.module!, group.map((t) => t.ids)),
    ),
};
