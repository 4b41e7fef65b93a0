/**
 * nltk's Punkt sentence tokenizer (Kiss & Strunk 2006; nltk/tokenize/punkt.py), inference only: what
 * `PunktSentenceTokenizer(params).tokenize(text)` returns (realign_boundaries on), which is what RULER's
 * `sent_tokenize(text)` runs with nltk's English parameters. The parameters (abbreviations, collocations,
 * sentence starters, orthographic contexts) are learnt by nltk's PunktTrainer; loadPunktParameters reads them
 * from nltk_data's `tokenizers/punkt_tab/<language>/` folder.
 *
 * How a text is split, as nltk does it:
 *  1. candidates: every `.`, `?` or `!` followed by other punctuation or by whitespace and a token;
 *  2. for each, the word before it, the mark and what follows are word-tokenized and annotated: a first pass by
 *     type (sentence break, abbreviation, ellipsis) and a second pass by context (collocation, orthographic
 *     heuristic, frequent sentence starter, initials and numbers); the candidate is a break when a token that is
 *     not the context's last one ends a sentence;
 *  3. sentences are the slices between breaks (the last one right-stripped), and closing quotes or brackets after
 *     a break are moved to the sentence before it (realign_boundaries).
 *
 * Python's regex and `str` semantics are kept where they differ from JavaScript's: `\s` is `str.isspace()`,
 * `[^\W\d]` (a letter) is a Unicode letter, letter-number, other-number or `_`, `\d` is a decimal digit, and the
 * "last whitespace" search before a candidate uses `string.whitespace` (ASCII only) as nltk does. Indexes are UTF-16
 * units throughout (nltk's are code points): all arithmetic is relative, so the sentences are the same.
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { PY_WHITESPACE_CLASS, pyRstrip, pyStrip } from "../../eval/metrics/python-str.js";
import { fail } from "../../util/errors.js";
import { readTextFile } from "../../util/text-file.js";
import type { SentenceSplitter } from "./niah.js";

/** Orthographic context flags (nltk's _ORTHO_*): where a type was seen (sentence-initial, internal, unknown) and with which first-letter case. */
export const PUNKT_ORTHO = {
  BEG_UC: 1 << 1,
  MID_UC: 1 << 2,
  UNK_UC: 1 << 3,
  BEG_LC: 1 << 4,
  MID_LC: 1 << 5,
  UNK_LC: 1 << 6,
} as const;
const ORTHO_UC = PUNKT_ORTHO.BEG_UC | PUNKT_ORTHO.MID_UC | PUNKT_ORTHO.UNK_UC;
const ORTHO_LC = PUNKT_ORTHO.BEG_LC | PUNKT_ORTHO.MID_LC | PUNKT_ORTHO.UNK_LC;

/** nltk's PunktParameters: every type lower-cased, numbers as "##number##", abbreviations without their final period. */
export interface PunktParameters {
  /** Abbreviation types ("mr", "e.g"). */
  abbrevTypes: ReadonlySet<string>;
  /** Collocations: first type (a word that ended in a period, without it) → the types after which it is not a break. */
  collocations: ReadonlyMap<string, ReadonlySet<string>>;
  /** Types that frequently start a sentence. */
  sentStarters: ReadonlySet<string>;
  /** Type → PUNKT_ORTHO flags it was seen with; absent types have none. */
  orthoContext: ReadonlyMap<string, number>;
}

// --- PunktLanguageVars (English defaults) -----------------------------------------------------------------------

const WS = `[${PY_WHITESPACE_CLASS}]`;
const NOT_WS = `[^${PY_WHITESPACE_CLASS}]`;
/** Characters that cannot appear within words: `)";}]*:@'({[` and the sentence ends other than `.`. */
const NON_WORD = `[)";}\\]*:@'({\\[?!]`;
/** Hyphen runs and ellipses (`..`, `. . .`) are tokens of their own. */
const MULTI_CHAR = `(?:-{2,}|\\.{2,}|(?:\\.${WS}){2,}\\.)`;
/** What a word token cannot start with. */
const WORD_START = `[^("\`{\\[:;&#*@)}\\]\\-,]`;
const WORD_TOKEN = new RegExp(
  `${MULTI_CHAR}|(?=${WORD_START})${NOT_WS}+?(?=${WS}|$|${NON_WORD}|${MULTI_CHAR}|,(?=$|${WS}|${NON_WORD}|${MULTI_CHAR}))|${NOT_WS}`,
  "gu",
);
/** A possible sentence end; group 1 is nltk's after_tok (the punctuation, or whitespace and the next token), group 2 its next_tok. */
const PERIOD_CONTEXT = new RegExp(`[.?!](?=(${NON_WORD}|${WS}+(${NOT_WS}+)))`, "gu");
/**
 * nltk's re_boundary_realignment, matched at a sentence's start: closing quotes and brackets, then whitespace, `--`
 * or the end (its MULTILINE `$` also matches before a newline, which `\s+` already takes).
 */
