import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { EdgeInfError } from "../src/util/errors.js";
import { Rng } from "../src/util/rng.js";
import { readTextFile, readTextSource, stripGutenberg } from "../src/datasets/readers/text.js";
import { readJsonl } from "../src/datasets/readers/jsonl.js";
import { readCsv } from "../src/datasets/readers/csv.js";
import { readColumnMapping } from "../src/datasets/column-mapping.js";
import { packSequences } from "../src/datasets/packing.js";
import { changedSources, loadCorpus, manifestPathFor, readManifest, writeManifest, writeManifestFile, type DatasetManifest } from "../src/datasets/manifest.js";
import { chunkText, MixtureSampler } from "../src/datasets/mixture.js";
import { writeJsonl } from "../src/datasets/synthetic/index.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const heldoutDir = path.resolve(repoRoot, "../shared/corpora/gutenberg/heldout");
const tmp = mkdtempSync(path.join(tmpdir(), "edgeinf-datasets-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function write(name: string, content: string): string {
  const file = path.join(tmp, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  return file;
}

/** The message of the EdgeInfError `fn` throws (fails the test when it throws nothing or something else). */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(EdgeInfError);
    const message = (e as Error).message;
    expect(message.includes("\n")).toBe(false);
    return message;
  }
  throw new Error("expected an EdgeInfError");
}

describe("text reader", () => {
  it("strips the Gutenberg header and footer of a real held-out book", () => {
    for (const book of ["Treasure_Island.txt", "White_Fang.txt", "Persuasion.txt"]) {
      const file = path.join(heldoutDir, book);
      const raw = readFileSync(file, "utf8");
      // Reference: the lines strictly between the START and END marker lines.
      const lines = raw.split(/\r?\n/);
      const start = lines.findIndex((l) => /^\*\*\* ?START OF TH(IS|E) PROJECT GUTENBERG/.test(l));
      const end = lines.findIndex((l) => /^\*\*\* ?END OF TH(IS|E) PROJECT GUTENBERG/.test(l));
      expect(start).toBeGreaterThan(0);
      expect(end).toBeGreaterThan(start);
      // minus the closing "End of ... Project Gutenberg ..." line and the opening credits paragraph
      let ref = lines.slice(start + 1, end);
      const endLine = ref.findLastIndex((l) => /^End of .*Project Gutenberg/i.test(l));
      if (endLine >= 0) ref = ref.slice(0, endLine);
      while (ref[0]?.trim() === "") ref.shift();
      if (/^(Produced by|Transcribed from)/.test(ref[0] ?? "")) ref = ref.slice(ref.findIndex((l) => l.trim() === ""));
      const expected = ref.join("\n").trim();
      const body = readTextFile(file);
      expect(body).toBe(expected);
      expect(body).not.toMatch(/Project Gutenberg|\r/i);
      expect(raw).toMatch(/Project Gutenberg/);
    }
  });

  it("leaves text without markers alone and reads a folder in name order", () => {
    expect(stripGutenberg("plain\r\ntext")).toBe("plain\ntext");
    write("folder/b.txt", "second");
    write("folder/a.txt", "*** START OF THE PROJECT GUTENBERG EBOOK X ***\nfirst\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\nlicence");
    write("folder/notes.md", "ignored");
    const docs = readTextSource(path.join(tmp, "folder"));
    expect(docs.map((d) => [path.basename(d.path), d.text])).toEqual([["a.txt", "first"], ["b.txt", "second"]]);
  });

  it("names the missing file", () => {
    expect(errorOf(() => readTextSource(path.join(tmp, "nope")))).toMatch(/text source .*nope does not exist/);
    write("empty-folder/x.md", "");
    expect(errorOf(() => readTextSource(path.join(tmp, "empty-folder")))).toMatch(/has no \.txt files/);
  });
});

