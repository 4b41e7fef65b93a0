import type { Tokenizer } from "../../tokenizers/tokenizer.js";
import { fail } from "../../util/errors.js";
import { cumulativeSums, insertNeedles } from "./placement.js";
import type { TaskInstance } from "./types.js";

/**
 * Fitting a haystack to a token budget. A layout is intro + n whole sentences (needles inserted at their
 * depths) + `tail` (the first words of sentence n, so budgets are met to within a word) + query [+ completion].
 * Token counts are always measured on the whole string, since BPE counts of pieces do not add up exactly.
 */
export interface ComposeInput {
  tokenizer: Tokenizer;
  /** Haystack sentences with leading spaces, in order (an endless stream is fine). */
  sentences: Iterator<string>;
  intro: string;
  instance: TaskInstance;
}

interface Fit {
  sentenceCount: number;
  tail: string;
  tokens: number;
}

const MAX_FIT_ROUNDS = 40;

/** How many leading ids a and b share. */
export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

function commonSuffixLength(a: readonly number[], b: readonly number[], limit: number): number {
  let i = 0;
  while (i < limit && a[a.length - 1 - i] === b[b.length - 1 - i]) i++;
  return i;
}

class Layout {
  private readonly pool: string[] = [];
  private readonly poolTokens: number[] = [];
  private cumulative: number[] = [0];

  constructor(
    private readonly input: ComposeInput,
    /** Count BOS and append the completion (training sequences) or not (evaluation prompts). */
    private readonly training: boolean,
  ) {}

  /** Make sure sentence `index` exists in the pool. */
  sentence(index: number): string {
    while (this.pool.length <= index) {
      const next = this.input.sentences.next();
      if (next.done) fail("haystack ran out of sentences", "pass a larger corpus");
      this.pool.push(next.value);
      this.poolTokens.push(this.input.tokenizer.encode(next.value).length);
      this.cumulative.push(this.cumulative[this.cumulative.length - 1]! + this.poolTokens[this.poolTokens.length - 1]!);
    }
    return this.pool[index]!;
  }

  /** Estimated tokens of sentences [from, to). */
  estimate(from: number, to: number): number {
    this.sentence(to - 1 < 0 ? 0 : to - 1);
    return this.cumulative[to]! - this.cumulative[from]!;
  }

  context(sentenceCount: number, tail: string): string {
    if (sentenceCount > 0) this.sentence(sentenceCount - 1);
    const sentences = this.pool.slice(0, sentenceCount);
    return this.input.intro + insertNeedles(sentences, this.poolTokens, this.input.instance.needles) + tail;
  }

  text(sentenceCount: number, tail: string, withCompletion = this.training): string {
    const { query, completion } = this.input.instance;
    return this.context(sentenceCount, tail) + query + (withCompletion ? completion : "");
  }

  encode(sentenceCount: number, tail: string, withCompletion = this.training): number[] {
    return this.input.tokenizer.encode(this.text(sentenceCount, tail, withCompletion), { bos: this.training });
  }

  measure(sentenceCount: number, tail = ""): number {
    return this.encode(sentenceCount, tail).length;
  }

  /** Words of sentence `index`, each with its leading whitespace. */
  words(index: number): string[] {
    return this.sentence(index).match(/\s+\S+/g) ?? [];
  }

  /** The largest layout whose token count is ≤ budget: whole sentences first, then words of the next one. */
  fit(budget: number): Fit {
    const fixed = this.measure(0);
    if (fixed > budget) {
      fail(
        `target of ${budget} tokens is below the ${fixed} tokens the intro, needles and question need`,
        "raise targetTokens / sequenceLength or use fewer needles",
      );
    }
    // Jump by per-sentence estimates, then correct by measuring the whole text.
    let n = 0;
    let tokens = fixed;
    for (let round = 0; round < MAX_FIT_ROUNDS; round++) {
      if (tokens > budget) {
        if (n === 0) break;
        let k = 1;
        while (k < n && this.estimate(n - k, n) < tokens - budget) k++;
        n -= k;
      } else {
        let k = 0;
        while (this.estimate(n, n + k + 1) <= budget - tokens) k++;
        if (k === 0) break;
        n += k;
      }
      tokens = this.measure(n);
    }
    while (tokens > budget && n > 0) tokens = this.measure(--n);
    // Estimates can overshoot (e.g. a tokenizer that adds a prefix space per call): try whole sentences once more.
    for (let more = this.measure(n + 1); more <= budget; more = this.measure(n + 1)) {
      n++;
      tokens = more;
    }
    // Binary search on the number of words of sentence n that still fit.
    const words = this.words(n);
    let lo = 0;
    let hi = words.length;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (this.measure(n, words.slice(0, mid).join("")) <= budget) lo = mid;
      else hi = mid;
    }
    const tail = words.slice(0, lo).join("");
    return { sentenceCount: n, tail, tokens: lo === 0 ? tokens : this.measure(n, tail) };
  }

  /** Text after `fit`'s tail that is at least `minTokens` long: the rest of sentence n and the sentences after. */
  extension(fit: Fit, minTokens: number): string {
    let extra = this.sentence(fit.sentenceCount).slice(fit.tail.length);
    for (let i = fit.sentenceCount + 1; this.input.tokenizer.encode(extra).length < minTokens; i++) extra += this.sentence(i);
    return extra;
  }
}

/** Evaluation prompt: `context + query` has at most `targetTokens` tokens (no BOS), within about a word of it. */
export function composeRecordText(input: ComposeInput, targetTokens: number): { context: string; query: string; tokens: number } {
  const layout = new Layout(input, false);
  const fit = layout.fit(targetTokens);
  return { context: layout.context(fit.sentenceCount, fit.tail), query: input.instance.query, tokens: fit.tokens };
}

/**
 * Training sequence of exactly `sequenceLength` ids: BOS + intro + haystack + query + completion, the
 * completion ending at the last position. The haystack is cut at token level just before the query:
 * tokens of a longer layout F are kept up to where the shorter fitted layout G's query begins,
 * `lossMask` is 1 on the completion tokens.
 */
export function composeTrainingIds(
  input: ComposeInput,
  sequenceLength: number,
): { ids: number[]; lossMask: number[]; text: string } {
  const layout = new Layout(input, true);
  const fit = layout.fit(sequenceLength);
  const short = layout.encode(fit.sentenceCount, fit.tail);
  const prompt = layout.encode(fit.sentenceCount, fit.tail, false);
  const answerTokens = short.length - commonPrefixLength(short, prompt);
  let ids = short;
  let text = layout.text(fit.sentenceCount, fit.tail, false);
  if (short.length < sequenceLength) {
    let long: number[] = [];
    for (let minTokens = sequenceLength - short.length + 8; long.length < sequenceLength; minTokens *= 2) {
      const tail = fit.tail + layout.extension(fit, minTokens);
      long = layout.encode(fit.sentenceCount, tail);
      text = layout.text(fit.sentenceCount, tail, false);
    }
    const prefix = commonPrefixLength(long, short);
    const suffix = commonSuffixLength(long, short, short.length - prefix);
    if (suffix < answerTokens) {
      fail("tokenizer merges the answer with the text before it", "use a tokenizer whose answer tokens start at the space");
    }
    ids = [...long.slice(0, sequenceLength - suffix), ...long.slice(long.length - suffix)];
  }
  const lossMask = ids.map((_, i) => (i >= ids.length - answerTokens ? 1 : 0));
  // `text`: the prompt text the kept ids were cut from (a superset of them, no completion), for content checks.
  return { ids, lossMask, text };
}
