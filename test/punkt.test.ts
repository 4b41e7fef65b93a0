/**
 * Our Punkt sentence tokenizer against nltk's own: scripts/make-punkt-fixtures.py ran nltk's
 * PunktSentenceTokenizer (Debian's nltk 3.8) on two parameter sets stored in punkt_tab form (one trained by nltk's
 * PunktTrainer on a train-side Gutenberg book, one written by hand to take every decision of the second pass) and
 * recorded the sentences; loading the same folders and splitting the same texts must give them exactly.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { loadPunktParameters, PUNKT_ORTHO, PUNKT_TAB_FILES, punktSentences, punktSpans, type PunktParameters } from "../src/datasets/ruler/punkt.js";

interface Fixture {
  nltk: string;
  cases: Array<{ params: string; name: string; text: string; sentences: string[] }>;
  books: Array<{ params: string; file: string; count: number; sha256: string }>;
}
const dir = join(import.meta.dirname, "fixtures", "punkt");
const fixture = JSON.parse(readFileSync(join(dir, "sentences.json"), "utf8")) as Fixture;
const params: Record<string, PunktParameters> = {
  trained: loadPunktParameters(join(dir, "params", "trained")),
  handmade: loadPunktParameters(join(dir, "params", "handmade")),
};
const train = resolve(import.meta.dirname, "../../shared/corpora/gutenberg/train");

describe("Punkt equals nltk's PunktSentenceTokenizer", () => {
  it(`was recorded with nltk ${fixture.nltk} on non-trivial parameters`, () => {
    const trained = params.trained!;
    expect(trained.abbrevTypes.has("mr")).toBe(true);
    expect(trained.collocations.get("dr")?.has("watson")).toBe(true);
    expect(trained.sentStarters.size).toBeGreaterThan(5);
    expect(trained.orthoContext.size).toBeGreaterThan(5000);
    expect(fixture.cases.length).toBeGreaterThan(600);
  });

  for (const name of ["trained", "handmade"]) {
    it(`splits every text as nltk does (${name} parameters)`, () => {
      const mismatches: string[] = [];
      for (const c of fixture.cases.filter((c) => c.params === name)) {
        const ours = punktSentences(c.text, params[name]!);
        if (JSON.stringify(ours) !== JSON.stringify(c.sentences)) mismatches.push(`${c.name}: ${JSON.stringify(c.text).slice(0, 200)}\n  nltk ${JSON.stringify(c.sentences)}\n  ours ${JSON.stringify(ours)}`);
      }
      expect(mismatches).toEqual([]);
    });
  }

  for (const book of fixture.books) {
    it.runIf(existsSync(join(train, book.file)))(`splits all of ${book.file} as nltk does (${book.params}: ${book.count} sentences)`, () => {
      const sentences = punktSentences(readFileSync(join(train, book.file), "utf8"), params[book.params]!);
      expect(sentences.length).toBe(book.count);
      expect(createHash("sha256").update(sentences.join("\0"), "utf8").digest("hex")).toBe(book.sha256);
    });
  }

  it("gives spans into the text", () => {
    const text = 'Mr. Smith left. "Then?" he said.';
    expect(punktSpans(text, params.handmade!).map(([s, e]) => text.slice(s, e))).toEqual(punktSentences(text, params.handmade!));
  });
});

describe("Punkt's decisions (hand-written parameters)", () => {
  const none: PunktParameters = { abbrevTypes: new Set(), collocations: new Map(), sentStarters: new Set(), orthoContext: new Map() };
  it("breaks after every period-final word without parameters, keeps whitespace inside sentences, drops it between", () => {
    expect(punktSentences("Mr. Smith  left.\nThe end.  ", none)).toEqual(["Mr.", "Smith  left.", "The end."]);
  });
  it("an abbreviation does not break unless the orthographic context says the next word starts a sentence", () => {
    const p: PunktParameters = { ...none, abbrevTypes: new Set(["mr"]), orthoContext: new Map([["the", PUNKT_ORTHO.BEG_UC | PUNKT_ORTHO.MID_LC]]) };
    expect(punktSentences("Mr. Smith left. Ask Mr. The end.", p)).toEqual(["Mr. Smith left.", "Ask Mr.", "The end."]);
  });
  it("a collocation is never a break; an initial is one when the next word starts sentences", () => {
    const p: PunktParameters = { ...none, collocations: new Map([["s", new Set(["bach"])]]), orthoContext: new Map([["bach", PUNKT_ORTHO.BEG_UC | PUNKT_ORTHO.MID_LC]]) };
    expect(punktSentences("Johann S. Bach. R. Bach. J. Mozart.", p)).toEqual(["Johann S. Bach.", "R.", "Bach.", "J. Mozart."]);
  });
});

describe("loadPunktParameters", () => {
  const tmp = (): string => mkdtempSync(join(tmpdir(), "punkt-"));
  const writeFolder = (folder: string, files: Partial<Record<(typeof PUNKT_TAB_FILES)[number], string>>): string => {
    mkdirSync(folder, { recursive: true });
    for (const name of PUNKT_TAB_FILES) if (files[name] !== undefined) writeFileSync(join(folder, name), files[name]!);
    return folder;
  };
  const valid = { "abbrev_types.txt": "mr\r\ne.g\n", "collocations.tab": "s\tbach", "sent_starters.txt": "the\n\n", "ortho_context.tab": "the\t34\nsmith\t6\n" };

  it("reads the four files (\\n or \\r\\n lines, a final newline or none, blank lines skipped)", () => {
    const root = tmp();
    try {
      const p = loadPunktParameters(writeFolder(join(root, "english"), valid));
      expect([...p.abbrevTypes]).toEqual(["mr", "e.g"]);
      expect([...p.collocations.get("s")!]).toEqual(["bach"]);
      expect([...p.sentStarters]).toEqual(["the"]);
      expect([...p.orthoContext]).toEqual([["the", 34], ["smith", 6]]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("fails in one line on a missing folder or file and on a garbled line", () => {
    const root = tmp();
    try {
      expect(() => loadPunktParameters(join(root, "nowhere"))).toThrow(/punkt folder .*nowhere does not exist — pass nltk_data's tokenizers\/punkt_tab\/english folder/);
      writeFolder(join(root, "english"), valid);
      expect(() => loadPunktParameters(root)).toThrow(/has no abbrev_types.txt, collocations.tab, sent_starters.txt, ortho_context.tab — pass its language folder, .*english/);
      const partial = writeFolder(join(root, "partial"), { ...valid, "ortho_context.tab": undefined });
      expect(() => loadPunktParameters(partial)).toThrow(/has no ortho_context.tab$|has no ortho_context.tab —/);
      const badOrtho = writeFolder(join(root, "bad-ortho"), { ...valid, "ortho_context.tab": "the\t34\nsmith six\n" });
      expect(() => loadPunktParameters(badOrtho)).toThrow(/ortho_context.tab line 2 is not a type, a tab and whole-number flags/);
      const badColloc = writeFolder(join(root, "bad-colloc"), { ...valid, "collocations.tab": "s\tbach\textra" });
      expect(() => loadPunktParameters(badColloc)).toThrow(/collocations.tab line 1 is not two tab-separated types/);
      const badAbbrev = writeFolder(join(root, "bad-abbrev"), { ...valid, "abbrev_types.txt": "mr\tmrs" });
      expect(() => loadPunktParameters(badAbbrev)).toThrow(/abbrev_types.txt line 1 is not one type without tabs/);
      for (const message of [() => loadPunktParameters(badOrtho), () => loadPunktParameters(root)]) expect(message).toThrow(/^[^\n]+$/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
