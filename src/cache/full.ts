import type { CachePolicy } from "./policy.js";
import { z } from "zod";
import type { MethodDescriptor } from "./method.js";
import { CachedSession } from "./cached-session.js";
import { windowedNll, windowedNllBatch } from "../backbone/nll.js";
import type { LoadedBackbone } from "../loaders/index.js";

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
  nll: (_instance, model, backbone, ids, contextTokens) => windowedNll(model, ids, contextTokens ?? backbone.config.maxPositions, windowStart(backbone)),
  nllBatch: (_instance, model, backbone, texts, contextTokens, batchSize) =>
    windowedNllBatch(model, texts, contextTokens ?? backbone.config.maxPositions, windowStart(backbone), batchSize),
};

/** The token each NLL window starts with: BOS, or null (the token before the window) for tokenizers without one. */
function windowStart(backbone: LoadedBackbone): number | null {
  return backbone.tokenizer.addsBos === false ? null : backbone.config.bosTokenId;
}
