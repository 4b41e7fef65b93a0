import { PYTHON_PUNCTUATION, pySplitWhitespace } from "./python-str.js";

// LongBench metrics.py `normalize_answer` (SQuAD-style), ported from THUDM/LongBench (MIT).

const PUNCTUATION = new Set(Array.from(PYTHON_PUNCTUATION));

/**
 * Python `re.sub(r"\b(a|an|the)\b", " ", text)` on a `str`: Python's `\b` is Unicode-aware
 * (word characters are letters, numbers and `_`), JavaScript's is ASCII-only, hence the lookarounds.
 */
const ARTICLE = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;

/** Lower text, remove punctuation, remove articles, fix whitespace — in LongBench's order. */
export function normalizeAnswer(text: string): string {
  const lowered = text.toLowerCase();
  const withoutPunctuation = Array.from(lowered)
    .filter((ch) => !PUNCTUATION.has(ch))
    .join("");
  const withoutArticles = withoutPunctuation.replace(ARTICLE, " ");
  return pySplitWhitespace(withoutArticles).join(" ");
}
