/**
 * Turns a suite's method entry into an InferenceSession: full KV, an eviction policy from the cache registry, or
 * EdgeInfinite with a trained (or untrained) memory-gating module.
 */
import { existsSync } from "node:fs";
import type { LlamaConfig } from "../backbone/config.js";
import type { LlamaModel } from "../backbone/model.js";
import type { InferenceSession } from "../backbone/session.js";
import { CachedSession } from "../cache/cached-session.js";
import { fullPolicy } from "../cache/full.js";
import { createPolicy, resolveBudget } from "../cache/registry.js";
import type { LoadedBackbone } from "../loaders/index.js";
import type { CachePolicy } from "../cache/policy.js";
import { makeEdgeInfiniteConfig, validateEdgeInfiniteConfig, type EdgeInfiniteConfig } from "../memory/config.js";
import { EdgeInfiniteSession } from "../memory/edgeinfinite.js";
import { MemoryGatingModule } from "../memory/module.js";
import { loadCheckpoint } from "../training/checkpoint.js";
import { fail } from "../util/errors.js";
import { knownMethods, type MethodSpec } from "./suite.js";

export type { MethodSpec } from "./suite.js";

/** What createSession needs of a method: a suite entry, or flags from the command line (label defaults to name). */
export type MethodInput = Omit<MethodSpec, "label"> & { label?: string };

function withLabel(method: MethodInput): MethodSpec {
  return { ...method, label: method.label ?? method.name };
}

export interface SessionContext {
  model: LlamaModel;
  backbone: LoadedBackbone;
  /** Prompt length in tokens (percentage budgets are resolved against it). */
  promptTokens: number;
  maxScoreBytes?: number;
}

/** A method ready to run many samples: its EdgeInfinite module (if any) is loaded once. */
export interface PreparedMethod {
  spec: MethodSpec;
  /** The memory-gating module (edgeinfinite only). */
  module: MemoryGatingModule | null;
  /** Checkpoint step folder actually loaded, or null (untrained or not edgeinfinite). */
  checkpointDir: string | null;
  /** Effective EdgeInfinite settings (edgeinfinite only), recorded in run.json. */
  edgeinfinite: EdgeInfiniteConfig | null;
  dispose(): void;
}

/** Bytes full attention's KV cache holds for `tokens` tokens (float32 keys and values, every layer). */
export function kvBytesFullFor(config: LlamaConfig, tokens: number): number {
  return tokens * 2 * config.numLayers * config.numKvHeads * config.headDim * 4;
}

/** The EdgeInfinite settings the suite overrides (only those it names). */
function edgeInfiniteOverrides(spec: MethodSpec): Partial<EdgeInfiniteConfig> {
  const o: Partial<EdgeInfiniteConfig> = {};
  if (spec.sinkTokens !== undefined) o.sinkTokens = spec.sinkTokens;
  if (spec.windowTokens !== undefined) o.windowTokens = spec.windowTokens;
  if (spec.segmentLength !== undefined) o.segmentLength = spec.segmentLength;
  if (spec.routingThreshold !== undefined) o.routingThreshold = spec.routingThreshold;
  if (spec.exactTokens !== undefined) o.exactTokens = spec.exactTokens;
  return o;
}

/** Settings that shape an untrained module only (a checkpoint fixes them). */
function untrainedOverrides(spec: MethodSpec): Partial<EdgeInfiniteConfig> {
  const o: Partial<EdgeInfiniteConfig> = {};
  if (spec.readMode !== undefined) o.readMode = spec.readMode;
  if (spec.featureMap !== undefined) o.featureMap = spec.featureMap;
  if (spec.gateKind !== undefined) o.gateKind = spec.gateKind;
  if (spec.gateInitLogit !== undefined) o.gateInitLogit = spec.gateInitLogit;
  return o;
}

/**
 * Loads what a method needs before any sample runs, so a bad checkpoint or setting fails at the start.
 * For edgeinfinite, the suite's sinkTokens/windowTokens/segmentLength/routingThreshold override the checkpoint's
 * (the trained maps do not depend on them).
 */
export function prepareMethod(method: MethodInput, backbone: LoadedBackbone): PreparedMethod {
  const spec = withLabel(method);
  const none = { spec, module: null, checkpointDir: null, edgeinfinite: null, dispose: () => {} };
  if (spec.name !== "edgeinfinite") return none;
  const where = `method ${spec.label}`;
  const overrides = edgeInfiniteOverrides(spec);
  let module: MemoryGatingModule;
  let checkpointDir: string | null = null;
  const untrainedOnly = untrainedOverrides(spec);
  if (spec.checkpoint !== undefined && existsSync(spec.checkpoint)) {
    const fixed = Object.keys(untrainedOnly);
    if (fixed.length > 0) fail(`${where}: ${fixed.join(", ")} shape an untrained module; checkpoint ${spec.checkpoint} fixes them`, `remove ${fixed.join(", ")} from method ${spec.label}`);
    const loaded = loadCheckpoint(spec.checkpoint, backbone);
    checkpointDir = loaded.dir;
    const base = loaded.module.config;
    // A new sink or window moves the default routing threshold (sink + window) with it.
    const { routingThreshold: baseRouting, ...baseRest } = base;
    const windowChanged = overrides.sinkTokens !== undefined || overrides.windowTokens !== undefined;
    const keepRouting = overrides.routingThreshold === undefined && !windowChanged;
    const cfg = makeEdgeInfiniteConfig({ ...baseRest, ...overrides, ...(keepRouting ? { routingThreshold: baseRouting } : {}) });
    prefixErrors(where, () => validateEdgeInfiniteConfig(cfg, backbone.config));
    if (sameConfig(cfg, base)) module = loaded.module;
    else {
      module = new MemoryGatingModule(backbone.config, cfg);
      try {
        module.loadFrom(loaded.module);
      } finally {
        loaded.module.dispose();
      }
    }
  } else {
    if (spec.checkpoint !== undefined && spec.checkpointIfMissing !== "untrained") {
      fail(`${where}: checkpoint ${spec.checkpoint} does not exist`, "train one (edgeinf train), fix the path, or set checkpointIfMissing: untrained");
    }
    const cfg = makeEdgeInfiniteConfig({ ...overrides, ...untrainedOnly });
    prefixErrors(where, () => validateEdgeInfiniteConfig(cfg, backbone.config));
    module = new MemoryGatingModule(backbone.config, cfg);
  }
  return { spec, module, checkpointDir, edgeinfinite: module.config, dispose: () => module.dispose() };
}

