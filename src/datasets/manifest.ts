import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, extname, join } from "node:path";
import { z } from "zod";
import { writeFileAtomic } from "../util/atomic.js";
import { fail } from "../util/errors.js";
import { type ColumnMapping } from "./column-mapping.js";
import { readCsv } from "./readers/csv.js";
import { readJsonl } from "./readers/jsonl.js";
import { listTextFiles, readTextFile } from "./readers/text.js";

/** A file a dataset was built from, with a content hash so a later run can tell whether it changed. */
export interface ManifestSource {
  path: string;
  bytes: number;
  sha256: string;
}

/** One source of a training mixture as a training run reads it (see `DatasetManifest.mixture`). */
export interface MixtureManifestEntry {
  /** The sampler's name for it: "INDEX:PATH" or "INDEX:TASK". */
  name: string;
  source: "text" | "jsonl" | "csv" | "synthetic";
  /** As given in the recipe, and as a share of the total weight. */
  weight: number;
  share: number;
  path?: string;
  task?: string;
  /** Column mapping of a JSONL/CSV source. */
  columns?: ColumnMapping;
  /** Synthetic sources: where the haystack text comes from. */
  haystack?: string;
  /** Documents read (texts of a file or folder, records of a JSONL/CSV, haystack texts of a synthetic source). */
  documents: number;
  /** Bytes of its files. */
  bytes: number;
  /** Sequences the run draws from it (exact: the source choice is replayed from the seed). */
  sequences: number;
  files: ManifestSource[];
}

/** Held-out data of a training run. */
export interface HeldoutManifest {
  path: string;
  columns?: ColumnMapping;
  sequences: number;
  /** Tokens per held-out sequence, inputs only (each sequence holds one more id: the last target). */
  sequenceLength: number;
  seed: number;
  documents: number;
  bytes: number;
  files: ManifestSource[];
}

/**
 * Written next to generated data (and by `edgeinf train` into the run folder as dataset.manifest.json): what it
 * was made from and how.
 */
export interface DatasetManifest {
  name: string;
  /** Every file read (for a training run: mixture and held-out files), with size and hash. */
  sources: ManifestSource[];
  /** Generator parameters (task, targetTokens, depths, ...), when the data is synthetic. */
  generator?: Record<string, unknown>;
  seed: number;
  /** Records (for a training run: training sequences of the whole run). */
  records: number;
  /** Token ids in those records. */
  tokens: number;
  /** Training runs: inputs per training sequence (each sequence holds sequenceLength + 1 ids). */
  sequenceLength?: number;
  /** Training runs: the mixture's sources, weights, sizes and per-source sequence counts. */
  mixture?: MixtureManifestEntry[];
  heldout?: HeldoutManifest;
  createdAt: string;
}

const sourceSchema = z.object({ path: z.string(), bytes: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) });
const mappingSchema = z.object({ text: z.union([z.string(), z.array(z.string())]) });
const count = z.number().int().nonnegative();

const manifestSchema = z.object({
  name: z.string().min(1),
  sources: z.array(sourceSchema),
  generator: z.record(z.string(), z.unknown()).optional(),
  seed: z.number().int(),
  records: count,
  tokens: count,
  sequenceLength: z.number().int().positive().optional(),
  mixture: z
    .array(
      z.object({
        name: z.string(),
        source: z.enum(["text", "jsonl", "csv", "synthetic"]),
        weight: z.number().positive(),
        share: z.number().min(0).max(1),
        path: z.string().optional(),
        task: z.string().optional(),
        columns: mappingSchema.optional(),
        haystack: z.string().optional(),
        documents: count,
        bytes: count,
        sequences: count,
        files: z.array(sourceSchema),
      }),
    )
    .optional(),
  heldout: z
    .object({
      path: z.string(),
      columns: mappingSchema.optional(),
      sequences: count,
      sequenceLength: z.number().int().positive(),
      seed: z.number().int(),
      documents: count,
      bytes: count,
      files: z.array(sourceSchema),
    })
    .optional(),
  createdAt: z.string().min(1),
});

/** Size and SHA-256 of one source file. */
export function describeSource(path: string): ManifestSource {
  if (!existsSync(path)) fail(`dataset source ${path} does not exist`, "check the path");
  const data = readFileSync(path);
  return { path, bytes: data.length, sha256: createHash("sha256").update(data).digest("hex") };
}

/** `data/passkey-2048.jsonl` → `data/passkey-2048.manifest.json`. */
export function manifestPathFor(dataPath: string): string {
  const name = basename(dataPath, extname(dataPath));
  return join(dirname(dataPath), `${name}.manifest.json`);
}

/** Write the manifest next to `dataPath` (atomically); returns the manifest's path. */
export function writeManifest(dataPath: string, manifest: DatasetManifest): string {
  return writeManifestFile(manifestPathFor(dataPath), manifest);
}

/** Write the manifest to exactly `path` (atomically: temp file, then rename); returns `path`. */
export function writeManifestFile(path: string, manifest: DatasetManifest): string {
  writeFileAtomic(path, JSON.stringify(manifest, null, 2) + "\n");
  return path;
}

export function readManifest(path: string): DatasetManifest {
  if (!existsSync(path)) fail(`manifest ${path} does not exist`, "generate the dataset first");
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    fail(`${path}: not valid JSON (${(e as Error).message})`, "regenerate the dataset");
  }
  const parsed = manifestSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    fail(`${path}: manifest field "${issue.path.join(".")}" ${issue.message}`, "regenerate the dataset");
  }
  return parsed.data;
}

/** Sources whose size or hash differ from the manifest (empty when the data is still current). */
export function changedSources(manifest: DatasetManifest): string[] {
  return manifest.sources
    .filter((s) => !existsSync(s.path) || (() => {
      const now = describeSource(s.path);
      return now.bytes !== s.bytes || now.sha256 !== s.sha256;
    })())
    .map((s) => s.path);
}

export interface Corpus {
  texts: string[];
  sources: ManifestSource[];
}

export interface LoadCorpusOptions {
  /** Column mapping for .jsonl / .csv files (default `{ text: "text" }`). */
  columns?: ColumnMapping;
  /** Strip Project Gutenberg header/footer from .txt files (default true). */
  stripBoilerplate?: boolean;
}

function readCorpusFile(path: string, opts: LoadCorpusOptions): string[] {
  const columns = opts.columns ?? { text: "text" };
  const ext = extname(path).toLowerCase();
  if (ext === ".jsonl") return readJsonl(path, columns);
  if (ext === ".csv") return readCsv(path, columns);
  if (ext === ".tsv") return readCsv(path, columns, { delimiter: "\t" });
  return [readTextFile(path, { stripBoilerplate: opts.stripBoilerplate })];
}

/**
 * Texts of a corpus: a .txt file, a folder of .txt files (sorted by name), or a .jsonl/.csv/.tsv file read
 * with a column mapping; plus the manifest entries of the files read.
 */
export function loadCorpus(pathOrDir: string, opts: LoadCorpusOptions = {}): Corpus {
  if (!existsSync(pathOrDir)) fail(`corpus ${pathOrDir} does not exist`, "check the path");
  const files = statSync(pathOrDir).isDirectory() ? listTextFiles(pathOrDir) : [pathOrDir];
  return {
    texts: files.flatMap((f) => readCorpusFile(f, opts)),
    sources: files.map(describeSource),
  };
}
