/**
 * RULER's needle-in-a-haystack inputs (NVIDIA/RULER scripts/data/synthetic/niah.py, Apache-2.0),
 * built by the same rules as `generate_input_output` for the noise and needle haystacks: needles
 * "One of the special magic {type_needle_v} for {key} is: {value}.", inserted into the haystack
 * sentences at sampled indexes (largest first), sentences joined by newlines, the template
 * (prepare.py: base model template + answer prefix) made singular when one value is asked for.
 * All randomness goes through RulerRandom, so RULER's own draws can be replayed (the tests) or
 * ours generated from a seed.
 */

/** The random calls RULER's generator makes, in the order it makes them. */
export interface RulerRandom {
  /** `random.randint(low, high)`. */
  randint(low: number, high: number): number;
  /** `random.choice(words)`. */
  choice(words: readonly string[]): string;
  /** `random.getrandbits(128)`. */
  getrandbits128(): bigint;
  /** `random.sample(range(n), k)`. */
  sample(n: number, k: number): number[];
  /** `random.Random(seed).shuffle(items)`, as the permutation it applies (item i of the result = items[perm[i]]). */
  shufflePermutation(n: number, seed: number): number[];
}

export type RulerNeedleType = "numbers" | "words" | "uuids";

export interface RulerNiahConfig {
  typeHaystack: "noise" | "needle";
  typeNeedleK: RulerNeedleType;
  typeNeedleV: RulerNeedleType;
  numNeedleK: number;
  numNeedleV: number;
  numNeedleQ: number;
}

/**
 * RULER's synthetic.yaml NIAH tasks that need no essay file. niah_single_2/3, niah_multikey_1,
 * niah_multivalue and niah_multiquery use Paul Graham's essays split by nltk's sentence tokenizer,
 * which is not reproduced here.
 */
export const RULER_NIAH_TASKS: Readonly<Record<string, RulerNiahConfig>> = {
  niah_single_1: { typeHaystack: "noise", typeNeedleK: "words", typeNeedleV: "numbers", numNeedleK: 1, numNeedleV: 1, numNeedleQ: 1 },
  niah_multikey_2: { typeHaystack: "needle", typeNeedleK: "words", typeNeedleV: "numbers", numNeedleK: 1, numNeedleV: 1, numNeedleQ: 1 },
  niah_multikey_3: { typeHaystack: "needle", typeNeedleK: "uuids", typeNeedleV: "uuids", numNeedleK: 1, numNeedleV: 1, numNeedleQ: 1 },
};

/** scripts/data/synthetic/constants.py TASKS["niah"] template and answer prefix, verbatim. */
export const RULER_NIAH_TEMPLATE =
  "Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. I will quiz you about the {type_needle_v} afterwards.\n{context}\nWhat are all the special magic {type_needle_v} for {query} mentioned in the provided text?";
export const RULER_NIAH_ANSWER_PREFIX = " The special magic {type_needle_v} for {query} mentioned in the provided text are";
const NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}.";
const NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
/** niah.py seeds the needle shuffle with its --random_seed (default 42). */
const RULER_RANDOM_SEED = 42;

function fill(template: string, fields: Readonly<Record<string, string>>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => fields[name] ?? whole);
}

/** `str(uuid.UUID(int=bits, version=4))`: version nibble 4, variant 10xx, 8-4-4-4-12 hex. */
export function uuid4FromBits(bits: bigint): string {
  let value = bits & ~(0xc000n << 48n);
  value |= 0x8000n << 48n;
  value &= ~(0xf000n << 64n);
  value |= 4n << 76n;
  const hex = value.toString(16).padStart(32, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function randomNeedle(type: RulerNeedleType, random: RulerRandom, words: readonly string[]): string {
  if (type === "numbers") return String(random.randint(1_000_000, 9_999_999));
  if (type === "words") return random.choice(words);
  return uuid4FromBits(random.getrandbits128());
}

export interface RulerNiahRecord {
  /** What the model reads: RULER's `input` followed by its `answer_prefix`. */
  prompt: string;
  answers: string[];
}

/**
 * One RULER NIAH record with `numHaystack` haystack sentences. `words` is RULER's key list
 * (adjective-noun pairs from wonderwords); any list of words works for our own runs.
 */
export function rulerNiahRecord(config: RulerNiahConfig, numHaystack: number, random: RulerRandom, words: readonly string[]): RulerNiahRecord {
  const numNeedleK = Math.max(config.numNeedleK, config.numNeedleQ);
  const keys: string[] = [];
  const values: string[][] = [];
  let needles: string[] = [];
  for (let k = 0; k < numNeedleK; k++) {
    keys.push(randomNeedle(config.typeNeedleK, random, words));
    const value: string[] = [];
    for (let v = 0; v < config.numNeedleV; v++) {
      value.push(randomNeedle(config.typeNeedleV, random, words));
      needles.push(fill(NEEDLE, { type_needle_v: config.typeNeedleV, key: keys[keys.length - 1]!, value: value[value.length - 1]! }));
    }
    values.push(value);
  }
  const permutation = random.shufflePermutation(needles.length, RULER_RANDOM_SEED);
  needles = permutation.map((i) => needles[i]!);

  const sentences: string[] = [];
  for (let i = 0; i < numHaystack; i++) {
    sentences.push(
      config.typeHaystack === "noise"
        ? NOISE
        : fill(NEEDLE, { type_needle_v: config.typeNeedleV, key: randomNeedle(config.typeNeedleK, random, words), value: randomNeedle(config.typeNeedleV, random, words) }),
    );
  }
  const indexes = random.sample(numHaystack, needles.length).sort((a, b) => b - a);
  indexes.forEach((index, i) => sentences.splice(index, 0, needles[i]!));
  const context = sentences.join("\n");

  const picked = random.sample(numNeedleK, config.numNeedleQ);
  const queries = picked.map((i) => keys[i]!);
  const answers = picked.flatMap((i) => values[i]!);
  const query = queries.length > 1 ? `${queries.slice(0, -1).join(", ")}, and ${queries[queries.length - 1]!}` : queries[0]!;

  let template = RULER_NIAH_TEMPLATE + RULER_NIAH_ANSWER_PREFIX;
  let typeNeedleV: string = config.typeNeedleV;
  if (config.numNeedleQ * config.numNeedleV === 1) {
    // niah.py's str.replace rewrites, in its order (each replaces every occurrence).
    for (const [from, to] of [["Some", "A"], ["are all", "is"], ["are", "is"], ["answers", "answer"]] as const) template = template.split(from).join(to);
    typeNeedleV = typeNeedleV.slice(0, -1);
  }
  return { prompt: fill(template, { type_needle_v: typeNeedleV, context, query }), answers };
}