const BOUNDARY_REALIGNMENT = new RegExp(`^["')\\]}]+?(?:${WS}+|(?=--)|$)`, "u");
const SENT_END_CHARS = new Set([".", "?", "!"]);
/** nltk's PunktSentenceTokenizer.PUNCTUATION: tokens that never start a sentence. */
const PUNCTUATION = new Set([";", ":", ",", ".", "!", "?"]);
/** Python's `string.whitespace`, which _get_last_whitespace_index uses. */
const ASCII_WHITESPACE = new Set([" ", "\t", "\n", "\r", "\u000b", "\u000c"]);

// --- PunktToken -------------------------------------------------------------------------------------------------

/** Python's `[^\W\d]` in a str pattern: word characters that are not decimal digits. */
const LETTER = "[\\p{L}\\p{Nl}\\p{No}_]";
const NUMERIC = /^-?[.,]?\p{Nd}[\p{Nd},.-]*\.?$/u;
const INITIAL = new RegExp(`^${LETTER}\\.$`, "u");
const ELLIPSIS = /^\.\.+$/;
const FIRST_UPPER = /^\p{Uppercase}/u;
const FIRST_LOWER = /^\p{Lowercase}/u;
const NUMBER_TYPE = "##number##";

/** A word token and its annotations (nltk's PunktToken; parastart/linestart only matter for training). */
interface Token {
  tok: string;
  /** Lower-cased, "##number##" for a number. */
  type: string;
  periodFinal: boolean;
  sentbreak: boolean;
  abbr: boolean;
  ellipsis: boolean;
}

function makeToken(tok: string): Token {
  const lower = tok.toLowerCase();
  return { tok, type: NUMERIC.test(lower) ? NUMBER_TYPE : lower, periodFinal: tok.endsWith("."), sentbreak: false, abbr: false, ellipsis: false };
}

function typeNoPeriod(token: Token): string {
  return token.type.length > 1 && token.type.endsWith(".") ? token.type.slice(0, -1) : token.type;
}

function typeNoSentperiod(token: Token): string {
  return token.sentbreak ? typeNoPeriod(token) : token.type;
}

/** nltk's _tokenize_words: each non-blank line ("\n"-separated) word-tokenized. */
function tokenizeWords(text: string): Token[] {
  const tokens: Token[] = [];
  for (const line of text.split("\n")) {
    if (pyStrip(line).length === 0) continue;
    for (const match of line.matchAll(WORD_TOKEN)) tokens.push(makeToken(match[0]));
  }
  return tokens;
}

// --- annotation -------------------------------------------------------------------------------------------------

/** First pass, by type alone: sentence-end marks break, ellipses are marked, a period-final word is an abbreviation or a break. */
function annotateFirstPass(token: Token, params: PunktParameters): void {
  const tok = token.tok;
  if (SENT_END_CHARS.has(tok)) token.sentbreak = true;
  else if (ELLIPSIS.test(tok)) token.ellipsis = true;
  else if (token.periodFinal && !tok.endsWith("..")) {
    const word = tok.slice(0, -1).toLowerCase();
    if (params.abbrevTypes.has(word) || params.abbrevTypes.has(word.split("-").at(-1)!)) token.abbr = true;
    else token.sentbreak = true;
  }
}

/** nltk's _ortho_heuristic: does the token start a sentence, by the cases its type was seen with? */
function orthoHeuristic(token: Token, params: PunktParameters): boolean | "unknown" {
  if (PUNCTUATION.has(token.tok)) return false;
  const context = params.orthoContext.get(typeNoSentperiod(token)) ?? 0;
  if (FIRST_UPPER.test(token.tok) && context & ORTHO_LC && !(context & PUNKT_ORTHO.MID_UC)) return true;
  if (FIRST_LOWER.test(token.tok) && (context & ORTHO_UC || !(context & PUNKT_ORTHO.BEG_LC))) return false;
  return "unknown";
}

