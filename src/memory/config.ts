import { z } from "zod";
import { EdgeInfError } from "../util/errors.js";
import type { LlamaConfig } from "../backbone/config.js";
import type { MemoryRule } from "./write-memory.js";
import { FEATURE_MAPS, type FeatureMap } from "./feature-map.js";
import type { GateKind } from "./gate.js";

export type ReadMode = "blend" | "shared";
export const READ_MODES: readonly ReadMode[] = ["blend", "shared"];

/** What exactSpread takes, for the suite and recipe schemas and for validateEdgeInfiniteConfig. */
export const exactSpreadSchema = z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()], "two integers ≥ 0, [before, after], e.g. [1, 1]");

/** What exactTokensPerLayer takes: one whole number per layer, or null for exactTokens in every layer. */
export const exactPerLayerSchema = z.array(z.number().int().nonnegative(), "one whole number ≥ 0 per layer, e.g. [64, 64, 512, …]").nullable();

/**
 * The keys that place tokens (sink, window, segment, exact cache, routing) without changing what a module learned:
 * a trained module runs at any of them (its maps are per head, not per position). Suites, `--method-option` and a
 * checkpoint's `inference` block (`edgeinf layout`) set them.
 */
export const layoutSchema = z.strictObject({
  sinkTokens: z.number().int().nonnegative().optional(),
  windowTokens: z.number().int().positive().optional(),
  segmentLength: z.number().int().positive().optional(),
  routingThreshold: z.number().int().nonnegative().optional(),
  /** Tokens per layer and KV head kept exactly (LoLA-style cache). */
  exactTokens: z.number().int().nonnegative().optional(),
  /** Neighbours [before, after] kept with each badly reconstructed token (docs/edgeinfinite.md). */
  exactSpread: exactSpreadSchema.optional(),
  /** Exact-cache tokens per KV head for each layer, over exactTokens (docs/edgeinfinite.md, "Exact cache per layer"). */
  exactTokensPerLayer: exactPerLayerSchema.optional(),
});
export type Layout = z.infer<typeof layoutSchema>;
export const LAYOUT_KEYS = Object.keys(layoutSchema.shape) as (keyof Layout)[];

/**
 * `over` on top of `base` (a checkpoint's stored layout and new flags, say), key by key, with layoutOverrides' rule:
 * exactTokens set alone in `over` means that many in every layer, so it drops a per-layer split of `base`.
 */
export function mergeLayout(base: Layout | undefined, over: Layout): Layout {
  const merged: Layout = { ...base, ...over };
  if (over.exactTokens !== undefined && over.exactTokensPerLayer === undefined) delete merged.exactTokensPerLayer;
  return merged;
}

/**
 * The keys of `layout` that are set, as config overrides. A layout that sets exactTokens alone means that many in
 * every layer: it also clears a per-layer split it would otherwise sit under (a checkpoint's, say).
 */
export function layoutOverrides(layout: Layout): Partial<EdgeInfiniteConfig> {
  const out: Partial<EdgeInfiniteConfig> = {};
  for (const key of LAYOUT_KEYS) if (layout[key] !== undefined) Object.assign(out, { [key]: layout[key] });
  if (layout.exactTokens !== undefined && layout.exactTokensPerLayer === undefined) out.exactTokensPerLayer = null;
  return out;
}

