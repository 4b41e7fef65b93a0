import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { loadCorpus } from "../datasets/manifest.js";
import { MixtureSampler, type MixtureSource, type TrainingSequence } from "../datasets/mixture.js";
import { EdgeInfError } from "../util/errors.js";
import type { Recipe } from "./recipe.js";

export type { TrainingSequence };

/** Recipe task names use underscores; the generators use hyphens. */
const taskId = (t: string) => t.replace(/_/g, "-");

function mixtureSources(recipe: Recipe): MixtureSource[] {
  const texts = new Map<string, string[]>();
  const textsOf = (path: string, column?: string) => {
    const key = `${path}#${column ?? ""}`;
    if (!texts.has(key)) texts.set(key, loadCorpus(path, column ? { columns: { text: column } } : {}).texts);
    return texts.get(key)!;
  };
  const firstText = recipe.data.mixture.find((m) => m.source !== "synthetic");
  const haystackPath = recipe.data.corpus ?? firstText?.path;
  return recipe.data.mixture.map((m, i): MixtureSource => {
    if (m.source === "synthetic") {
      if (!haystackPath) throw new EdgeInfError(`recipe ${recipe.name}: synthetic source ${i} needs haystack text`, "set data.corpus or add a text source");
      return { kind: "synthetic", name: `${i}:${m.task}`, weight: m.weight, task: taskId(m.task!), haystack: textsOf(haystackPath) };
    }
    return { kind: "text", name: `${i}:${m.path}`, weight: m.weight, texts: textsOf(m.path!, m.column) };
  });
}

/**
 * Training sequences of sequenceLength + 1 tokens (inputs and shifted targets), reproducible from the recipe seed:
 * sequence i of step s is always the same, so a resumed run sees exactly the data an uninterrupted one would.
 */
export function buildSampler(recipe: Recipe, tokenizer: Tokenizer): (step: number, index: number) => TrainingSequence {
  const perStep = recipe.training.batchSize * recipe.training.gradAccumulation;
  const sampler = new MixtureSampler({
    tokenizer,
    sequenceLength: recipe.data.sequenceLength + 1,
    seed: recipe.seed,
    sources: mixtureSources(recipe),
  });
  let produced = 0;
  return (step, index) => {
    const wanted = step * perStep + index;
    if (wanted < produced) throw new Error(`data sampler: sequence ${wanted} requested after ${produced}`);
    while (produced < wanted) {
      sampler.next();
      produced++;
    }
    produced++;
    return sampler.next();
  };
}

/** Fixed held-out sequences (plain text from data.heldout.path), seeded apart from the training stream. */
export function buildHeldout(recipe: Recipe, tokenizer: Tokenizer): TrainingSequence[] {
  const h = recipe.data.heldout;
  const sampler = new MixtureSampler({
    tokenizer,
    sequenceLength: (h.sequenceLength ?? recipe.data.sequenceLength) + 1,
    seed: (recipe.seed + 0x5eed) >>> 0,
    sources: [{ kind: "text", name: "heldout", weight: 1, texts: loadCorpus(h.path).texts }],
  });
  return sampler.take(h.sequences);
}
