/**
 * RULER's common words extraction task, cwe (NVIDIA/RULER
 * scripts/data/synthetic/common_words_extraction.py, Apache-2.0): a numbered list of words in which
 * `numCw` common words repeat `freqCw` times and the others `freqUcw` times, after one worked example
 * (a shorter list with its answer); the answers are the common words.
 */
import { fail } from "../../util/errors.js";
import { permute, pyFormat, pySortedUnique, repeatToLength, RULER_RANDOM_SEED, type RulerRandom, type RulerRecord } from "./common.js";

export interface RulerCweConfig {
  freqCw: number;
  freqUcw: number;
  numCw: number;
  numFewshot: number;
}

/** synthetic.yaml's cwe (freq_cw 30, freq_ucw 3, num_cw 10) and the script's default one worked example. */
export const RULER_CWE_CONFIG: RulerCweConfig = { freqCw: 30, freqUcw: 3, numCw: 10, numFewshot: 1 };

/** scripts/data/synthetic/constants.py TASKS["common_words_extraction"] template and answer prefix, verbatim. */
export const RULER_CWE_TEMPLATE =
  "Below is a numbered list of words. In these words, some appear more often than others. Memorize the ones that appear most often.\n{context}\nQuestion: What are the 10 most common words in the above list?";
export const RULER_CWE_ANSWER_PREFIX = " Answer: The top 10 words that appear most often in the list are:";

/** The words cwe draws from. */
export interface RulerCweWords {
  /** The word pool, as rulerCweWordPool prepares it (RULER: wonderwords' nouns, adjectives and verbs). */
  words: readonly string[];
  /** Used when a list needs more words than `words` has (RULER: the values of json/english_words.json). */
  englishWords?: readonly string[];
}

/** RULER's pool: `sorted(set(words))` shuffled with `random.Random(42)`. Pass wonderwords' nouns + adjectives + verbs for RULER's. */
export function rulerCweWordPool(words: readonly string[], random: RulerRandom): string[] {
  const sorted = pySortedUnique(words);
  return permute(sorted, random.shufflePermutation(sorted.length, RULER_RANDOM_SEED));
}

const numbered = (words: readonly string[]): string => words.map((word, i) => `${i + 1}. ${word}`).join(" ");

/** get_example: `numWords` distinct words, the first `commonNums` repeated more often, shuffled with RULER's seed, numbered. */
function cweExample(numWords: number, commonRepeats: number, uncommonRepeats: number, commonNums: number, source: RulerCweWords, random: RulerRandom): { context: string; common: string[] } {
  const pool = numWords <= source.words.length ? source.words : source.englishWords;
  if (!pool || numWords > pool.length) {
    fail(`RULER cwe: a list of ${numWords} distinct words, the word lists have ${source.words.length} and ${source.englishWords?.length ?? 0}`, "ask for fewer words or pass RULER's english_words.json values as englishWords");
  }
  const full = random.sample(pool.length, numWords).map((i) => pool[i]!);
  const common = full.slice(0, commonNums);
  const uncommon = full.slice(commonNums);
  const list = [...repeatToLength(common, common.length * commonRepeats), ...repeatToLength(uncommon, uncommon.length * uncommonRepeats)];
  return { context: numbered(permute(list, random.shufflePermutation(list.length, RULER_RANDOM_SEED))), common };
}

/**
 * One cwe record with `numWords` distinct words. `maxSeqLength` is RULER's --max_seq_length: below
 * 4096 RULER uses shorter lists (example 20 words ×3/×1, task ×6/×1) instead of the configured ones
 * (example 40 words ×10/×3, task freqCw/freqUcw).
 */
export function rulerCweRecord(numWords: number, random: RulerRandom, words: RulerCweWords, maxSeqLength: number, config: RulerCweConfig = RULER_CWE_CONFIG): RulerRecord {
  const short = maxSeqLength < 4096;
  const template = RULER_CWE_TEMPLATE + RULER_CWE_ANSWER_PREFIX;
  const shots: string[] = [];
  for (let i = 0; i < config.numFewshot; i++) {
    const shot = short ? cweExample(20, 3, 1, config.numCw, words, random) : cweExample(40, 10, 3, config.numCw, words, random);
    shots.push(`${pyFormat(template, { num_cw: config.numCw, context: shot.context, query: "" })} ${numbered(shot.common)}`);
  }
  const task = short ? cweExample(numWords, 6, 1, config.numCw, words, random) : cweExample(numWords, config.freqCw, config.freqUcw, config.numCw, words, random);
  return { prompt: `${shots.join("\n")}\n${pyFormat(template, { num_cw: config.numCw, context: task.context, query: "" })}`, answers: task.common };
}
