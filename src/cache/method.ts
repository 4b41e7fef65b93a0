/**
 * A method of the comparison as the registry (registry.ts) knows it: its name, its paper, the options a suite entry
 * or the command line may give it (a strict zod schema, which the suite's discriminated union is built from), and
 * how it makes an inference session. full, the eviction methods and EdgeInfinite are all such descriptors.
 */
import { z } from "zod";
import type { LlamaConfig } from "../backbone/config.js";
import type { LlamaModel } from "../backbone/model.js";
import type { InferenceSession } from "../backbone/session.js";
import type { LoadedBackbone } from "../loaders/index.js";
import type { EdgeInfiniteConfig } from "../memory/config.js";
import type { MemoryGatingModule } from "../memory/module.js";
import { prefillOnly, type CachePolicy } from "./policy.js";
import { scorerPolicy, type Selection, type TokenScorer } from "./scorer.js";
import { requireCount } from "./options.js";
import { CachedSession } from "./cached-session.js";
import { resolveBudget } from "./budget.js";
import { withKvQuantization, type KvQuantizationOptions } from "./kv-quantization.js";
import { EdgeInfError, fail } from "../util/errors.js";

/** A method's options as validated by its optionsSchema (keys besides name and label). */
export type MethodOptions = Record<string, unknown>;

export interface SessionContext {
  model: LlamaModel;
  backbone: LoadedBackbone;
  /** Prompt length in tokens (percentage budgets are resolved against it). */
  promptTokens: number;
  maxScoreBytes?: number;
  /**
   * Index of the prompt's first question token, when the prompt has a marked question (eval samples: the record's
   * input as the template places it). Methods that compress the context without the question use it.
   */
  questionStart?: number;
}

/** What a method loaded before any sample (EdgeInfinite's module), recorded in run.json. */
export interface LoadedState {
  module: MemoryGatingModule | null;
  /** Checkpoint step folder actually loaded, or null. */
  checkpointDir: string | null;
  /** Effective EdgeInfinite settings, or null. */
  edgeinfinite: EdgeInfiniteConfig | null;
}

/** A method with its options validated and what it needs loaded, ready to run many samples. */
export interface MethodInstance extends LoadedState {
  createSession(ctx: SessionContext): InferenceSession;
  dispose(): void;
}

export interface MethodDescriptor {
  readonly name: string;
  /** One line for --help and docs/methods.md. */
  readonly summary: string;
  /** The paper (and the public implementation followed, if any). */
  readonly paper: string;
  /** A suite entry's keys besides name and label (also the command-line flags the method takes). */
  readonly optionsSchema: z.ZodObject;
  /** Why a key this method refuses is wrong, when that is worth more than "unknown key" (full's budget). */
  readonly refusedKeys?: Readonly<Record<string, string>>;
  /** Label when the suite names none (default: the name). */
  defaultLabel?(options: MethodOptions): string;
  /** Refuses a prompt the method cannot serve (a cache beyond the backbone's context) before anything runs. */
  check?(options: MethodOptions, promptTokens: number, config: LlamaConfig, where: string): void;
  /** options: already validated by optionsSchema; `where` names the method in errors. */
  instantiate(options: MethodOptions, backbone: LoadedBackbone, where: string): MethodInstance;
  /**
   * Per-token NLL of ids[1..] given the tokens before each (`edgeinf ppl`), for methods that score whole texts:
   * full (windows of contextTokens, default the trained context) and EdgeInfinite (segment by segment).
   */
  nll?(instance: MethodInstance, model: LlamaModel, backbone: LoadedBackbone, ids: readonly number[], contextTokens?: number): Promise<number[]>;
  /**
   * nll of several texts with up to `batchSize` sequences per forward (`edgeinf ppl --batch-size`); each text's
   * result equals nll of it alone. Methods without it score several texts one by one, one sequence per forward.
   */
  nllBatch?(
    instance: MethodInstance,
    model: LlamaModel,
    backbone: LoadedBackbone,
    texts: readonly (readonly number[])[],
    contextTokens: number | undefined,
    batchSize: number,
  ): Promise<number[][]>;
  /** Eviction methods: the cache policy for a prompt of promptTokens tokens (budget resolved against it). */
  policy?(options: MethodOptions, promptTokens: number, where: string): CachePolicy;
  /** Eviction methods: the policy with the budget given in tokens (budgetTokens) and options as the policy names them. */
  makePolicy?(options: MethodOptions & { budgetTokens?: number }): CachePolicy;
}

/** The option keys a descriptor takes. */
export function optionKeys(descriptor: MethodDescriptor): string[] {
  return Object.keys(descriptor.optionsSchema.shape);
}

/**
 * Options checked against the method's schema (undefined values dropped, as the command line leaves unset flags);
 * one-line EdgeInfError naming the method and the option otherwise.
 */
export function parseMethodOptions(descriptor: MethodDescriptor, raw: MethodOptions, where = `method ${descriptor.name}`): MethodOptions {
  const given = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined));
  for (const key of Object.keys(given)) {
    const why = descriptor.refusedKeys?.[key];
    if (why) fail(`${where}: ${why}`, `remove ${key}`);
  }
  const parsed = descriptor.optionsSchema.safeParse(given);
  if (parsed.success) return parsed.data as MethodOptions;
  const issue = parsed.error.issues[0]!;
  const keys = optionKeys(descriptor);
  const takes = keys.length ? `it takes ${keys.join(", ")}` : `${descriptor.name} takes no options`;
  if (issue.code === "unrecognized_keys") fail(`${where} does not take option ${issue.keys.join(", ")}`, takes);
  throw new EdgeInfError(`${where}: ${issue.path.map(String).join(".") || "options"}: ${issue.message}`, takes);
}