/** Settings of the EdgeInfinite attention (see docs/edgeinfinite.md). */
export interface EdgeInfiniteConfig {
  /** First tokens kept uncompressed forever (attention sinks). */
  sinkTokens: number;
  /** Most recent tokens kept uncompressed; older ones are compressed into memory. */
  windowTokens: number;
  /** Tokens processed together in one step of prefill/training. */
  segmentLength: number;
  memoryRule: MemoryRule;
  gateKind: GateKind;
  /**
   * How memory and local attention combine (docs/edgeinfinite.md): "blend" g·A_mem + (1−g)·A_local with g from the
   * gate alone (Infini-attention); "shared" the shared-normalizer hybrid (LoLCATs), whose gate also weighs the
   * memory's mass against the local softmax's.
   */
  readMode: ReadMode;
  /** φ of the linear memory: "elu" (ELU+1) or "hedgehog" ([softmax(x), softmax(−x)], memory twice as wide). */
  featureMap: FeatureMap;
  /** Tokens per layer and KV head kept exactly beside sink and window, chosen by self-recall error (LoLA); 0 = none. */
  exactTokens: number;
  /**
   * Neighbours kept with each badly reconstructed token, [before, after] (docs/edgeinfinite.md, "Exact cache"): a
   * token's score is the worst self-recall error within `before` tokens after it and `after` tokens before it, so a
   * needle's whole phrase (key words, then digits) stays together; the cache is then kept in token order. [0, 0]:
   * LoLA's per-token choice, kept worst first.
   */
  exactSpread: [number, number];
  /**
   * Exact-cache tokens per KV head for each layer (one number per layer), replacing exactTokens where set; null: exactTokens
   * in every layer. A layer's cache only serves that layer's queries, so a budget can go to the layers whose heads
   * retrieve (docs/edgeinfinite.md, "Exact cache per layer").
   */
  exactTokensPerLayer: number[] | null;
  /** "pre-rope": keys/queries enter memory without positions (default); "post-rope": rotated at their local-span positions. */
  memoryKeys: "pre-rope" | "post-rope";
  /** Which memory projections train (all are applied; frozen ones stay identity). */
  trainProjections: { q: boolean; k: boolean; v: boolean };
  /** Inputs with at most this many tokens bypass memory (long/short routing); default sinkTokens + windowTokens. */
  routingThreshold: number;
  gateInitLogit: number;
  eps: number;
}

export const DEFAULT_EDGEINFINITE: Omit<EdgeInfiniteConfig, "routingThreshold"> = {
  sinkTokens: 4,
  windowTokens: 256,
  segmentLength: 128,
  memoryRule: "linear",
  gateKind: "scalar",
  readMode: "blend",
  featureMap: "elu",
  exactTokens: 0,
  exactSpread: [0, 0],
  exactTokensPerLayer: null,
  memoryKeys: "pre-rope",
  trainProjections: { q: true, k: true, v: true },
  gateInitLogit: -6,
  eps: 1e-6,
};

export function makeEdgeInfiniteConfig(partial: Partial<EdgeInfiniteConfig> = {}): EdgeInfiniteConfig {
  const base = { ...DEFAULT_EDGEINFINITE, ...partial };
  return { ...base, routingThreshold: partial.routingThreshold ?? base.sinkTokens + base.windowTokens };
}

/** Exact-cache tokens per KV head in `layer`: exactTokensPerLayer[layer] where set, else exactTokens. */
export function exactTokensAt(c: EdgeInfiniteConfig, layer: number): number {
  return c.exactTokensPerLayer?.[layer] ?? c.exactTokens;
}

/** The config one layer runs with: exactTokens resolved for that layer. */
export function layerConfig(c: EdgeInfiniteConfig, layer: number): EdgeInfiniteConfig {
  return c.exactTokensPerLayer ? { ...c, exactTokens: exactTokensAt(c, layer) } : c;
}

/** The largest exact cache of any layer (what the local span must hold). */
export function maxExactTokens(c: EdgeInfiniteConfig): number {
  const perLayer = c.exactTokensPerLayer;
  return perLayer && perLayer.length > 0 ? Math.max(...perLayer) : c.exactTokens;
}

/**
 * Positions RoPE sees in a layer holding `exactTokens` exact tokens: sink + exact + window + the segment being read.
 * It must stay within the backbone's trained context (validateEdgeInfiniteConfig; retrieval-heads caps a split by it).
 */
export function localSpanTokens(c: EdgeInfiniteConfig, exactTokens: number): number {
  return c.sinkTokens + exactTokens + c.windowTokens + c.segmentLength;
}