describe("JSONL and CSV readers with a column mapping", () => {
  it("maps one column or joins several with a blank line", () => {
    const file = write("a.jsonl", ['{"title":"T1","body":"B1","n":3}', "", '{"title":"T2","body":"B2","n":null}'].join("\n"));
    expect(readJsonl(file, { text: "body" })).toEqual(["B1", "B2"]);
    expect(readJsonl(file, { text: ["title", "body"] })).toEqual(["T1\n\nB1", "T2\n\nB2"]);
    expect(readJsonl(file, { text: ["n"] })).toEqual(["3", ""]);
  });

  it("reports bad JSON and unknown columns with FILE:LINE", () => {
    const file = write("bad.jsonl", '{"text":"ok"}\n\n{"text": broken}\n');
    expect(errorOf(() => readJsonl(file, { text: "text" }))).toMatch(new RegExp(`bad\\.jsonl:3: not valid JSON`));
    const other = write("cols.jsonl", '{"text":"ok"}\n{"body":"x","id":1}\n');
    expect(errorOf(() => readJsonl(other, { text: "text" }))).toMatch(/cols\.jsonl:2: unknown column "text" \(columns: body, id\)/);
    const arr = write("arr.jsonl", "[1,2]\n");
    expect(errorOf(() => readJsonl(arr, { text: "text" }))).toMatch(/arr\.jsonl:1: expected a JSON object, got an array/);
    expect(errorOf(() => readJsonl(path.join(tmp, "missing.jsonl"), { text: "t" }))).toMatch(/missing\.jsonl does not exist/);
  });

  it("reads CSV with a header row, quoted fields with commas and newlines", () => {
    const file = write("a.csv", 'id,title,body\n1,"Hello, world","line one\nline two"\n\n2,T2,B2\n');
    expect(readCsv(file, { text: "body" })).toEqual(["line one\nline two", "B2"]);
    expect(readCsv(file, { text: ["title", "body"] })).toEqual(["Hello, world\n\nline one\nline two", "T2\n\nB2"]);
    const tsv = write("a.tsv", "text\tlabel\nx y\t1\n");
    expect(readCsv(tsv, { text: "text" }, { delimiter: "\t" })).toEqual(["x y"]);
  });

  it("reports an unknown CSV column (naming the columns) and a broken row by line", () => {
    const file = write("b.csv", "id,body\n1,x\n");
    expect(errorOf(() => readCsv(file, { text: "text" }))).toMatch(/b\.csv: unknown column "text" \(columns: id, body\)/);
    const headerOnly = write("h.csv", "id,body\n");
    expect(errorOf(() => readCsv(headerOnly, { text: "text" }))).toMatch(/unknown column "text"/);
    const ragged = write("c.csv", "id,body\n1,x\n2,y,extra\n");
    expect(errorOf(() => readCsv(ragged, { text: "body" }))).toMatch(/c\.csv:3: /);
    const quote = write("d.csv", 'id,body\n1,"open\n2,y\n');
    expect(errorOf(() => readCsv(quote, { text: "body" }))).toMatch(/d\.csv:\d+: .*[Qq]uote/);
  });

  it("loads the example column mapping shipped in datasets/examples", () => {
    const mapping = readColumnMapping(path.join(repoRoot, "datasets/examples/column-mapping.json"));
    const texts = readJsonl(path.join(repoRoot, "datasets/examples/sample.jsonl"), mapping);
    expect(texts.length).toBeGreaterThan(0);
    expect(texts[0]).toContain("\n\n");
    expect(readCsv(path.join(repoRoot, "datasets/examples/sample.csv"), mapping)).toEqual(texts);
    const bad = write("mapping.json", '{"txt":"x"}');
    expect(errorOf(() => readColumnMapping(bad))).toMatch(/mapping\.json: column mapping must be/);
  });
});

