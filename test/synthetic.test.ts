import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { Tokenizer } from "../src/tokenizers/tokenizer.js";
import { EdgeInfError } from "../src/util/errors.js";
import { TASK_NAMES, generateTask, splitSentences, type SyntheticRecord } from "../src/datasets/synthetic/index.js";
import { MixtureSampler } from "../src/datasets/mixture.js";
import { readLlama2cTokenizer } from "../src/tokenizers/llama2c-tokenizer.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const shared = path.resolve(repoRoot, "../shared");
const heldoutDir = path.join(shared, "corpora/gutenberg/heldout");
const edgeLmReadme = path.join(shared, "models/edge-lm/README.md");
const tok512 = path.join(shared, "models/stories260K/tok512.bin");

/** One token per character (BOS 1, EOS 2): token counts are string lengths. */
class CharTokenizer implements Tokenizer {
  readonly vocabSize = 0x110000 + 3;
  readonly bosId = 1;
  readonly eosId = 2;
  encode(text: string, options?: { bos?: boolean }): number[] {
    const ids = Array.from(text, (c) => c.codePointAt(0)! + 3);
    return options?.bos ? [this.bosId, ...ids] : ids;
  }
  decode(ids: readonly number[]): string {
    return ids.filter((id) => id > 2).map((id) => String.fromCodePoint(id - 3)).join("");
  }
}

/** One token per whitespace-prefixed word (and per trailing whitespace run), ids assigned on first sight. */
class WordTokenizer implements Tokenizer {
  readonly vocabSize = 1 << 30;
  readonly bosId = 1;
  readonly eosId = 2;
  private readonly ids = new Map<string, number>();
  private readonly words: string[] = ["<pad>", "<s>", "</s>"];
  encode(text: string, options?: { bos?: boolean }): number[] {
    const out = (text.match(/\s*\S+|\s+/g) ?? []).map((w) => {
      let id = this.ids.get(w);
      if (id === undefined) {
        id = this.words.length;
        this.words.push(w);
        this.ids.set(w, id);
      }
      return id;
    });
    return options?.bos ? [this.bosId, ...out] : out;
  }
  decode(ids: readonly number[]): string {
    return ids.filter((id) => id > 2).map((id) => this.words[id]!).join("");
  }
}

// A slice of the four held-out books (body only, after the licence header) keeps tests fast.
const corpus = readdirSync(heldoutDir)
  .sort()
  .map((f) => readFileSync(path.join(heldoutDir, f), "utf8").replace(/\r\n/g, "\n"))
  .map((t) => t.slice(t.indexOf("***", t.indexOf("START OF")) + 3).slice(5_000, 80_000));

const chars = new CharTokenizer();
const words = new WordTokenizer();

