/**
 * RULER's frequent words extraction task, fwe (NVIDIA/RULER
 * scripts/data/synthetic/freq_words_extraction.py, Apache-2.0): a text of random 6-letter "coded"
 * words whose counts follow a Zipf law (rank k appears `int(numWords * k^-alpha / zeta(alpha))`
 * times, rank 1 being the noise word "..."), shuffled with RULER's seed; the answers are ranks 2-4.
 * The counts are computed, not sampled: RULER's numpy stream is seeded but not drawn from here.
 */
import { fail } from "../../util/errors.js";
import { permute, pyFormat, pySortedUnique, repeatToLength, RULER_RANDOM_SEED, type RulerRecord, type RulerTaskRandom } from "./common.js";

export interface RulerFweConfig {
  alpha: number;
  codedWordLength: number;
}

/** synthetic.yaml's fwe (alpha 2.0) with the script's default coded word length 6. */
export const RULER_FWE_CONFIG: RulerFweConfig = { alpha: 2.0, codedWordLength: 6 };

/** scripts/data/synthetic/constants.py TASKS["freq_words_extraction"] template and answer prefix, verbatim. */
export const RULER_FWE_TEMPLATE =
  "Read the following coded text and track the frequency of each coded word. Find the three most frequently appeared coded words. {context}\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What are the three most frequently appeared words in the above coded text?";
export const RULER_FWE_ANSWER_PREFIX = " Answer: According to the coded text above, the three most frequently appeared words are:";
const LOWERCASE = "abcdefghijklmnopqrstuvwxyz";
/** RULER's tokens_to_generate for fwe, which sys_kwext takes off max_seq_length before sizing the vocabulary. */
const FWE_TOKENS_TO_GENERATE = 50;

/** sys_kwext's vocabulary size when --vocab_size is not given: `(max_seq_length - tokens_to_generate) // 50`. */
export function rulerFweVocabSize(maxSeqLength: number): number {
  return Math.floor((maxSeqLength - FWE_TOKENS_TO_GENERATE) / 50);
}

/** scipy's `zeta(2.0)` (π²/6, the same double); other exponents are not RULER's and not offered. */
function zeta(alpha: number): number {
  if (alpha !== 2) fail(`RULER fwe: alpha ${alpha}`, "use RULER's alpha 2.0 (only zeta(2) = π²/6 is computed here)");
  return Math.PI ** 2 / 6;
}

/** The count of each vocabulary rank: numpy's `(num_words * k**-alpha / zeta(alpha)).astype(int)` in float64. */
export function rulerFweCounts(numWords: number, vocabSize: number, alpha: number): number[] {
  const z = zeta(alpha);
  return Array.from({ length: vocabSize }, (_, i) => Math.trunc((numWords * (i + 1) ** -alpha) / z));
}

/**
 * One fwe record of about `numWords` coded words (RULER fits `numWords` to the context with the
 * tokenizer; the builder takes it) over `vocabSize` coded words (rulerFweVocabSize).
 */
export function rulerFweRecord(numWords: number, vocabSize: number, random: RulerTaskRandom, config: RulerFweConfig = RULER_FWE_CONFIG): RulerRecord {
  if (vocabSize < 4) fail(`RULER fwe: a vocabulary of ${vocabSize} coded words`, "use a max_seq_length of at least 250 (vocabulary = (max_seq_length - 50) // 50)");
  const drawn = Array.from({ length: vocabSize }, () => random.choices(LOWERCASE, config.codedWordLength));
  while (new Set(drawn).size < vocabSize) drawn.push(random.choices(LOWERCASE, config.codedWordLength));
  const sorted = pySortedUnique(drawn);
  const vocab = permute(sorted, random.shufflePermutation(sorted.length, RULER_RANDOM_SEED));
  vocab[0] = "..."; // RULER: the top-ranked word is noise
  const counts = rulerFweCounts(numWords, vocab.length, config.alpha);
  const words = vocab.flatMap((word, i) => repeatToLength([word], counts[i]!));
  const text = permute(words, random.shufflePermutation(words.length, RULER_RANDOM_SEED)).join(" ");
  return { prompt: pyFormat(RULER_FWE_TEMPLATE + RULER_FWE_ANSWER_PREFIX, { context: text, query: "" }), answers: vocab.slice(1, 4) };
}
