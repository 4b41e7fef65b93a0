/**
 * Python `str` semantics that LongBench's metrics rely on. JavaScript's `\s`, `trim()` and
 * `\d` differ from Python 3 (e.g. `\s` includes U+FEFF, Python's `str.split()` also splits on
 * U+001C..U+001F and U+0085; Python's `\d`/`\w` are Unicode-aware), so the ports use these.
 */

/** Every code point for which Python 3's `str.isspace()` is true (also what `\s` matches in a Python `str` pattern), as the inside of a regex character class. */
export const PY_WHITESPACE_CLASS =
  "\\t\\n\\u000b\\u000c\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

const PY_WHITESPACE_RUN = new RegExp(`[${PY_WHITESPACE_CLASS}]+`, "u");
const PY_LEADING_WHITESPACE = new RegExp(`^[${PY_WHITESPACE_CLASS}]+`, "u");
const PY_TRAILING_WHITESPACE = new RegExp(`[${PY_WHITESPACE_CLASS}]+$`, "u");

const PY_WHITESPACE_RUNS = new RegExp(`[${PY_WHITESPACE_CLASS}]+`, "gu");

/** Python `re.sub(r"\s+", " ", text)` for a `str` pattern (`\s` is `str.isspace()` there). */
export function pyCollapseWhitespace(text: string): string {
  return text.replace(PY_WHITESPACE_RUNS, " ");
}

/**
 * Python's `str` ordering (by code point) as a sort comparator. JavaScript's default sort
 * compares UTF-16 code units, which puts astral characters (surrogate pairs) before U+E000..U+FFFF.
 */
export function pyCompare(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** Surrogates (astral code points) rank above U+E000..U+FFFF; code points order otherwise. */
function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  return unit >= 0xe000 ? unit - 0x800 : unit;
}

/** Python's `string.punctuation`. */
export const PYTHON_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/** Python `s.split()` (no separator): split on whitespace runs, drop empty strings. */
export function pySplitWhitespace(text: string): string[] {
  return text.split(PY_WHITESPACE_RUN).filter((part) => part.length > 0);
}

/** Python `s.strip()` (no argument). */
export function pyStrip(text: string): string {
  return text.replace(PY_LEADING_WHITESPACE, "").replace(PY_TRAILING_WHITESPACE, "");
}

const PY_WHITESPACE_CHAR = new RegExp(`^[${PY_WHITESPACE_CLASS}]$`, "u");

/** Python `s.rstrip()` (no argument); a loop from the end, so a long inner whitespace run costs nothing. */
export function pyRstrip(text: string): string {
  let end = text.length;
  while (end > 0 && PY_WHITESPACE_CHAR.test(text[end - 1]!)) end--;
  return text.slice(0, end);
}

/** Python `s.lstrip(chars)`: drop leading characters that are in `chars`. */
export function pyLstripChars(text: string, chars: string): string {
  const strip = new Set(Array.from(chars));
  const codePoints = Array.from(text);
  let start = 0;
  while (start < codePoints.length && strip.has(codePoints[start]!)) start++;
  return codePoints.slice(start).join("");
}

/** Python `re.findall(r"\d+", text)` for a `str` pattern: runs of Unicode decimal digits. */
export function pyFindDigitRuns(text: string): string[] {
  return text.match(/\p{Nd}+/gu) ?? [];
}

/** Python `text.lstrip('\n').split('\n')[0]` — the first-line rule of LongBench's scorer. */
export function firstLine(text: string): string {
  return pyLstripChars(text, "\n").split("\n")[0]!;
}
