import { z } from "zod";
import type { TokenScorer } from "./scorer.js";
import { knormScorer } from "./knorm.js";
import { keydiffScorer } from "./keydiff.js";
import { snapkvOptionShape, snapkvScorer, snapkvSettings, type SnapKVSettingsOptions } from "./snapkv.js";

/**
 * The scorers a wrapper over scorers takes (ChunkKV, AdaKV, as kvpress's ChunkKVPress and AdaKVPress take a
 * ScorerPress): those that score the whole prompt once. SnapKV brings its own options.
 */
const PROMPT_SCORERS = {
  snapkv: (method: string, o: SnapKVSettingsOptions) => snapkvScorer(snapkvSettings(method, o)),
  knorm: () => knormScorer(),
  keydiff: () => keydiffScorer(),
} as const;

export type PromptScorerName = keyof typeof PROMPT_SCORERS;

/** A wrapper's options that choose and set its scorer (default snapkv, as ChunkKV's and AdaKV's papers). */
export const promptScorerOptionShape = {
  scorer: z.enum(["snapkv", "knorm", "keydiff"]).optional(),
  ...snapkvOptionShape,
};

export interface PromptScorerOptions extends SnapKVSettingsOptions {
  scorer?: PromptScorerName;
}

/** The scorer a wrapper's options name; `method` names the wrapper in option errors. */
export function promptScorer(method: string, options: PromptScorerOptions): TokenScorer {
  return PROMPT_SCORERS[options.scorer ?? "snapkv"](method, options);
}