/** A KV budget: a token count, or a share of the prompt such as "25%". */
export const budgetSchema = z.union([
  z.number().int().positive(),
  z.string().regex(/^\d+(\.\d+)?%$/, 'a budget is a token count or a percentage such as "25%"'),
]);

/** KIVI-style quantisation of what an eviction method keeps (kv-quantization.ts); any eviction method takes it. */
export const kvQuantizationSchema = z.strictObject({
  bits: z.literal([2, 4, 8]),
  groupSize: z.number().int().positive().optional(),
  residualTokens: z.number().int().nonnegative().optional(),
});

export interface EvictionMethodDefinition<S extends z.ZodRawShape> {
  name: string;
  summary: string;
  paper: string;
  /** The method's own options (besides budget). */
  options: S;
  /**
   * Whether the method also evicts during decoding (StreamingLLM, H2O, TOVA): then a budget ≥ the prompt is allowed,
   * since a long generation still fills it; prefill-only methods refuse it (they would equal full).
   */
  evictsWhileDecoding?: boolean;
  /** Whether a budget is required (every method but StreamingLLM, which may take sinkTokens + windowTokens). */
  budget: "required" | "optional";
  /** The policy, given the options and the budget in tokens (undefined only when budget is optional). */
  makePolicy(options: z.infer<z.ZodObject<S>> & { budgetTokens?: number }): CachePolicy;
}

/**
 * The descriptor of a KV-cache eviction method: options = budget + its own; sessions are CachedSessions of its
 * policy, with the budget resolved against each prompt and checked against the backbone's context.
 */
export function evictionMethod<S extends z.ZodRawShape>(def: EvictionMethodDefinition<S>): MethodDescriptor {
  const optionsSchema = z.strictObject({
    budget: def.budget === "required" ? budgetSchema : budgetSchema.optional(),
    ...def.options,
    kvQuantization: kvQuantizationSchema.optional(),
  });
  const policy = (options: MethodOptions, promptTokens: number, where: string): CachePolicy => {
    const { budget, kvQuantization, ...rest } = options;
    const budgetTokens = budget === undefined ? undefined : resolveBudget(budget as number | string, promptTokens, where.replace(/^method /, ""), def.evictsWhileDecoding ?? false);
    const evicting = def.makePolicy({ ...(rest as z.infer<z.ZodObject<S>>), ...(budgetTokens !== undefined ? { budgetTokens } : {}) });
    return kvQuantization ? withKvQuantization(evicting, kvQuantization as KvQuantizationOptions) : evicting;
  };
  return {
    name: def.name,
    summary: def.summary,
    paper: def.paper,
    optionsSchema,
    policy,
    check: (options, promptTokens, config, where) => checkCacheFits(policy(options, promptTokens, where), config, promptTokens, where, options),
    makePolicy: (o) => def.makePolicy(o as z.infer<z.ZodObject<S>> & { budgetTokens?: number }),
    instantiate(options, _backbone, where) {
      return {
        module: null,
        checkpointDir: null,
        edgeinfinite: null,
        createSession: (ctx) => {
          checkCacheFits(policy(options, ctx.promptTokens, where), ctx.model.config, ctx.promptTokens, where, options);
          return new CachedSession(ctx.model, policy(options, ctx.promptTokens, where), ctx.maxScoreBytes, ctx.questionStart);
        },
        dispose: () => {},
      };
    },
  };
}

/**
 * Refuses a cache the backbone could not hold: a layer budget beyond its trained context means the method is not
 * compressing into the window the comparison is about (and StreamingLLM's in-cache positions would leave it).
 * Disposes the policy it was given.
 */
function checkCacheFits(policy: CachePolicy, config: LlamaConfig, promptTokens: number, where: string, options: MethodOptions): void {
  try {
    let largest = 0;
    for (let layer = 0; layer < config.numLayers; layer++) largest = Math.max(largest, policy.budgetFor(layer, config.numLayers));
    if (largest > config.maxPositions) {
      const asked = options["budget"] !== undefined ? `budget ${String(options["budget"])}` : "sinkTokens + windowTokens";
      fail(
        `${where}: ${asked} gives a cache of ${largest} tokens for a ${promptTokens}-token prompt, larger than the backbone's context ${config.maxPositions}`,
        `use a budget of at most ${config.maxPositions} tokens`,
      );
    }
  } finally {
    policy.dispose?.();
  }
}

export interface ScoringMethodDefinition<S extends z.ZodRawShape> {
  name: string;
  summary: string;
  paper: string;
  options: S;
  /** The scorer, given the options (budgetTokens included). */
  scorer(options: z.infer<z.ZodObject<S>> & { budgetTokens: number }): TokenScorer;
  /** The selection from the scores (default: per-head top-k), given the options. */
  select?(options: z.infer<z.ZodObject<S>>): Selection;
}

/**
 * The descriptor of a method that only scores tokens and, as kvpress's presses, evicts once after prefill (decode
 * appends): the scorer base does budget, top-k and eviction.
 */
export function prefillScoringMethod<S extends z.ZodRawShape>(def: ScoringMethodDefinition<S>): MethodDescriptor {
  return evictionMethod({
    ...def,
    budget: "required",
    makePolicy(o) {
      const budget = requireCount(def.name, "budgetTokens", o.budgetTokens, 1);
      const scorer = def.scorer({ ...o, budgetTokens: budget });
      const select = def.select?.(o);
      return prefillOnly(scorerPolicy(scorer, { name: def.name, budgetFor: () => budget, ...(select ? { select } : {}) }));
    },
  });
}