describe("packing", () => {
  /** Reference: flatten docs with a separator after each, cut into (L-1)-token bodies, prefix BOS. */
  function referencePack(docs: number[][], L: number, bos: number, sep: number): number[][] {
    const stream = docs.filter((d) => d.length > 0).flatMap((d) => [...d, sep]);
    const out: number[][] = [];
    for (let i = 0; i + (L - 1) <= stream.length; i += L - 1) out.push([bos, ...stream.slice(i, i + L - 1)]);
    return out;
  }

  it("cuts exact-length BOS-led sequences and loses only the remainder", () => {
    const rng = new Rng(4);
    const docs = Array.from({ length: 40 }, () => Array.from({ length: rng.range(0, 90) }, () => rng.range(10, 500)));
    for (const L of [2, 7, 64, 129]) {
      const seqs = packSequences(docs, { sequenceLength: L, bosId: 1, eosId: 2 });
      expect(seqs).toEqual(referencePack(docs, L, 1, 2));
      for (const s of seqs) {
        expect(s).toHaveLength(L);
        expect(s[0]).toBe(1);
      }
      const total = docs.filter((d) => d.length > 0).reduce((n, d) => n + d.length + 1, 0);
      expect(total - seqs.length * (L - 1)).toBeLessThan(L - 1);
      expect(total - seqs.length * (L - 1)).toBeGreaterThanOrEqual(0);
    }
  });

  it("keeps the remainder when asked, and uses BOS as separator without doubling it", () => {
    const docs = [[10, 11, 12], [13, 14], [15]];
    const kept = packSequences(docs, { sequenceLength: 4, bosId: 1, eosId: 2, dropRemainder: false });
    expect(kept).toEqual([[1, 10, 11, 12], [1, 2, 13, 14], [1, 2, 15, 2]]);
    const noEos = packSequences(docs, { sequenceLength: 4, bosId: 1, dropRemainder: false });
    // stream 10 11 12 BOS 13 14 BOS 15 BOS: a separator BOS that would follow the sequence's own BOS is skipped
    expect(noEos).toEqual([[1, 10, 11, 12], [1, 13, 14, 1], [1, 15, 1]]);
    expect(errorOf(() => packSequences(docs, { sequenceLength: 1, bosId: 1 }))).toMatch(/sequenceLength 1/);
  });
});

describe("chunked tokenisation of long texts", () => {
  it("splits at paragraph boundaries without losing text", () => {
    const paragraphs = Array.from({ length: 30 }, (_, i) => `Paragraph ${i} ` + "word ".repeat(i * 7));
    const text = paragraphs.join("\n\n");
    const chunks = chunkText(text, 200);
    expect(chunks.join("")).toBe(text);
    expect(chunks.length).toBeGreaterThan(5);
    for (const c of chunks) expect(c.length).toBeLessThanOrEqual(400);
  });
});

describe("manifest and corpus loading", () => {
  it("loads a corpus with sizes and SHA-256 of its files", () => {
    const corpus = loadCorpus(heldoutDir);
    expect(corpus.texts).toHaveLength(4);
    expect(corpus.sources.map((s) => path.basename(s.path))).toEqual([
      "Persuasion.txt", "The_Hound_of_the_Baskervilles.txt", "Treasure_Island.txt", "White_Fang.txt",
    ]);
    for (const source of corpus.sources) {
      const bytes = readFileSync(source.path);
      expect(source.bytes).toBe(bytes.length);
      expect(source.sha256).toBe(createHash("sha256").update(bytes).digest("hex"));
    }
    expect(corpus.texts.every((t) => !/Project Gutenberg/i.test(t))).toBe(true);
    const jsonl = write("corpus.jsonl", '{"body":"one"}\n{"body":"two"}\n');
    expect(loadCorpus(jsonl, { columns: { text: "body" } }).texts).toEqual(["one", "two"]);
  });

  it("writes data and manifest atomically side by side and reads the manifest back", () => {
    const data = path.join(tmp, "out/passkey-64.jsonl");
    const records = [{ input: "q", context: "c", answers: ["1"], all_classes: null, length: 2, _id: "a", dataset: "passkey" }];
    writeJsonl(data, records);
    expect(readFileSync(data, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l))).toEqual(records);
    const src = write("src.txt", "hello");
    const manifest: DatasetManifest = {
      name: "passkey-64",
      sources: [{ path: src, bytes: 5, sha256: createHash("sha256").update("hello").digest("hex") }],
      generator: { task: "passkey", targetTokens: 64 },
      seed: 3,
      records: 1,
      tokens: 2,
      createdAt: "2025-01-01T00:00:00.000Z",
    };
    const manifestPath = writeManifest(data, manifest);
    expect(manifestPath).toBe(path.join(tmp, "out/passkey-64.manifest.json"));
    expect(manifestPathFor(data)).toBe(manifestPath);
    expect(readManifest(manifestPath)).toEqual(manifest);
    expect(changedSources(manifest)).toEqual([]);
    writeFileSync(src, "hellO");
    expect(changedSources(manifest)).toEqual([src]);
    const broken = write("out/broken.manifest.json", JSON.stringify({ ...manifest, seed: "x" }));
    expect(errorOf(() => readManifest(broken))).toMatch(/broken\.manifest\.json: manifest field "seed"/);
    expect(existsSync(path.join(repoRoot, "datasets/examples/passkey-2048.manifest.json"))).toBe(true);
    expect(readManifest(path.join(repoRoot, "datasets/examples/passkey-2048.manifest.json")).name).toBe("passkey-2048");
  });
});

