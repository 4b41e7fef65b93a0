import { describe, expect, it, beforeAll } from "vitest";
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { readLlama2cTokenizer, type Llama2cTokenizer } from "../src/tokenizers/llama2c-tokenizer.js";
import { loadHuggingFaceTokenizer } from "../src/tokenizers/hf-tokenizer.js";
import type { Tokenizer } from "../src/tokenizers/tokenizer.js";
import { EdgeInfError } from "../src/util/errors.js";
import { Rng } from "../src/util/rng.js";

const repoRoot = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
const shared = resolve(repoRoot, "../shared");
const tokPath = join(shared, "models/stories260K/tok512.bin");
const edgeLm = join(shared, "models/edge-lm");

/** Asserts that `fn` throws a one-line EdgeInfError whose message contains every fragment. */
function expectOneLineError(fn: () => unknown, ...fragments: string[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(EdgeInfError);
  const msg = (caught as Error).message;
  expect(msg).not.toContain("\n");
  for (const f of fragments) expect(msg).toContain(f);
}

async function expectOneLineRejection(p: Promise<unknown>, ...fragments: string[]): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EdgeInfError);
  const msg = (err as Error).message;
  expect(msg).not.toContain("\n");
  for (const f of fragments) expect(msg).toContain(f);
}

/**
 * Independent reference: parses tokenizer.bin with Buffer methods and encodes with a literal transcription
 * of run.c's encode() — including BOS in the merge scan and the O(n²) rescan after every merge.
 */
function naiveReference(path: string, vocabSize: number) {
  const buf = readFileSync(path);
  const vocab: Buffer[] = [];
  const scores: number[] = [];
  let off = 4;
  for (let i = 0; i < vocabSize; i++) {
    scores.push(buf.readFloatLE(off));
    const len = buf.readInt32LE(off + 4);
    vocab.push(buf.subarray(off + 8, off + 8 + len));
    off += 8 + len;
  }
  // str_lookup: exact byte-string match (hex keys; the first entry wins on duplicates).
  const byHex = new Map<string, number>();
  vocab.forEach((v, i) => {
    if (!byHex.has(v.toString("hex"))) byHex.set(v.toString("hex"), i);
  });
  const strLookup = (bytes: Buffer): number => byHex.get(bytes.toString("hex")) ?? -1;
  const encode = (text: string, bos: boolean): number[] => {
    const tokens: number[] = [];
    if (bos) tokens.push(1);
    const bytes = Buffer.from(text, "utf8");
    if (bytes.length > 0) tokens.push(strLookup(Buffer.from(" ")));
    let start = 0;
    while (start < bytes.length) {
      // A codepoint: one leading byte plus up to three continuation bytes.
      let end = start + 1;
      while (end < bytes.length && (bytes[end]! & 0xc0) === 0x80 && end - start < 4) end++;
      const cp = bytes.subarray(start, end);
      const id = strLookup(cp);
      if (id !== -1) tokens.push(id);
      else for (const b of cp) tokens.push(b + 3);
      start = end;
    }
    for (;;) {
      let bestScore = -1e10;
      let bestId = -1;
      let bestIdx = -1;
      for (let i = 0; i < tokens.length - 1; i++) {
        const id = strLookup(Buffer.concat([vocab[tokens[i]!]!, vocab[tokens[i + 1]!]!]));
        if (id !== -1 && scores[id]! > bestScore) {
          bestScore = scores[id]!;
          bestId = id;
          bestIdx = i;
        }
      }
      if (bestIdx === -1) break;
      tokens.splice(bestIdx, 2, bestId);
    }
    return tokens;
  };
  return { vocab, encode };
}

