/** Public surface of the datasets module: readers, packing, manifests, mixtures and synthetic tasks. */
export { type ColumnMapping, parseColumnMapping, readColumnMapping, textColumns, COLUMN_JOINER } from "./column-mapping.js";
export { readTextFile, readTextSource, listTextFiles, stripGutenberg, normalizeNewlines, type TextDocument } from "./readers/text.js";
export { readJsonl } from "./readers/jsonl.js";
export { readCsv, type CsvOptions } from "./readers/csv.js";
export { packSequences, packStream, TokenPacker, type PackingOptions } from "./packing.js";
export {
  type DatasetManifest,
  type ManifestSource,
  type MixtureManifestEntry,
  type HeldoutManifest,
  type Corpus,
  type LoadCorpusOptions,
  describeSource,
  manifestPathFor,
  writeManifest,
  writeManifestFile,
  readManifest,
  changedSources,
  loadCorpus,
} from "./manifest.js";
export {
  MixtureSampler,
  chunkText,
  type TrainingSequence,
  type MixtureSource,
  type TextMixtureSource,
  type SyntheticMixtureSource,
  type MixtureOptions,
} from "./mixture.js";
export {
  generateTask,
  generateTrainingSequence,
  writeJsonl,
  writeSyntheticDataset,
  taskName,
  depthGrid,
  syntheticId,
  TASKS,
  TASK_NAMES,
  DEFAULT_DIGITS,
  type TaskName,
  type GenerateTaskOptions,
  type SyntheticRecord,
  type TaskInstance,
  type TaskParams,
  type Needle,
} from "./synthetic/index.js";
