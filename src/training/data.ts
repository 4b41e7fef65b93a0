import type { Tokenizer } from "../tokenizers/tokenizer.js";
import type { ColumnMapping } from "../datasets/column-mapping.js";
import { loadCorpus, type Corpus, type DatasetManifest, type ManifestSource, type MixtureManifestEntry } from "../datasets/manifest.js";
import { MixtureSampler, type MixtureSource, type TrainingSequence } from "../datasets/mixture.js";
import { EdgeInfError } from "../util/errors.js";
import { columnMapping, type Recipe } from "./recipe.js";

export type { TrainingSequence };

/** Recipe task names use underscores; the generators use hyphens. */
const taskId = (t: string) => t.replace(/_/g, "-");

/** The corpora a recipe names, read once (a path read with the same mapping twice is shared). */
export interface RecipeData {
  /** Mixture sources ready for a MixtureSampler, in recipe order. */
  sources: MixtureSource[];
  /** Per mixture entry: the corpus read (for a synthetic source: its haystack), its mapping and haystack path. */
  corpora: { corpus: Corpus; columns?: ColumnMapping; haystack?: string }[];
  heldout: { corpus: Corpus; columns?: ColumnMapping };
}

/** Reads every corpus of the recipe (mixture, synthetic haystack, held-out). Fails with one-line errors. */
export function loadRecipeData(recipe: Recipe): RecipeData {
  const cache = new Map<string, Corpus>();
  const read = (path: string, columns?: ColumnMapping): Corpus => {
    const key = `${path}#${JSON.stringify(columns ?? null)}`;
    if (!cache.has(key)) cache.set(key, loadCorpus(path, columns ? { columns } : {}));
    return cache.get(key)!;
  };
  const firstText = recipe.data.mixture.find((m) => m.source !== "synthetic");
  const haystackPath = recipe.data.corpus ?? firstText?.path;
  const firstTextColumns = recipe.data.corpus === undefined && firstText ? columnMapping(firstText) : undefined;
  const corpora: RecipeData["corpora"] = [];
  const sources = recipe.data.mixture.map((m, i): MixtureSource => {
    if (m.source === "synthetic") {
      if (!haystackPath) throw new EdgeInfError(`recipe ${recipe.name}: synthetic source ${i} needs haystack text`, "set data.corpus or add a text source");
      const corpus = read(haystackPath, firstTextColumns);
      corpora.push({ corpus, haystack: haystackPath });
      return { kind: "synthetic", name: `${i}:${m.task}`, weight: m.weight, task: taskId(m.task!), haystack: corpus.texts };
    }
    const columns = m.source === "text" ? undefined : columnMapping(m);
    const corpus = read(m.path!, columns);
    corpora.push({ corpus, ...(columns ? { columns } : {}) });
    return { kind: "text", name: `${i}:${m.path}`, weight: m.weight, texts: corpus.texts };
  });
  const heldoutColumns = columnMapping(recipe.data.heldout);
  return { sources, corpora, heldout: { corpus: read(recipe.data.heldout.path, heldoutColumns), ...(heldoutColumns ? { columns: heldoutColumns } : {}) } };
}

/** Training sequences per optimizer step. */
export const sequencesPerStep = (recipe: Recipe): number => recipe.training.batchSize * recipe.training.gradAccumulation;

/** Seed of the held-out sampler: apart from the training stream's. */
export const heldoutSeed = (recipe: Recipe): number => (recipe.seed + 0x5eed) >>> 0;

/**
 * Training sequences of sequenceLength + 1 tokens (inputs and shifted targets), reproducible from the recipe seed:
 * sequence i of step s is always the same, so a resumed run sees exactly the data an uninterrupted one would.
 */
export function buildSampler(recipe: Recipe, tokenizer: Tokenizer, data: RecipeData = loadRecipeData(recipe)): (step: number, index: number) => TrainingSequence {
  const perStep = sequencesPerStep(recipe);
  const sampler = new MixtureSampler({
    tokenizer,
    sequenceLength: recipe.data.sequenceLength + 1,
    seed: recipe.seed,
    sources: data.sources,
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

/** Fixed held-out sequences (from data.heldout.path), seeded apart from the training stream. */
export function buildHeldout(recipe: Recipe, tokenizer: Tokenizer, data: RecipeData = loadRecipeData(recipe)): TrainingSequence[] {
  const h = recipe.data.heldout;
  const sampler = new MixtureSampler({
    tokenizer,
    sequenceLength: (h.sequenceLength ?? recipe.data.sequenceLength) + 1,
    seed: heldoutSeed(recipe),
    sources: [{ kind: "text", name: "heldout", weight: 1, texts: data.heldout.corpus.texts }],
  });
  return sampler.take(h.sequences);
}

const bytesOf = (files: readonly ManifestSource[]) => files.reduce((a, f) => a + f.bytes, 0);

/**
 * The dataset manifest of a training run (written as dataset.manifest.json in the output folder): every file read
 * with its size and sha256, the mixture's weights and per-source sequence counts for the whole run, the sequence
 * length, the held-out set and the seed.
 */
export function datasetManifest(recipe: Recipe, data: RecipeData): DatasetManifest {
  const records = recipe.training.steps * sequencesPerStep(recipe);
  const totalWeight = recipe.data.mixture.reduce((a, m) => a + m.weight, 0);
  const counts = MixtureSampler.plan(
    recipe.data.mixture.map((m) => m.weight),
    recipe.seed,
    records,
  );
  const mixture = recipe.data.mixture.map((m, i): MixtureManifestEntry => {
    const { corpus, columns, haystack } = data.corpora[i]!;
    return {
      name: data.sources[i]!.name,
      source: m.source,
      weight: m.weight,
      share: m.weight / totalWeight,
      ...(m.path !== undefined ? { path: m.path } : {}),
      ...(m.task !== undefined ? { task: m.task } : {}),
      ...(columns ? { columns } : {}),
      ...(haystack !== undefined ? { haystack } : {}),
      documents: corpus.texts.length,
      bytes: bytesOf(corpus.sources),
      sequences: counts[i]!,
      files: corpus.sources,
    };
  });
  const h = recipe.data.heldout;
  const heldoutLength = h.sequenceLength ?? recipe.data.sequenceLength;
  const all = new Map<string, ManifestSource>();
  for (const f of [...mixture.flatMap((m) => m.files), ...data.heldout.corpus.sources]) all.set(f.path, f);
  return {
    name: recipe.name,
    sources: [...all.values()],
    seed: recipe.seed,
    records,
    tokens: records * (recipe.data.sequenceLength + 1),
    sequenceLength: recipe.data.sequenceLength,
    mixture,
    heldout: {
      path: h.path,
      ...(data.heldout.columns ? { columns: data.heldout.columns } : {}),
      sequences: h.sequences,
      sequenceLength: heldoutLength,
      seed: heldoutSeed(recipe),
      documents: data.heldout.corpus.texts.length,
      bytes: bytesOf(data.heldout.corpus.sources),
      files: data.heldout.corpus.sources,
    },
    createdAt: new Date().toISOString(),
  };
}