/** The formats in edge-lm's README, read from the README itself: the independent reference for the strings. */
function readmeFormats(): string[] {
  const text = readFileSync(edgeLmReadme, "utf8");
  const section = text.slice(text.indexOf("## Synthetic retrieval formats")).replace(/\n {2}/g, " ");
  return [...section.matchAll(/`([^`]*)`/g)].map((m) => m[1]!.replace(/\\n/g, "\n"));
}

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

function tolerance(target: number): number {
  return Math.max(16, 0.02 * target);
}

describe("synthetic tasks: formats", () => {
  const [intro, passNeedle, passQuery, passAnswer, kvNeedle, kvQuery, kvAnswer, magicNeedle, magicQuery, magicAnswer] =
    readmeFormats();

  it("reads ten format strings from the edge-lm README", () => {
    expect(intro).toMatch(/^ There is an important piece of information/);
    expect(passQuery!.startsWith("\n\n")).toBe(true);
    expect(magicAnswer).toBe(" {v}.");
  });

  it("passkey: intro, needle exactly once, query, answer as in the README", () => {
    const records = generateTask("passkey", { tokenizer: chars, corpus, targetTokens: 3000, count: 6, seed: 11 });
    for (const r of records) {
      const n = r.answers[0]!;
      expect(n).toMatch(/^[1-9]\d{2,6}$/);
      expect(r.context.startsWith(intro!)).toBe(true);
      const needle = passNeedle!.replaceAll("{n}", n);
      expect(count(r.context, needle)).toBe(1);
      // the number itself appears only inside the needle (twice there), never by chance in the prose
      expect(r.context.match(new RegExp(`(?<!\\d)${n}(?!\\d)`, "g"))).toHaveLength(2);
      expect(r.input).toBe(passQuery);
      expect(passAnswer!.replace("{n}", n)).toBe(` ${n}.`);
      expect(r.all_classes).toBeNull();
      expect(r.dataset).toBe("passkey");
    }
  });

  it("kv-retrieval: 2–8 distinct keys, the asked key's needle holds the answer", () => {
    const records = generateTask("kv-retrieval", { tokenizer: chars, corpus, targetTokens: 3000, count: 6, seed: 5 });
    const needleRe = new RegExp(
      kvNeedle!.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace("{adjective}-{animal}", "([a-z]+-[a-z]+)").replace("{v}", "(\\d+)"),
      "g",
    );
    for (const r of records) {
      const found = [...r.context.matchAll(needleRe)].map((m) => [m[1]!, m[2]!] as const);
      expect(found.length).toBeGreaterThanOrEqual(2);
      expect(found.length).toBeLessThanOrEqual(8);
      expect(new Set(found.map(([k]) => k)).size).toBe(found.length);
      const asked = /key '([a-z]+-[a-z]+)'/.exec(r.input)![1]!;
      expect(r.input).toBe(kvQuery!.replaceAll("{k}", asked));
      expect(found.find(([k]) => k === asked)![1]).toBe(r.answers[0]);
      expect(kvAnswer).toBe(" {v}.");
    }
  });

  it("needle and multi-needle: magic numbers for names, asked name's value is the answer", () => {
    const needleRe = new RegExp(
      magicNeedle!.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace("{Name}", "([A-Z][a-z]+)").replace("{v}", "(\\d+)"),
      "g",
    );
    for (const [task, lo, hi] of [["needle", 1, 1], ["multi-needle", 2, 4]] as const) {
      for (const r of generateTask(task, { tokenizer: chars, corpus, targetTokens: 3000, count: 5, seed: 8 })) {
        const found = [...r.context.matchAll(needleRe)].map((m) => [m[1]!, m[2]!] as const);
        expect(found.length).toBeGreaterThanOrEqual(lo);
        expect(found.length).toBeLessThanOrEqual(hi);
        const asked = /number for ([A-Z][a-z]+)\?/.exec(r.input)![1]!;
        expect(r.input).toBe(magicQuery!.replaceAll("{Name}", asked));
        expect(found.filter(([name]) => name === asked)).toEqual([[asked, r.answers[0]]]);
      }
    }
  });

  it("variable tracking: answers are exactly the variables that resolve to the asked value", () => {
    const records = generateTask("variable-tracking", {
      tokenizer: chars, corpus, targetTokens: 3000, count: 4, seed: 2, chains: 2, hops: 3,
    });
    for (const r of records) {
      const value = /assigned the value (\d+)\?/.exec(r.input)![1]!;
      // Resolve assignments in text order, independently of the generator.
      const env = new Map<string, string>();
      for (const m of r.context.matchAll(/ VAR ([A-Z]{5}) = (?:(\d+)|VAR ([A-Z]{5}))\./g)) {
        const resolved = m[2] ?? env.get(m[3]!);
        expect(resolved, `VAR ${m[3]} used before assignment`).toBeDefined();
        env.set(m[1]!, resolved!);
      }
      expect(env.size).toBe(8);
      const holders = [...env].filter(([, v]) => v === value).map(([k]) => k);
      expect(holders.sort()).toEqual([...r.answers].sort());
      expect(r.answers).toHaveLength(4);
    }
  });
});

describe("synthetic tasks: seeding, depth and length", () => {
  it("same seed gives identical records, another seed different ones", () => {
    for (const task of TASK_NAMES) {
      const opts = { tokenizer: chars, corpus, targetTokens: 1500, count: 3 };
      const a = generateTask(task, { ...opts, seed: 7 });
      const b = generateTask(task, { ...opts, seed: 7 });
      const c = generateTask(task, { ...opts, seed: 8 });
      expect(b).toEqual(a);
      expect(c.map((r) => r.context)).not.toEqual(a.map((r) => r.context));
      expect(new Set(a.map((r) => r._id)).size).toBe(3);
    }
  });

  it("places the passkey needle at the requested depth of the haystack", () => {
    const depths = [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1];
    const records = generateTask("passkey", { tokenizer: chars, corpus, targetTokens: 12_000, count: depths.length, seed: 3, depths, intro: false });
    records.forEach((r, i) => {
      const at = r.context.indexOf(" The pass key is");
      expect(Math.abs(at / r.context.length - depths[i]!)).toBeLessThan(0.04);
    });
  });

  it("spreads multi-needle needles evenly, the asked one at the depth", () => {
    const records = generateTask("multi-needle", { tokenizer: chars, corpus, targetTokens: 12_000, count: 3, seed: 4, depths: [0.2, 0.5, 0.8], needles: 4, intro: false });
    records.forEach((r, i) => {
      const positions = [...r.context.matchAll(/ The special magic number for (\w+) is/g)].map((m) => ({ name: m[1]!, at: m.index! / r.context.length }));
      expect(positions).toHaveLength(4);
      const asked = /number for (\w+)\?/.exec(r.input)![1]!;
      const depth = [0.2, 0.5, 0.8][i]!;
      expect(Math.abs(positions.find((p) => p.name === asked)!.at - depth)).toBeLessThan(0.04);
      const expected = [0, 1, 2, 3].map((j) => (depth + j / 4) % 1).sort((x, y) => x - y);
      positions.forEach((p, j) => expect(Math.abs(p.at - expected[j]!)).toBeLessThan(0.04));
    });
  });

  it("hits the token target (char and word tokenizers) and records the true length", () => {
    for (const tokenizer of [chars, words]) {
      for (const task of TASK_NAMES) {
        for (const target of [600, 2048]) {
          const records = generateTask(task, { tokenizer, corpus, targetTokens: target, count: 2, seed: 1 });
          for (const r of records) {
            // independent counts: characters, or whitespace-prefixed words
            const measured = tokenizer === chars ? (r.context + r.input).length : ((r.context + r.input).match(/\s*\S+|\s+/g) ?? []).length;
            expect(r.length).toBe(measured);
            expect(Math.abs(r.length - target)).toBeLessThanOrEqual(tolerance(target));
          }
        }
      }
    }
  });

  it("rejects bad options with one-line errors", () => {
    const base = { tokenizer: chars, corpus, targetTokens: 1000, count: 1, seed: 1 };
    expect(() => generateTask("passkeys", base)).toThrow(/unknown synthetic task "passkeys" \(tasks: passkey, needle/);
    expect(() => generateTask("passkey", { ...base, targetTokens: 20 })).toThrow(/below the \d+ tokens/);
    // recipe spelling with underscores maps to the hyphenated task and dataset name
    expect(generateTask("kv_retrieval", base)).toEqual(generateTask("kv-retrieval", base));
    expect(generateTask("kv_retrieval", base)[0]!.dataset).toBe("kv-retrieval");
    expect(() => generateTask("passkey", { ...base, depths: [1.5] })).toThrow(EdgeInfError);
    expect(() => generateTask("passkey", { ...base, digits: [0, 3] })).toThrow(/digits/);
    expect(() => generateTask("passkey", { ...base, corpus: ["   "] })).toThrow(/no sentences/);
    try {
      generateTask("kv-retrieval", { ...base, needles: 0 });
    } catch (e) {
      expect((e as Error).message.includes("\n")).toBe(false);
    }
  });

  it("splits sentences without breaking after Mr. or initials", () => {
    expect(splitSentences("Mr. Darcy bowed.  She smiled!\n“Yes,” said J. Smith. 12 men came?")).toEqual([
      "Mr. Darcy bowed.",
      "She smiled!",
      "“Yes,” said J. Smith.",
      "12 men came?",
    ]);
  });
});

describe("mixture sampler", () => {
  const sources = [
    { kind: "text" as const, name: "prose", weight: 0.7, texts: corpus },
    { kind: "synthetic" as const, name: "passkey", weight: 0.3, task: "passkey", haystack: corpus },
  ];

  it("yields exact-length sequences in the requested proportions, deterministically", () => {
    const a = new MixtureSampler({ tokenizer: chars, sequenceLength: 700, seed: 9, sources }).take(200);
    const b = new MixtureSampler({ tokenizer: chars, sequenceLength: 700, seed: 9, sources }).take(200);
    const c = new MixtureSampler({ tokenizer: chars, sequenceLength: 700, seed: 10, sources }).take(20);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a.slice(0, 20));
    for (const s of a) {
      expect(s.ids).toHaveLength(700);
      expect(s.ids[0]).toBe(chars.bosId);
    }
    const synthetic = a.filter((s) => s.source === "passkey").length / a.length;
    expect(Math.abs(synthetic - 0.3)).toBeLessThan(0.08);
  });

  it("text sequences are contiguous corpus text; synthetic ones end with the masked answer", () => {
    const sampled = new MixtureSampler({ tokenizer: chars, sequenceLength: 500, seed: 1, sources }).take(40);
    for (const s of sampled) {
      const text = chars.decode(s.ids);
      if (s.source === "prose") {
        expect(s.lossMask).toBeUndefined();
        // EOS separates documents; every piece between separators is a contiguous substring of one text
        const pieces: number[][] = [[]];
        for (const id of s.ids.slice(1)) {
          if (id === chars.eosId) pieces.push([]);
          else pieces[pieces.length - 1]!.push(id);
        }
        for (const piece of pieces.filter((p) => p.length > 0)) {
          const pieceText = chars.decode(piece);
          expect(corpus.some((t) => t.includes(pieceText))).toBe(true);
        }
      } else {
        const mask = s.lossMask!;
        expect(mask).toHaveLength(500);
        const key = /The pass key is (\d+)\./.exec(text)![1]!;
        const answer = chars.decode(s.ids.filter((_, i) => mask[i] === 1));
        expect(answer).toBe(` ${key}.`);
        expect(mask.slice(-answer.length).every((m) => m === 1)).toBe(true);
        expect(text.endsWith(`\n\nWhat is the pass key? The pass key is ${key}.`)).toBe(true);
      }
    }
  });

  it("rejects a bad mixture", () => {
    expect(() => new MixtureSampler({ tokenizer: chars, sequenceLength: 100, seed: 1, sources: [] })).toThrow(/no sources/);
    expect(() => new MixtureSampler({ tokenizer: chars, sequenceLength: 100, seed: 1, sources: [{ ...sources[0]!, weight: 0 }] })).toThrow(/weight 0/);
    expect(() => new MixtureSampler({ tokenizer: chars, sequenceLength: 100, seed: 1, sources: [{ ...sources[1]!, task: "nope" }] })).toThrow(/unknown synthetic task/);
  });
});

describe("with the real llama2.c tokenizer (stories260K tok512.bin)", () => {
  it.skipIf(!existsSync(tok512))("targets token lengths and builds exact training sequences", () => {
    const tok = readLlama2cTokenizer(tok512, 512);
    for (const task of TASK_NAMES) {
      const records: SyntheticRecord[] = generateTask(task, { tokenizer: tok, corpus, targetTokens: 1024, count: 2, seed: 21 });
      for (const r of records) {
        expect(r.length).toBe(tok.encode(r.context + r.input).length);
        expect(Math.abs(r.length - 1024)).toBeLessThanOrEqual(tolerance(1024));
      }
    }
    const sampler = new MixtureSampler({
      tokenizer: tok,
      sequenceLength: 512,
      seed: 2,
      sources: [{ kind: "synthetic", name: "kv", weight: 1, task: "kv-retrieval", haystack: corpus, needles: 3 }],
    });
    for (const s of sampler.take(4)) {
      expect(s.ids).toHaveLength(512);
      expect(s.ids[0]).toBe(tok.bosId);
      const text = tok.decode(s.ids);
      const key = /value of key '([a-z]+-[a-z]+)'\? /.exec(text)![1]!;
      const value = new RegExp(`The value of key '${key}' is (\\d+)\\.`).exec(text)![1]!;
      expect(tok.decode(s.ids.filter((_, i) => s.lossMask![i] === 1)).trim()).toBe(`${value}.`);
      expect(s.lossMask!.at(-1)).toBe(1);
    }
  });
});