/** Second pass over a period-final token and the next one: collocations, abbreviations before sentence starters, initials and numbers. */
function annotateSecondPass(token: Token, next: Token, params: PunktParameters): void {
  if (!token.periodFinal) return;
  const type = typeNoPeriod(token);
  const nextType = typeNoSentperiod(next);
  const isInitial = INITIAL.test(token.tok);

  if (params.collocations.get(type)?.has(nextType)) {
    token.sentbreak = false;
    token.abbr = true;
    return;
  }
  if ((token.abbr || token.ellipsis) && !isInitial) {
    if (orthoHeuristic(next, params) === true) {
      token.sentbreak = true;
      return;
    }
    if (FIRST_UPPER.test(next.tok) && params.sentStarters.has(nextType)) {
      token.sentbreak = true;
      return;
    }
  }
  if (isInitial || type === NUMBER_TYPE) {
    const startsSentence = orthoHeuristic(next, params);
    if (startsSentence === false) {
      token.sentbreak = false;
      token.abbr = true;
      return;
    }
    // An initial before a capitalized word never seen lower-cased ("J. Bach") is an abbreviation.
    if (startsSentence === "unknown" && isInitial && FIRST_UPPER.test(next.tok) && !((params.orthoContext.get(nextType) ?? 0) & ORTHO_LC)) {
      token.sentbreak = false;
      token.abbr = true;
    }
  }
}

/** nltk's text_contains_sentbreak: does a token other than the last one end a sentence? */
function containsSentbreak(context: string, params: PunktParameters): boolean {
  const tokens = tokenizeWords(context);
  for (const token of tokens) annotateFirstPass(token, params);
  // The second pass updates each token from the next one, left to right (nltk's generators interleave the same way).
  for (let i = 0; i + 1 < tokens.length; i++) {
    annotateSecondPass(tokens[i]!, tokens[i + 1]!, params);
    if (tokens[i]!.sentbreak) return true;
  }
  return false;
}

// --- slices -----------------------------------------------------------------------------------------------------

interface Candidate {
  /** End of the sentence-end mark. */
  end: number;
  /** Start of the next token when whitespace followed the mark (undefined when punctuation did). */
  nextTokenStart: number | undefined;
  /** The word before the mark, the mark and what follows: what decides the break. */
  context: string;
}

/** Index of the last `string.whitespace` character of text[from, to), relative to `from`; 0 when none (as nltk, which then cannot tell index 0 from none). */
function lastWhitespaceIndex(text: string, from: number, to: number): number {
  for (let i = to - 1; i >= from; i--) if (ASCII_WHITESPACE.has(text[i]!)) return i - from;
  return 0;
}

/**
 * nltk's _match_potential_end_contexts: each candidate with the word before it; a candidate whose word would
 * overlap the previous candidate's (as in "acting!!!") replaces it.
 */
function candidates(text: string): Candidate[] {
  const found: Candidate[] = [];
  let previous: RegExpExecArray | undefined;
  let previousStart = 0;
  let previousStop = 0;
  const take = (match: RegExpExecArray, wordStart: number, wordStop: number): void => {
    const afterToken = match[1]!;
    const nextToken = match[2];
    found.push({
      end: match.index + 1,
      nextTokenStart: nextToken ? match.index + 1 + afterToken.length - nextToken.length : undefined,
      context: text.slice(wordStart, wordStop) + match[0] + afterToken,
    });
  };
  for (const match of text.matchAll(PERIOD_CONTEXT)) {
    const lastSpace = lastWhitespaceIndex(text, previousStop, match.index);
    const wordStart = lastSpace ? lastSpace + previousStop + 1 : previousStart;
    if (previous && previousStop <= wordStart) take(previous, previousStart, previousStop);
    previous = match;
    previousStart = wordStart;
    previousStop = match.index;
  }
  if (previous) take(previous, previousStart, previousStop);
  return found;
}

/** nltk's _slices_from_text: [start, end) of each sentence before realignment. */
function slices(text: string, params: PunktParameters): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let lastBreak = 0;
  for (const candidate of candidates(text)) {
    if (!containsSentbreak(candidate.context, params)) continue;
    out.push([lastBreak, candidate.end]);
    lastBreak = candidate.nextTokenStart ?? candidate.end;
  }
  out.push([lastBreak, pyRstrip(text).length]);
  return out;
}

