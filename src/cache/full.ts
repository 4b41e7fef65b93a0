import type { CachePolicy } from "./policy.js";
import { z } from "zod";
import type { MethodDescriptor } from "./method.js";
import { CachedSession } from "./cached-session.js";
import { windowedNll } from "../backbone/nll.js";

/** Full KV: keeps every token (the reference every other method is compared with). */
export function fullPolicy(): CachePolicy {
  return {
    name: "full",
    compress: () => {},
    budgetFor: () => Infinity,
  };
}

export const fullMethod: MethodDescriptor = {
  name: "full",
  summary: "Full KV cache: keeps every token (the reference)",
  paper: "Touvron et al., LLaMA, arXiv 2302.13971 (the backbone as trained)",
  optionsSchema: z.strictObject({}),
  refusedKeys: { budget: "full keeps every token and takes no budget" },
  instantiate: () => ({
    module: null,
    checkpointDir: null,
    edgeinfinite: null,
    createSession: (ctx) => new CachedSession(ctx.model, fullPolicy(), ctx.maxScoreBytes),
    check: () => {},
    dispose: () => {},
  }),
  policy: () => fullPolicy(),
  makePolicy: () => fullPolicy(),
  nll: (_instance, model, backbone, ids, contextTokens) => windowedNll(model, ids, contextTokens ?? backbone.config.maxPositions, backbone.tokenizer.addsBos === false ? null : backbone.config.bosTokenId),
};