/** Rejects settings that cannot work, naming the setting and the fix. */
export function validateEdgeInfiniteConfig(c: EdgeInfiniteConfig, backbone?: LlamaConfig): void {
  const bad = (problem: string, hint: string): never => {
    throw new EdgeInfError(`edgeinfinite config: ${problem}`, hint);
  };
  const int = (name: keyof EdgeInfiniteConfig, min: number) => {
    const v = c[name];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) bad(`${name} must be an integer ≥ ${min}, got ${String(v)}`, `set ${name} to an integer ≥ ${min}`);
  };
  int("sinkTokens", 0);
  int("windowTokens", 1);
  int("segmentLength", 1);
  int("routingThreshold", 0);
  int("exactTokens", 0);
  if (!exactSpreadSchema.safeParse(c.exactSpread).success)
    bad(`exactSpread must be two integers ≥ 0 ([before, after]), got ${JSON.stringify(c.exactSpread)}`, "set exactSpread to e.g. [8, 2], or [0, 0] for none");
  if (c.windowTokens < c.segmentLength)
    bad(`windowTokens (${c.windowTokens}) < segmentLength (${c.segmentLength})`, "use a window at least one segment long");
  if (c.memoryRule !== "linear" && c.memoryRule !== "delta") bad(`unknown memoryRule "${String(c.memoryRule)}"`, 'use "linear" or "delta"');
  if (c.gateKind !== "scalar" && c.gateKind !== "learned") bad(`unknown gateKind "${String(c.gateKind)}"`, 'use "scalar" or "learned"');
  if (!READ_MODES.includes(c.readMode)) bad(`unknown readMode "${String(c.readMode)}"`, `use one of ${READ_MODES.join(", ")}`);
  if (!FEATURE_MAPS.includes(c.featureMap)) bad(`unknown featureMap "${String(c.featureMap)}"`, `use one of ${FEATURE_MAPS.join(", ")}`);
  if (!exactPerLayerSchema.safeParse(c.exactTokensPerLayer ?? null).success)
    bad(`exactTokensPerLayer must be whole numbers ≥ 0, one per layer, got ${JSON.stringify(c.exactTokensPerLayer)}`, "set it to e.g. [64, 64, 512, 64], or leave it out for exactTokens in every layer");
  if (maxExactTokens(c) > 0 && c.memoryKeys === "post-rope")
    bad("exactTokens needs pre-RoPE memory keys (the exact cache re-rotates its keys in the local span)", 'set memoryKeys to "pre-rope" or exactTokens to 0');
  if (c.memoryKeys !== "pre-rope" && c.memoryKeys !== "post-rope") bad(`unknown memoryKeys "${String(c.memoryKeys)}"`, 'use "pre-rope" or "post-rope"');
  if (!(c.eps > 0)) bad(`eps must be > 0, got ${c.eps}`, "use e.g. 1e-6");
  if (backbone) {
    if (backbone.numHeads % backbone.numKvHeads !== 0)
      bad(`backbone heads ${backbone.numHeads} not divisible by KV heads ${backbone.numKvHeads}`, "use a backbone with grouped heads");
    if (c.exactTokensPerLayer && c.exactTokensPerLayer.length !== backbone.numLayers)
      bad(
        `exactTokensPerLayer has ${c.exactTokensPerLayer.length} entries, the backbone ${backbone.numLayers} layers`,
        `give one number per layer (${backbone.numLayers}), or leave it out for exactTokens in every layer`,
      );
    const span = localSpanTokens(c, maxExactTokens(c));
    if (span > backbone.maxPositions)
      bad(
        `local span sinkTokens + exactTokens + windowTokens + segmentLength = ${span}${c.exactTokensPerLayer ? " (exactTokens of the largest layer)" : ""} exceeds the backbone's trained context ${backbone.maxPositions}`,
        "shrink the window or the segment so RoPE stays inside the trained context",
      );
  }
}