/** nltk's _realign_boundaries: closing quotes and brackets that open a sentence go to the one before. */
function realignBoundaries(text: string, spans: ReadonlyArray<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let realign = 0;
  for (let i = 0; i < spans.length; i++) {
    const start = spans[i]![0] + realign;
    const stop = spans[i]![1];
    const next = spans[i + 1];
    if (!next) {
      if (text.slice(start, stop).length > 0) out.push([start, stop]);
      continue;
    }
    const match = BOUNDARY_REALIGNMENT.exec(text.slice(next[0], next[1]));
    if (match) {
      out.push([start, next[0] + pyRstrip(match[0]).length]);
      realign = match[0].length;
    } else {
      realign = 0;
      if (text.slice(start, stop).length > 0) out.push([start, stop]);
    }
  }
  return out;
}

/** The [start, end) UTF-16 spans of `punktSentences(text, params)`. */
export function punktSpans(text: string, params: PunktParameters): Array<[number, number]> {
  return realignBoundaries(text, slices(text, params));
}

/** nltk's `PunktSentenceTokenizer(params).tokenize(text)`: the sentences of `text`, whitespace inside them kept. */
export function punktSentences(text: string, params: PunktParameters): string[] {
  return punktSpans(text, params).map(([start, end]) => text.slice(start, end));
}

/** A splitter for RULER's essay haystack: `sent_tokenize` with these parameters. */
export function punktSplitter(params: PunktParameters): SentenceSplitter {
  return (text) => punktSentences(text, params);
}

// --- punkt_tab ----------------------------------------------------------------------------------------------------

/** The four files of a punkt_tab language folder (nltk ≥ 3.8.2, nltk_data's tokenizers/punkt_tab/<language>/). */
export const PUNKT_TAB_FILES = ["abbrev_types.txt", "collocations.tab", "sent_starters.txt", "ortho_context.tab"] as const;

/** A punkt_tab file's lines: one entry a line (nltk writes them "\n"-joined), a trailing "\r" dropped, blank lines skipped. */
function readLines(dir: string, name: string): Array<{ line: string; number: number }> {
  return readTextFile(join(dir, name), "punkt_tab file")
    .split("\n")
    .map((line, i) => ({ line: line.endsWith("\r") ? line.slice(0, -1) : line, number: i + 1 }))
    .filter(({ line }) => line.length > 0);
}

function garbled(dir: string, name: string, number: number, expected: string): never {
  return fail(`punkt_tab file ${join(dir, name)} line ${number} is not ${expected}`, "pass an unchanged nltk_data tokenizers/punkt_tab/<language> folder");
}

/** One type a line (abbreviations, sentence starters). */
function readTypes(dir: string, name: string): Set<string> {
  return new Set(
    readLines(dir, name).map(({ line, number }) => (line.includes("\t") ? garbled(dir, name, number, "one type without tabs") : line)),
  );
}

/**
 * nltk's Punkt parameters from a punkt_tab language folder (e.g. nltk_data/tokenizers/punkt_tab/english):
 * abbrev_types.txt and sent_starters.txt hold a type a line, collocations.tab "first<TAB>second" a line,
 * ortho_context.tab "type<TAB>flags" a line. A missing folder or file, or a line of the wrong shape, is one error.
 */
export function loadPunktParameters(dir: string): PunktParameters {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) fail(`punkt folder ${dir} does not exist`, "pass nltk_data's tokenizers/punkt_tab/english folder");
  const missing = PUNKT_TAB_FILES.filter((name) => !existsSync(join(dir, name)));
  if (missing.length > 0) {
    const hint = existsSync(join(dir, "english")) ? `pass its language folder, ${join(dir, "english")}` : "pass nltk_data's tokenizers/punkt_tab/english folder";
    fail(`punkt folder ${dir} has no ${missing.join(", ")}`, hint);
  }
  const collocations = new Map<string, Set<string>>();
  for (const { line, number } of readLines(dir, "collocations.tab")) {
    const fields = line.split("\t");
    if (fields.length !== 2) garbled(dir, "collocations.tab", number, "two tab-separated types");
    const [first, second] = fields as [string, string];
    if (!collocations.has(first)) collocations.set(first, new Set());
    collocations.get(first)!.add(second);
  }
  const orthoContext = new Map<string, number>();
  for (const { line, number } of readLines(dir, "ortho_context.tab")) {
    const fields = line.split("\t");
    if (fields.length !== 2 || !/^\d+$/.test(fields[1]!)) garbled(dir, "ortho_context.tab", number, "a type, a tab and whole-number flags");
    orthoContext.set(fields[0]!, Number(fields[1]));
  }
  return { abbrevTypes: readTypes(dir, "abbrev_types.txt"), collocations, sentStarters: readTypes(dir, "sent_starters.txt"), orthoContext };
}
