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

/** Written next to generated data: what it was made from and how. */
export interface DatasetManifest {
  name: string;
  sources: ManifestSource[];
  /** Generator parameters (task, targetTokens, depths, ...), when the data is synthetic. */
  generator?: Record<string, unknown>;
  seed: number;
  records: number;
  tokens: number;
  createdAt: string;
}

const manifestSchema = z.object({
  name: z.string().min(1),
  sources: z.array(z.object({ path: z.string(), bytes: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) })),
  generator: z.record(z.string(), z.unknown()).optional(),
  seed: z.number().int(),
  records: z.number().int().nonnegative(),
  tokens: z.number().int().nonnegative(),
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
  const path = manifestPathFor(dataPath);
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