function sameConfig(a: EdgeInfiniteConfig, b: EdgeInfiniteConfig): boolean {
  return (
    a.sinkTokens === b.sinkTokens &&
    a.windowTokens === b.windowTokens &&
    a.segmentLength === b.segmentLength &&
    a.routingThreshold === b.routingThreshold &&
    a.exactTokens === b.exactTokens
  );
}

function prefixErrors(where: string, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if (e instanceof Error) fail(`${where}: ${e.message}`);
    throw e;
  }
}

/** The token budget an eviction method gets for a prompt, or null for methods without one. */
export function budgetTokensFor(spec: MethodSpec, promptTokens: number): number | null {
  if (spec.budget === undefined) return null;
  return resolveBudget(spec.budget, promptTokens, spec.label);
}

/** The eviction policy of `spec` for a prompt of `promptTokens` tokens (budget resolved against it). */
export function policyFor(spec: MethodSpec, promptTokens: number): CachePolicy {
  if (spec.name === "full") return fullPolicy();
  const budgetTokens = budgetTokensFor(spec, promptTokens);
  return createPolicy(spec.name, {
    ...(spec.options ?? {}),
    ...(budgetTokens !== null ? { budgetTokens } : {}),
    ...(spec.sinkTokens !== undefined ? { sinkTokens: spec.sinkTokens } : {}),
    ...(spec.windowTokens !== undefined ? { windowTokens: spec.windowTokens } : {}),
  });
}

/**
 * Refuses a cache the backbone could not hold: a layer budget beyond its trained context means the method is not
 * compressing into the window the comparison is about (and StreamingLLM's in-cache positions would leave it).
 * Also surfaces the policy's own option errors before anything runs.
 */
export function checkBudget(spec: MethodSpec, promptTokens: number, config: LlamaConfig): void {
  if (spec.name === "full" || spec.name === "edgeinfinite") return;
  const policy = policyFor(spec, promptTokens);
  try {
    let largest = 0;
    for (let layer = 0; layer < config.numLayers; layer++) largest = Math.max(largest, policy.budgetFor(layer, config.numLayers));
    if (largest > config.maxPositions) {
      const asked = spec.budget !== undefined ? `budget ${spec.budget}` : `sinkTokens + windowTokens`;
      fail(
        `method ${spec.label}: ${asked} gives a cache of ${largest} tokens for a ${promptTokens}-token prompt, larger than the backbone's context ${config.maxPositions}`,
        `use a budget of at most ${config.maxPositions} tokens`,
      );
    }
  } finally {
    policy.dispose?.();
  }
}

/** Wraps a session so disposing it also disposes what it owns (a module loaded just for it). */
function owning(session: InferenceSession, owned: () => void): InferenceSession {
  return {
    method: session.method,
    prefill: (ids) => session.prefill(ids),
    step: (id) => session.step(id),
    kvBytes: () => session.kvBytes(),
    peakKvBytes: () => session.peakKvBytes(),
    tokensSeen: () => session.tokensSeen(),
    dispose: () => {
      session.dispose();
      owned();
    },
  };
}

function isPrepared(method: MethodInput | PreparedMethod): method is PreparedMethod {
  return "spec" in method;
}

/**
 * A fresh session for one sample. `full` → the plain cached backbone; eviction methods → a cached session whose
 * policy gets the budget resolved against this prompt; `edgeinfinite` → EdgeInfiniteSession with the prepared
 * module (a bare MethodSpec loads its module here, and the session disposes it).
 */
export function createSession(method: MethodInput | PreparedMethod, ctx: SessionContext): InferenceSession {
  const spec = isPrepared(method) ? method.spec : withLabel(method);
  const known = knownMethods();
  if (!known.includes(spec.name)) fail(`unknown method "${spec.name}"`, `known methods: ${known.join(", ")}`);
  if (spec.name === "full") {
    if (spec.budget !== undefined) fail(`method ${spec.label}: full keeps every token and takes no budget`, "remove budget, or use an eviction method");
    return new CachedSession(ctx.model, fullPolicy(), ctx.maxScoreBytes);
  }
  if (spec.name === "edgeinfinite") {
    const prepared = isPrepared(method) ? method : prepareMethod(spec, ctx.backbone);
    const session = new EdgeInfiniteSession(ctx.model, prepared.module!, { maxScoreBytes: ctx.maxScoreBytes });
    return isPrepared(method) ? session : owning(session, () => prepared.dispose());
  }
  checkBudget(spec, ctx.promptTokens, ctx.model.config);
  const policy = policyFor(spec, ctx.promptTokens);
  return new CachedSession(ctx.model, policy, ctx.maxScoreBytes);
}
