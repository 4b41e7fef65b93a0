/**
 * RULER's needle-in-a-haystack inputs (NVIDIA/RULER scripts/data/synthetic/niah.py, Apache-2.0),
 * built by the same rules as `generate_input_output` for the noise, needle and essay haystacks:
 * needles "One of the special magic {type_needle_v} for {key} is: {value}.", inserted into the
 * haystack sentences at sampled indexes (largest first, sentences joined by newlines) or, for the
 * essay, between its sentences at sampled depths; the template (prepare.py: base model template +
 * answer prefix) made singular when one value is asked for. All randomness goes through
 * RulerRandom, so RULER's own draws can be replayed (the tests) or ours generated from a seed.
 */
import { pyCollapseWhitespace, pySplitWhitespace, pyStrip } from "../../eval/metrics/python-str.js";
import { fail } from "../../util/errors.js";
import { permute, pyFormat, repeatToLength, RULER_NOISE, RULER_RANDOM_SEED, type RulerRandom, type RulerRecord } from "./common.js";

export type { RulerRandom } from "./common.js";

export type RulerNeedleType = "numbers" | "words" | "uuids";

export interface RulerNiahConfig {
  typeHaystack: "noise" | "needle" | "essay";
  typeNeedleK: RulerNeedleType;
  typeNeedleV: RulerNeedleType;
  numNeedleK: number;
  numNeedleV: number;
  numNeedleQ: number;
}

/** RULER's synthetic.yaml NIAH tasks that need no essay file (rulerNiahRecord builds them). */
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
const fill = pyFormat;

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

/** What the model reads (RULER's `input` followed by its `answer_prefix`) and the answers. */
export type RulerNiahRecord = RulerRecord;

interface Needles {
  keys: string[];
  values: string[][];
  /** The needle sentences after RULER's seeded shuffle. */
  needles: string[];
}

/** Keys, values and needle sentences, drawn in niah.py's order, shuffled with its seed. */
function drawNeedles(config: RulerNiahConfig, random: RulerRandom, words: readonly string[]): Needles {
  const numNeedleK = Math.max(config.numNeedleK, config.numNeedleQ);
  const keys: string[] = [];
  const values: string[][] = [];
  const needles: string[] = [];
  for (let k = 0; k < numNeedleK; k++) {
    keys.push(randomNeedle(config.typeNeedleK, random, words));
    const value: string[] = [];
    for (let v = 0; v < config.numNeedleV; v++) {
      value.push(randomNeedle(config.typeNeedleV, random, words));
      needles.push(fill(NEEDLE, { type_needle_v: config.typeNeedleV, key: keys[keys.length - 1]!, value: value[value.length - 1]! }));
    }
    values.push(value);
  }
  return { keys, values, needles: permute(needles, random.shufflePermutation(needles.length, RULER_RANDOM_SEED)) };
}