describe("mixture plans and training-run manifests", () => {
  /** A byte-level tokenizer (enough for packing; ids 0/1 are BOS/EOS). */
  const bytesTokenizer = {
    vocabSize: 258,
    bosId: 0,
    eosId: 1,
    encode: (text: string) => Array.from(Buffer.from(text, "utf8"), (b) => b + 2),
    decode: (ids: readonly number[]) => Buffer.from(ids.filter((i) => i > 1).map((i) => i - 2)).toString("utf8"),
  };

  it("MixtureSampler.plan counts the sources a sampler actually draws, without tokenising", () => {
    for (const [weights, seed] of [[[0.7, 0.2, 0.1], 5], [[1, 1], 123], [[3], 9], [[0.05, 0.9, 0.05], 0]] as [number[], number][]) {
      const sampler = new MixtureSampler({
        tokenizer: bytesTokenizer,
        sequenceLength: 16,
        seed,
        sources: weights.map((weight, i) => ({ kind: "text" as const, name: `s${i}`, weight, texts: [`source ${i} text `.repeat(20)] })),
      });
      const drawn = weights.map(() => 0);
      for (const s of sampler.take(300)) drawn[Number(s.source.slice(1))]!++;
      expect(MixtureSampler.plan(weights, seed, 300)).toEqual(drawn);
      // a prefix of the plan is the plan of the prefix
      const first = weights.map(() => 0);
      const again = new MixtureSampler({ ...sampler.opts });
      for (const s of again.take(37)) first[Number(s.source.slice(1))]!++;
      expect(MixtureSampler.plan(weights, seed, 37)).toEqual(first);
    }
  });

  it("a manifest with mixture and held-out sections round-trips through writeManifestFile / readManifest and is validated", () => {
    const src = write("run/src.txt", "some text");
    const file = { path: src, bytes: 9, sha256: createHash("sha256").update("some text").digest("hex") };
    const manifest: DatasetManifest = {
      name: "run",
      sources: [file],
      seed: 7,
      records: 8,
      tokens: 8 * 65,
      sequenceLength: 64,
      mixture: [
        { name: "0:src", source: "csv", weight: 2, share: 1, path: src, columns: { text: ["title", "body"] }, documents: 3, bytes: 9, sequences: 8, files: [file] },
      ],
      heldout: { path: src, sequences: 1, sequenceLength: 64, seed: 24276, documents: 1, bytes: 9, files: [file] },
      createdAt: "2026-01-01T00:00:00.000Z",
    };
    const out = path.join(tmp, "run/dataset.manifest.json");
    expect(writeManifestFile(out, manifest)).toBe(out);
    expect(readManifest(out)).toEqual(manifest);
    expect(readdirSync(path.dirname(out)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    const bad = write("run/bad.manifest.json", JSON.stringify({ ...manifest, mixture: [{ ...manifest.mixture![0], sequences: -1 }] }));
    expect(errorOf(() => readManifest(bad))).toMatch(/bad\.manifest\.json: manifest field "mixture\.0\.sequences"/);
  });
});
