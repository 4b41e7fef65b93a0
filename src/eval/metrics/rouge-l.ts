import { pySplitWhitespace } from "./python-str.js";

/**
 * ROUGE-L (summary level) exactly as the Python `rouge` package 1.0.1 (pltrdy/rouge, Apache-2.0)
 * computes it with its defaults (`Rouge()`, `exclusive=True`), which is what LongBench calls.
 *
 * Quirks kept on purpose, because they change the numbers:
 * - sentences are the non-empty pieces of `text.split(".")`, each whitespace-normalised;
 * - `exclusive=True` makes word counts and the LCS union *sets* of distinct words, so
 *   `m`/`n` count distinct words and repeated words count once;
 * - the LCS is reconstructed with pltrdy's tie-breaking (prefer moving up only when the upper
 *   cell is strictly larger), which decides *which* words form the union;
 * - F = 2·P·R / (P + R + 1e-8), so a perfect match scores 0.999999995, not 1.
 */
export interface RougeLScores {
  f: number;
  p: number;
  r: number;
}

/** pltrdy `Rouge._get_avg_scores` sentence split: `[" ".join(s.split()) for s in text.split(".") if len(s) > 0]`. */
export function rougeSentences(text: string): string[] {
  return text
    .split(".")
    .filter((piece) => piece.length > 0)
    .map((piece) => pySplitWhitespace(piece).join(" "));
}

/** pltrdy `_split_into_words`: every sentence split on single spaces, flattened. */
function splitIntoWords(sentences: readonly string[]): string[] {
  return sentences.flatMap((sentence) => sentence.split(" "));
}

/**
 * pltrdy `_recon_lcs`: the words of one longest common subsequence of x and y, pltrdy's
 * tie-breaking, plus `reconCalls`, how many nested calls pltrdy's recursive `_recon` makes to find
 * them (one per step of the path, plus the final call at a table edge).
 */
export function reconLcs(x: readonly string[], y: readonly string[]): { words: string[]; reconCalls: number } {
  const rows = x.length + 1;
  const cols = y.length + 1;
  const table = new Uint32Array(rows * cols);
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      table[i * cols + j] =
        x[i - 1] === y[j - 1]
          ? table[(i - 1) * cols + (j - 1)]! + 1
          : Math.max(table[(i - 1) * cols + j]!, table[i * cols + (j - 1)]!);
    }
  }
  // Iterative form of pltrdy's recursive `_recon` (same path, no recursion limit).
  const words: string[] = [];
  let i = x.length;
  let j = y.length;
  let reconCalls = 1;
  while (i > 0 && j > 0) {
    reconCalls++;
    if (x[i - 1] === y[j - 1]) {
      words.push(x[i - 1]!);
      i--;
      j--;
    } else if (table[(i - 1) * cols + j]! > table[i * cols + (j - 1)]!) {
      i--;
    } else {
      j--;
    }
  }
  return { words: words.reverse(), reconCalls };
}


/**
 * ROUGE-L F/P/R of one hypothesis against one reference. Returns null where pltrdy raises
 * ("Hypothesis is empty." / "Collections must contain at least 1 sentence."): when either
 * text has no sentence, e.g. "" or "..."; and, when `maxReconCalls` is given, where its recursive
 * `_recon` would need more nested calls than that (Python's RecursionError).
 */
export function rougeLSummaryLevel(hypothesis: string, reference: string, maxReconCalls = Infinity): RougeLScores | null {
  const evaluatedSentences = rougeSentences(hypothesis);
  const referenceSentences = rougeSentences(reference);
  if (evaluatedSentences.length === 0 || referenceSentences.length === 0) return null;

  const m = new Set(splitIntoWords(referenceSentences)).size;
  const n = new Set(splitIntoWords(evaluatedSentences)).size;

  const union = new Set<string>();
  let llcs = 0;
  for (const referenceSentence of referenceSentences) {
    const previousCount = union.size;
    const referenceWords = referenceSentence.split(" ");
    for (const evaluatedSentence of evaluatedSentences) {
      const { words, reconCalls } = reconLcs(referenceWords, evaluatedSentence.split(" "));
      if (reconCalls > maxReconCalls) return null;
      for (const word of words) union.add(word);
    }
    llcs += union.size - previousCount;
  }

  const r = llcs / m;
  const p = llcs / n;
  const f = 2.0 * ((p * r) / (p + r + 1e-8));
  return { f, p, r };
}