/** The query keys sampled, the prompt (template made singular for one value) and the answers. */
function askNeedles(config: RulerNiahConfig, drawn: Needles, context: string, random: RulerRandom): RulerNiahRecord {
  const picked = random.sample(drawn.keys.length, config.numNeedleQ);
  const queries = picked.map((i) => drawn.keys[i]!);
  const answers = picked.flatMap((i) => drawn.values[i]!);
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

/**
 * One RULER NIAH record with `numHaystack` haystack sentences (noise or needle haystack). `words`
 * is RULER's key list (adjective-noun pairs from wonderwords); any list of words works for our own
 * runs. Essay haystacks: rulerNiahEssayRecord.
 */
export function rulerNiahRecord(config: RulerNiahConfig, numHaystack: number, random: RulerRandom, words: readonly string[]): RulerNiahRecord {
  if (config.typeHaystack === "essay") fail("RULER NIAH: the essay haystack needs the essay text", "use rulerNiahEssayRecord");
  const drawn = drawNeedles(config, random, words);
  const sentences: string[] = [];
  for (let i = 0; i < numHaystack; i++) {
    sentences.push(
      config.typeHaystack === "noise"
        ? RULER_NOISE
        : fill(NEEDLE, { type_needle_v: config.typeNeedleV, key: randomNeedle(config.typeNeedleK, random, words), value: randomNeedle(config.typeNeedleV, random, words) }),
    );
  }
  const indexes = random.sample(numHaystack, drawn.needles.length).sort((a, b) => b - a);
  indexes.forEach((index, i) => sentences.splice(index, 0, drawn.needles[i]!));
  return askNeedles(config, drawn, sentences.join("\n"), random);
}

/** RULER's essay-haystack NIAH tasks of synthetic.yaml (rulerNiahEssayRecord builds them). */
export const RULER_NIAH_ESSAY_TASKS: Readonly<Record<string, RulerNiahConfig>> = {
  niah_single_2: { typeHaystack: "essay", typeNeedleK: "words", typeNeedleV: "numbers", numNeedleK: 1, numNeedleV: 1, numNeedleQ: 1 },
  niah_single_3: { typeHaystack: "essay", typeNeedleK: "words", typeNeedleV: "uuids", numNeedleK: 1, numNeedleV: 1, numNeedleQ: 1 },
  niah_multikey_1: { typeHaystack: "essay", typeNeedleK: "words", typeNeedleV: "numbers", numNeedleK: 4, numNeedleV: 1, numNeedleQ: 1 },
  niah_multivalue: { typeHaystack: "essay", typeNeedleK: "words", typeNeedleV: "numbers", numNeedleK: 1, numNeedleV: 4, numNeedleQ: 1 },
  niah_multiquery: { typeHaystack: "essay", typeNeedleK: "words", typeNeedleV: "numbers", numNeedleK: 1, numNeedleV: 1, numNeedleQ: 4 },
};

/** niah.py's DEPTHS, `np.round(np.linspace(0, 100, num=40)).astype(int)`: the percent depths a needle may go to. */
export const RULER_DEPTHS: readonly number[] = Array.from({ length: 40 }, (_, i) => Math.round((100 * i) / 39));

/** Splits text into sentences (RULER uses nltk's punkt `sent_tokenize`; punktSplitter in punkt.ts is that, given punkt's parameters). */
export type SentenceSplitter = (text: string) => string[];

const SENTENCE_END = /[.!?]["'\u201d\u2019)\]]*$/;

/**
 * Our default stand-in for nltk's punkt `sent_tokenize` (whose model is not shipped here): a
 * sentence ends with a word that ends in `.`, `!` or `?` (closing quotes or brackets may follow);
 * words are rejoined with single spaces, as the essay haystack has no other whitespace. Unlike
 * punkt it splits after abbreviations ("Mr.", "e.g."), so sentence boundaries, and with them the
 * needle positions, can differ from RULER's; pass punktSplitter (punkt.ts) with nltk's English
 * parameters as `splitSentences` for those.
 */
export function rulerSplitSentences(text: string): string[] {
  const sentences: string[] = [];
  let current: string[] = [];
  for (const word of pySplitWhitespace(text)) {
    current.push(word);
    if (SENTENCE_END.test(word)) {
      sentences.push(current.join(" "));
      current = [];
    }
  }
  if (current.length > 0) sentences.push(current.join(" "));
  return sentences;
}

/** The first `numWords` words of the essay (`re.sub(r"\s+", " ", essay).split(" ")`), repeated when it is shorter. */
export function rulerEssayWords(essay: string, numWords: number): string[] {
  return repeatToLength(pyCollapseWhitespace(essay).split(" "), numWords);
}

/**
 * Needles put between the essay's sentences: one sampled depth per needle (sorted), each cut at
 * `int(len(sentences) * depth / 100)`, pieces and needles joined by spaces (niah.py's essay branch;
 * variable_tracking.py's is the same with chain lines).
 */
export function insertAtDepths(sentences: readonly string[], inserts: readonly string[], random: RulerRandom): string {
  const depths = random.sample(RULER_DEPTHS.length, inserts.length).map((i) => RULER_DEPTHS[i]!);
  const cuts = [0, ...depths.map((depth) => Math.trunc(sentences.length * (depth / 100))).sort((a, b) => a - b), sentences.length];
  const pieces: string[] = [];
  for (let i = 1; i < cuts.length; i++) {
    pieces.push(sentences.slice(cuts[i - 1], cuts[i]).join(" "));
    if (i - 1 < inserts.length) pieces.push(inserts[i - 1]!);
  }
  return pieces.join(" ");
}

/**
 * One RULER NIAH record on the essay haystack: the first `numHaystack` words of `essay` (Paul
 * Graham's essays in RULER, PaulGrahamEssays.json's "text"), split into sentences by
 * `splitSentences`, needles inserted at sampled depths. `words` as for rulerNiahRecord.
 */
export function rulerNiahEssayRecord(
  config: RulerNiahConfig,
  numHaystack: number,
  random: RulerRandom,
  words: readonly string[],
  essay: string,
  splitSentences: SentenceSplitter = rulerSplitSentences,
): RulerNiahRecord {
  if (config.typeHaystack !== "essay") fail(`RULER NIAH: rulerNiahEssayRecord got a ${config.typeHaystack} haystack`, "use rulerNiahRecord");
  const drawn = drawNeedles(config, random, words);
  const sentences = splitSentences(pyStrip(rulerEssayWords(essay, numHaystack).join(" ")));
  return askNeedles(config, drawn, insertAtDepths(sentences, drawn.needles, random), random);
}
