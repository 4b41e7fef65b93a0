import type { Rng } from "../../util/rng.js";
import { fail } from "../../util/errors.js";

// A period after these words does not end a sentence ("Mr. Darcy").
const ABBREVIATIONS = new Set(["mr", "mrs", "ms", "dr", "st", "sr", "jr", "messrs", "mme", "mlle", "capt", "col", "gen", "lt", "rev", "prof", "vs", "etc", "no", "vol", "ch"]);

// Split after . ! ? (and closing quotes/brackets) when whitespace and a capital, digit or opening quote follow.
const SENTENCE_BREAK = /(?<=[.!?]["'\u201d\u2019)\]_]*)\s+(?=["'\u201c\u2018(\[_]*[A-Z0-9])/;

function endsWithAbbreviation(piece: string): boolean {
  const match = /(?:^|[\s"'(\u201c\u2018])([A-Za-z]+)\.$/.exec(piece);
  if (!match) return false;
  const word = match[1]!;
  return ABBREVIATIONS.has(word.toLowerCase()) || /^[A-Z]$/.test(word); // single initials: "J. Smith"
}

/** Sentences of prose, whitespace collapsed to single spaces (line wraps are not content). */
export function splitSentences(text: string): string[] {
  const flat = text.replace(/\s+/g, " ").trim();
  if (flat === "") return [];
  const sentences: string[] = [];
  for (const piece of flat.split(SENTENCE_BREAK)) {
    const last = sentences.length - 1;
    if (last >= 0 && endsWithAbbreviation(sentences[last]!)) sentences[last] += " " + piece;
    else sentences.push(piece);
  }
  return sentences;
}

/**
 * The haystack material: all sentences of a corpus. A haystack is a contiguous run of sentences that
 * starts at a seeded random sentence and continues into the next text (cyclically) when a text ends.
 */
export class HaystackSource {
  private readonly texts: string[][];
  private readonly totalSentences: number;

  constructor(corpus: readonly string[]) {
    this.texts = corpus.map(splitSentences).filter((s) => s.length > 0);
    this.totalSentences = this.texts.reduce((n, s) => n + s.length, 0);
    if (this.totalSentences === 0) fail("haystack corpus has no sentences", "pass at least one non-empty prose text");
  }

  get sentenceCount(): number {
    return this.totalSentences;
  }

  /** Endless sentences (each with a leading space) from a random start position, uniform over all sentences. */
  *sentencesFrom(rng: Rng): Generator<string> {
    let start = rng.int(this.totalSentences);
    let textIndex = 0;
    while (start >= this.texts[textIndex]!.length) start -= this.texts[textIndex++]!.length;
    for (let i = start; ; i++) {
      const text = this.texts[textIndex]!;
      if (i >= text.length) {
        textIndex = (textIndex + 1) % this.texts.length;
        i = -1;
        continue;
      }
      yield " " + text[i]!;
    }
  }
}