describe("llama2.c tokenizer (tok512.bin)", () => {
  let tok: Llama2cTokenizer;
  let ref: ReturnType<typeof naiveReference>;
  beforeAll(() => {
    tok = readLlama2cTokenizer(tokPath, 512);
    ref = naiveReference(tokPath, 512);
  });

  it("reads 512 pieces with BOS 1 / EOS 2 and byte pieces at 3..258", () => {
    expect(tok.vocabSize).toBe(512);
    expect(tok.bosId).toBe(1);
    expect(tok.eosId).toBe(2);
    expect(tok.pieces[1]).toBe(ref.vocab[1]!.toString("latin1"));
    expect(tok.pieces[3 + 0x41]).toBe("<0x41>");
    expect(tok.pieces[258]).toBe("<0xFF>");
    // No piece extends the BOS piece, so adding BOS after merging (not before, as run.c does) changes nothing.
    expect(tok.pieces.filter((p, i) => i !== 1 && p.startsWith(tok.pieces[1]!))).toEqual([]);
  });

  it("matches a naive transcription of run.c encode() on prose and random strings", () => {
    const texts = [
      "Once upon a time",
      "Lily and Ben went to the park. They saw a big, red ball!",
      "  two leading spaces, tabs\tand\nnewlines\n",
      "naïve café — “quotes” and 😀 emoji",
      "",
      "a",
      // Repeated letters give equal-score pairs, where run.c merges the leftmost first.
      "aaaaaaa",
      "lllll oooooo eeeee",
      "     five spaces",
      "Zzzzzz... hmmmm",
    ];
    const heldout = join(shared, "corpora/gutenberg/heldout");
    const book = readFileSync(join(heldout, readdirSync(heldout).sort()[0]!), "utf8");
    for (let i = 0; i < 3; i++) texts.push(book.slice(20_000 + i * 5_000, 20_000 + i * 5_000 + 400));
    const rng = new Rng(7);
    const alphabet = [..."aaeellooss  ,.!?'\nTHEthe", "é", "ü", "中", "😀", "\u0000"];
    for (let i = 0; i < 20; i++) {
      texts.push(Array.from({ length: rng.range(1, 40) }, () => rng.pick(alphabet)).join(""));
    }
    for (const text of texts) {
      expect(tok.encode(text, { bos: true })).toEqual(ref.encode(text, true));
      expect(tok.encode(text)).toEqual(ref.encode(text, false));
    }
  });

  it("puts BOS first exactly once with bos: true and never with bos: false", () => {
    const withBos = tok.encode("Once upon a time", { bos: true });
    expect(withBos[0]).toBe(1);
    expect(withBos.filter((t) => t === 1)).toHaveLength(1);
    expect(tok.encode("Once upon a time")).not.toContain(1);
    expect(tok.encode("", { bos: true })).toEqual([1]);
    expect(tok.encode("")).toEqual([]);
  });

  it("falls back to UTF-8 bytes + 3 for characters outside the vocabulary", () => {
    const space = tok.lookup(" ")!;
    // tok512 holds "é" as a piece but not "ü" (C3 BC) or "😀" (F0 9F 98 80); no merges exist between byte pieces.
    expect(tok.lookup(Buffer.from("é").toString("latin1"))).toBe(485);
    expect(tok.encode("é")).toEqual([space, 485]);
    expect(tok.lookup(Buffer.from("ü").toString("latin1"))).toBeUndefined();
    expect(tok.encode("ü")).toEqual([space, 0xc3 + 3, 0xbc + 3]);
    expect(tok.encode("😀")).toEqual([space, 0xf0 + 3, 0x9f + 3, 0x98 + 3, 0x80 + 3]);
    expect(tok.decode(tok.encode("éü😀", { bos: true }))).toBe("éü😀");
  });

  it("round-trips text through encode(bos) and decode", () => {
    for (const text of ["Once upon a time, there was a little girl.", "naïve café 😀 中文", "x\ny  z", " leading space"]) {
      expect(tok.decode(tok.encode(text, { bos: true }))).toBe(text);
    }
  });

  it("decodes like run.c: strips the space after BOS only, skips BOS/EOS, turns <0xXX> into bytes", () => {
    const ids = tok.encode("Once upon", { bos: true });
    expect(tok.decode(ids)).toBe("Once upon");
    // Without BOS the dummy-prefix space stays (run.c only strips after token 1).
    expect(tok.decode(ids.slice(1))).toBe(" Once upon");
    expect(tok.decode([...ids, 2])).toBe("Once upon");
    expect(tok.decode([3 + 0x48, 3 + 0x69])).toBe("Hi");
    expectOneLineError(() => tok.decode([512]), "token id 512", "outside");
  });

  it("rejects a missing, truncated or oversized tokenizer file with one-line errors", () => {
    const dir = mkdtempSync(join(tmpdir(), "edgeinf-tok-"));
    expectOneLineError(() => readLlama2cTokenizer(join(dir, "nope.bin"), 512), join(dir, "nope.bin"), "does not exist");
    const full = readFileSync(tokPath);
    const cut = join(dir, "cut.bin");
    writeFileSync(cut, full.subarray(0, full.length - 10));
    expectOneLineError(() => readLlama2cTokenizer(cut, 512), cut, "truncated");
    const copy = join(dir, "tok.bin");
    copyFileSync(tokPath, copy);
    expectOneLineError(() => readLlama2cTokenizer(copy, 500), copy, "bytes after its 500 tokens");
  });
});

