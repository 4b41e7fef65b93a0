/**
 * What RULER's generators (NVIDIA/RULER scripts/data/synthetic/*.py, Apache-2.0) share: the random
 * calls they make (an interface, so RULER's own recorded draws can be replayed in tests and a
 * seeded generator used for our runs), Python's `str.format` for their templates, and
 * `sorted(set(...))`.
 */
import { pyCompare } from "../../eval/metrics/python-str.js";
import { fail } from "../../util/errors.js";
import { Rng } from "../../util/rng.js";

/** The random calls RULER's NIAH generator makes, in the order it makes them. */
export interface RulerRandom {
  /** `random.randint(low, high)`. */
  randint(low: number, high: number): number;
  /** `random.choice(words)`. */
  choice(words: readonly string[]): string;
  /** `random.getrandbits(128)`. */
  getrandbits128(): bigint;
  /** `random.sample(range(n), k)`; for `random.sample(items, k)` the indexes of the items picked. */
  sample(n: number, k: number): number[];
  /** `random.Random(seed).shuffle(items)`, as the permutation it applies (item i of the result = items[perm[i]]). */
  shufflePermutation(n: number, seed: number): number[];
}

/** RulerRandom plus the calls of variable_tracking.py (which also draws from numpy's stream) and freq_words_extraction.py. */
export interface RulerTaskRandom extends RulerRandom {
  /** `"".join(random.choices(letters, k=k))`. */
  choices(letters: string, k: number): string;
  /** `np.random.randint(low, high)`: numpy's global stream, `high` excluded. */
  numpyRandint(low: number, high: number): number;
}

/** One RULER record: what the model reads (RULER's `input` followed by its `answer_prefix`, base model template) and the answers. */
export interface RulerRecord {
  prompt: string;
  answers: string[];
}

/** The noise haystack sentence of niah.py and variable_tracking.py (the same string in both). */
export const RULER_NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

/** RULER seeds its `random.Random(seed).shuffle` calls with --random_seed, 42 unless changed. */
export const RULER_RANDOM_SEED = 42;

/**
 * Python's `template.format(**fields)` for RULER's templates (named fields only, no `{{`): one pass,
 * so braces inside the inserted text are left alone.
 */
export function pyFormat(template: string, fields: Readonly<Record<string, string | number>>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => (name in fields ? String(fields[name]) : whole));
}

/** Python `sorted(set(items))` for strings (code-point order). */
export function pySortedUnique(items: readonly string[]): string[] {
  return [...new Set(items)].sort(pyCompare);
}

/** The list a `shufflePermutation` result describes: item i = items[permutation[i]]. */
export function permute<T>(items: readonly T[], permutation: readonly number[]): T[] {
  return permutation.map((i) => items[i]!);
}

/** Python `list * n` followed by `[:length]`: the items repeated until `length` are taken. */
export function repeatToLength<T>(items: readonly T[], length: number): T[] {
  if (items.length === 0) return [];
  return Array.from({ length }, (_, i) => items[i % items.length]!);
}

/**
 * Our own RULER draws from a seed (mulberry32, src/util/rng.ts). The distributions are RULER's
 * (uniform integers, choices, samples without replacement, seeded shuffles), the streams are not
 * Python's or numpy's: the same seed does not give RULER's records.
 */
export function seededRulerRandom(seed: number): RulerTaskRandom {
  const rng = new Rng(seed);
  return {
    randint: (low, high) => rng.range(low, high),
    choice: (words) => (words.length > 0 ? rng.pick(words) : fail("RULER: choice from an empty word list", "pass a non-empty word list")),
    getrandbits128: () => {
      let bits = 0n;
      for (let i = 0; i < 4; i++) bits = (bits << 32n) | BigInt(Math.floor(rng.next() * 2 ** 32));
      return bits;
    },
    sample: (n, k) => sampleIndexes(rng, n, k),
    // A fixed permutation per (n, seed), as random.Random(seed).shuffle is.
    shufflePermutation: (n, shuffleSeed) => new Rng(shuffleSeed).shuffle(Array.from({ length: n }, (_, i) => i)),
    choices: (letters, k) => Array.from({ length: k }, () => letters[rng.int(letters.length)]!).join(""),
    numpyRandint: (low, high) => low + rng.int(high - low),
  };
}

/** k distinct indexes of range(n) in draw order: a partial Fisher–Yates that only stores the swapped slots. */
function sampleIndexes(rng: Rng, n: number, k: number): number[] {
  if (k < 0 || k > n) fail(`RULER: sample of ${k} from ${n} items`, "use a size at least as large as the number of items inserted");
  const swapped = new Map<number, number>();
  const at = (i: number): number => swapped.get(i) ?? i;
  const picked: number[] = [];
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(n - i);
    picked.push(at(j));
    swapped.set(j, at(i));
  }
  return picked;
}
