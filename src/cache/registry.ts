import type { CachePolicy } from "./policy.js";
import { fullPolicy } from "./full.js";
import { streamingPolicy, streamingOptionsFrom } from "./streaming.js";
import { h2oPolicy } from "./h2o.js";
import { snapkvPolicy } from "./snapkv.js";
import { pyramidkvPolicy } from "./pyramidkv.js";
import { tovaPolicy } from "./tova.js";
import { randomPolicy } from "./random.js";
import { fail } from "../util/errors.js";

export { resolveBudget } from "./budget.js";

/** The KV-cache eviction methods (`full` is accepted by createPolicy too). */
export const METHOD_NAMES = ["streaming", "h2o", "snapkv", "pyramidkv", "tova", "random"] as const;
export type MethodName = (typeof METHOD_NAMES)[number];

export interface PolicyOptions {
  /** Tokens per layer; every method but streaming (which can take sinkTokens + windowTokens instead) needs it. */
  budgetTokens?: number;
  sinkTokens?: number;
  windowTokens?: number;
  recentTokens?: number;
  observationWindow?: number;
  kernelSize?: number;
  seed?: number;
  /** PyramidKV's pyramid steepness. */
  beta?: number;
}

/** Options each method reads; anything else is a mistake worth a clear error. */
const ACCEPTED: Record<MethodName | "full", readonly (keyof PolicyOptions)[]> = {
  full: [],
  streaming: ["budgetTokens", "sinkTokens", "windowTokens"],
  h2o: ["budgetTokens", "recentTokens"],
  snapkv: ["budgetTokens", "observationWindow", "kernelSize"],
  pyramidkv: ["budgetTokens", "observationWindow", "kernelSize", "beta"],
  tova: ["budgetTokens"],
  random: ["budgetTokens", "seed"],
};

function isKnown(name: string): name is MethodName | "full" {
  return Object.prototype.hasOwnProperty.call(ACCEPTED, name);
}

function checkOptions(name: MethodName | "full", opts: PolicyOptions): void {
  const accepted = ACCEPTED[name] as readonly string[];
  for (const [key, value] of Object.entries(opts)) {
    if (value === undefined || accepted.includes(key)) continue;
    fail(
      `method ${name} does not take option ${key}`,
      accepted.length ? `it takes ${accepted.join(", ")}` : "full keeps every token and takes no options or budget",
    );
  }
}

function withBudget(name: MethodName, opts: PolicyOptions): PolicyOptions & { budgetTokens: number } {
  if (opts.budgetTokens === undefined) fail(`method ${name} needs a budget`, 'set budget to a token count or a share such as "25%"');
  return { ...opts, budgetTokens: opts.budgetTokens };
}

/** The CachePolicy of a method by name, with its options validated. */
export function createPolicy(name: string, opts: PolicyOptions): CachePolicy {
  if (!isKnown(name)) fail(`unknown KV-cache method "${name}"`, `use one of full, ${METHOD_NAMES.join(", ")}`);
  checkOptions(name, opts);
  switch (name) {
    case "full":
      return fullPolicy();
    case "streaming":
      return streamingPolicy(streamingOptionsFrom(opts));
    case "h2o":
      return h2oPolicy(withBudget(name, opts));
    case "snapkv":
      return snapkvPolicy(withBudget(name, opts));
    case "pyramidkv":
      return pyramidkvPolicy(withBudget(name, opts));
    case "tova":
      return tovaPolicy(withBudget(name, opts));
    case "random":
      return randomPolicy(withBudget(name, opts));
  }
}