describe("Hugging Face tokenizer (edge-lm)", () => {
  interface RefPrompt {
    name: string;
    text: string;
    input_ids: number[];
    greedy32_ids: number[];
    greedy32_text: string;
  }
  let tok: Tokenizer;
  let prompts: RefPrompt[];
  beforeAll(async () => {
    tok = await loadHuggingFaceTokenizer(edgeLm);
    prompts = (JSON.parse(readFileSync(join(edgeLm, "reference.json"), "utf8")) as { prompts: RefPrompt[] }).prompts;
  });

  it("has the README's vocabulary and special ids", () => {
    expect(tok.vocabSize).toBe(8192);
    expect(tok.bosId).toBe(0);
    expect(tok.eosId).toBe(1);
  });

  it("reproduces transformers' input ids for all three reference prompts", () => {
    expect(prompts.map((p) => p.name)).toEqual(["short_prose", "passkey_1500", "heldout_prose_1900"]);
    for (const p of prompts) expect(tok.encode(p.text, { bos: true })).toEqual(p.input_ids);
  });

  it("has BOS exactly once with bos: true and not at all with bos: false", () => {
    for (const p of prompts) {
      const withBos = tok.encode(p.text, { bos: true });
      expect(withBos.filter((t) => t === 0)).toHaveLength(1);
      const without = tok.encode(p.text, { bos: false });
      expect(without).not.toContain(0);
      expect(without).toEqual(p.input_ids.slice(1));
    }
  });

  it("decodes greedy continuations to the reference text, skipping </s><s>", () => {
    const passkey = prompts.find((p) => p.name === "passkey_1500")!;
    // The passkey continuation contains "</s><s>" (ids 1, 0); transformers dropped them when decoding.
    expect(passkey.greedy32_ids.slice(5, 7)).toEqual([1, 0]);
    for (const p of prompts) expect(tok.decode(p.greedy32_ids)).toBe(p.greedy32_text);
    expect(tok.decode(tok.encode("Hello there.", { bos: true }))).toBe("Hello there.");
  });

  it("names the missing tokenizer.json in a one-line error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "edgeinf-hftok-"));
    await expectOneLineRejection(loadHuggingFaceTokenizer(dir), join(dir, "tokenizer.json"), "does not exist");
    writeFileSync(join(dir, "tokenizer.json"), "{ not json");
    await expectOneLineRejection(loadHuggingFaceTokenizer(dir), join(dir, "tokenizer.json"), "not valid JSON");
  });
});
