/**
 * The one registry of methods: every command (`eval`, `generate`, `ppl`), the suite schema, the harness and
 * --help list and parse methods from METHODS only. Adding a method is one file (its scorer/policy and descriptor)
 * and one line here.
 */
import type { CachePolicy } from "./policy.js";
import type { MethodDescriptor } from "./method.js";
import { fullMethod } from "./full.js";
import { streamingMethod } from "./streaming.js";
import { h2oMethod } from "./h2o.js";
import { snapkvMethod } from "./snapkv.js";
import { pyramidkvMethod } from "./pyramidkv.js";
import { tovaMethod } from "./tova.js";
import { randomMethod } from "./random.js";
import { knormMethod } from "./knorm.js";
import { keydiffMethod } from "./keydiff.js";
import { lagkvMethod } from "./lagkv.js";
import { chunkkvMethod } from "./chunkkv.js";
import { expectedAttentionMethod } from "./expected-attention.js";
import { adakvMethod } from "./adakv.js";
import { edgeinfiniteMethod } from "../eval/edgeinfinite-method.js";
import { fail } from "../util/errors.js";

export const METHODS: readonly MethodDescriptor[] = [
  fullMethod,
  streamingMethod,
  h2oMethod,
  snapkvMethod,
  pyramidkvMethod,
  tovaMethod,
  randomMethod,
  edgeinfiniteMethod,
  knormMethod,
  keydiffMethod,
  lagkvMethod,
  chunkkvMethod,
  expectedAttentionMethod,
  adakvMethod,
];

/** Every method's name, in registry order. */
export function methodNames(): string[] {
  return METHODS.map((m) => m.name);
}

/** The descriptor of `name`; one-line error listing the methods otherwise. */
export function methodByName(name: string, where = "KV-cache method"): MethodDescriptor {
  const found = METHODS.find((m) => m.name === name);
  if (!found) fail(`unknown ${where} "${name}"`, `use one of ${methodNames().join(", ")}`);
  return found;
}

/** The KV-cache eviction methods (those with a cache policy other than full). */
export const METHOD_NAMES: readonly string[] = METHODS.filter((m) => m.makePolicy && m.name !== "full").map((m) => m.name);

/** Cache-policy options by their policy names (budgetTokens already in tokens), for tests and library users. */
export interface PolicyOptions {
  budgetTokens?: number;
  [option: string]: number | undefined;
}

/**
 * The CachePolicy of an eviction method (or full) by name, its options checked against the method's schema;
 * budgetTokens is the budget in tokens.
 */
export function createPolicy(name: string, opts: PolicyOptions): CachePolicy {
  const method = METHODS.find((m) => m.name === name && m.makePolicy);
  if (!method) fail(`unknown KV-cache method "${name}"`, `use one of full, ${METHOD_NAMES.join(", ")}`);
  const { budgetTokens, ...rest } = opts;
  const takesBudget = "budget" in method.optionsSchema.shape;
  if (budgetTokens !== undefined && !takesBudget) fail(`method ${name} does not take option budgetTokens`, "full keeps every token and takes no options or budget");
  for (const key of Object.keys(rest)) {
    if (rest[key] !== undefined && !(key in method.optionsSchema.shape)) {
      const accepted = ["budgetTokens", ...Object.keys(method.optionsSchema.shape).filter((k) => k !== "budget")];
      fail(`method ${name} does not take option ${key}`, `it takes ${accepted.join(", ")}`);
    }
  }
  if (takesBudget && budgetTokens === undefined && !method.optionsSchema.shape["budget"]!.safeParse(undefined).success) {
    fail(`method ${name} needs a budget`, 'set budget to a token count or a share such as "25%"');
  }
  return method.makePolicy!(opts);
}
