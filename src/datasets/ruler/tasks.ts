/**
 * RULER's 13 tasks (NVIDIA/RULER scripts/synthetic.yaml, Apache-2.0) behind one builder:
 * `buildRulerRecord(task, { size, maxSeqLength, index }, random, resources)` → `{ prompt, answers }`,
 * the prompt being RULER's `input` + `answer_prefix` as prepare.py composes them with the base model
 * template. Each task's config, metric (scripts/eval/synthetic/constants.py), generation budget
 * (scripts/data/synthetic/constants.py `tokens_to_generate`) and the user files it needs are listed in
 * RULER_TASKS. RULER fits `size` to the context with the model's tokenizer; here it is passed in.
 */
import type { RulerMetric } from "../../eval/metrics/ruler.js";
import { fail } from "../../util/errors.js";
import { ADJECTIVES, ANIMALS, NAMES } from "../synthetic/vocabulary.js";
import { readTextFile } from "../../util/text-file.js";
import { type RulerRecord, type RulerTaskRandom } from "./common.js";
import { RULER_CWE_CONFIG, rulerCweRecord, rulerCweWordPool, type RulerCweConfig } from "./common-words.js";
import { RULER_FWE_CONFIG, rulerFweRecord, rulerFweVocabSize, type RulerFweConfig } from "./freq-words.js";
import { RULER_NIAH_ESSAY_TASKS, RULER_NIAH_TASKS, rulerNiahEssayRecord, rulerNiahRecord, type RulerNiahConfig, type SentenceSplitter } from "./niah.js";
import { loadPunktParameters, punktSplitter } from "./punkt.js";
import { readRulerHotpotqa, readRulerSquad, rulerQaRecord, type RulerQaData } from "./qa.js";
import { RULER_VT_CONFIG, rulerVtRecord, type RulerVtConfig } from "./variable-tracking.js";

export const RULER_TASK_NAMES = [
  "niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2", "niah_multikey_3", "niah_multivalue", "niah_multiquery",
  "vt", "cwe", "fwe", "qa_1", "qa_2",
] as const;
export type RulerTaskName = (typeof RULER_TASK_NAMES)[number];

/** What a task reads from the user (see RulerResources). */
export type RulerResourceName = "keyWords" | "essay" | "commonWords" | "squad" | "hotpotqa";

interface RulerTaskCommon {
  metric: RulerMetric;
  /** RULER's tokens_to_generate for the task. */
  tokensToGenerate: number;
  /** Resources the builder fails without. */
  needs: readonly RulerResourceName[];
  /** What `size` counts for this task. */
  size: string;
}

export type RulerTaskSpec = RulerTaskCommon &
  (
    | { kind: "niah"; config: RulerNiahConfig }
    | { kind: "vt"; config: RulerVtConfig }
    | { kind: "cwe"; config: RulerCweConfig }
    | { kind: "fwe"; config: RulerFweConfig }
    | { kind: "qa"; config: { dataset: "squad" | "hotpotqa" } }
  );

function niahSpec(config: RulerNiahConfig): RulerTaskSpec {
  const needs: RulerResourceName[] = [];
  if (config.typeHaystack === "essay") needs.push("essay");
  if (config.typeNeedleK === "words" || config.typeNeedleV === "words") needs.push("keyWords");
  const size = config.typeHaystack === "essay" ? "essay words" : "haystack sentences";
  return { kind: "niah", config, metric: "string_match_all", tokensToGenerate: 128, needs, size };
}

const NIAH = { ...RULER_NIAH_TASKS, ...RULER_NIAH_ESSAY_TASKS };

export const RULER_TASKS: Readonly<Record<RulerTaskName, RulerTaskSpec>> = {
  niah_single_1: niahSpec(NIAH.niah_single_1!),
  niah_single_2: niahSpec(NIAH.niah_single_2!),
  niah_single_3: niahSpec(NIAH.niah_single_3!),
  niah_multikey_1: niahSpec(NIAH.niah_multikey_1!),
  niah_multikey_2: niahSpec(NIAH.niah_multikey_2!),
  niah_multikey_3: niahSpec(NIAH.niah_multikey_3!),
  niah_multivalue: niahSpec(NIAH.niah_multivalue!),
  niah_multiquery: niahSpec(NIAH.niah_multiquery!),
  vt: { kind: "vt", config: RULER_VT_CONFIG, metric: "string_match_all", tokensToGenerate: 30, needs: [], size: "noise sentences" },
  cwe: { kind: "cwe", config: RULER_CWE_CONFIG, metric: "string_match_all", tokensToGenerate: 120, needs: ["commonWords"], size: "distinct words" },
  fwe: { kind: "fwe", config: RULER_FWE_CONFIG, metric: "string_match_all", tokensToGenerate: 50, needs: [], size: "coded words" },
  qa_1: { kind: "qa", config: { dataset: "squad" }, metric: "string_match_part", tokensToGenerate: 32, needs: ["squad"], size: "documents" },
  qa_2: { kind: "qa", config: { dataset: "hotpotqa" }, metric: "string_match_part", tokensToGenerate: 32, needs: ["hotpotqa"], size: "documents" },
};

/** The user's material, parsed. Only what the task's `needs` lists is required. */
export interface RulerResources {
  /** niah keys (and word values): RULER draws from wonderwords' adjective-noun pairs ("happy-cat"); any word list works for our runs. */
  keyWords?: readonly string[];
  /** The essay haystack: PaulGrahamEssays.json's "text" in RULER. */
  essay?: string;
  /** Sentence splitter for the essay haystack; default rulerSplitSentences (RULER: nltk punkt's sent_tokenize, which punktSplitter reproduces given punkt's parameters). */
  splitSentences?: SentenceSplitter;
  /** cwe's words before RULER's preparation (sorted, deduplicated, shuffled with seed 42): wonderwords' nouns + adjectives + verbs. */
  commonWords?: readonly string[];
  /** cwe's words for lists longer than `commonWords`: json/english_words.json's values in RULER. */
  englishWords?: readonly string[];
  /** qa_1: SQuAD v2 dev, read by readRulerSquad. */
  squad?: RulerQaData;
  /** qa_2: HotpotQA dev (distractor), read by readRulerHotpotqa. */
  hotpotqa?: RulerQaData;
}

export interface RulerRecordRequest {
  /** RULER's fitted size: what RULER_TASKS[task].size says (haystack sentences, essay words, noise sentences, distinct words, coded words, documents). */
  size: number;
  /** RULER's --max_seq_length: cwe uses shorter word lists below 4096, fwe sizes its vocabulary as (maxSeqLength - 50) // 50. */
  maxSeqLength: number;
  /** The record's number (RULER's sample index): qa asks question `index` of the dataset; the other tasks ignore it. */
  index: number;
  /** vt only: the in-context example's noise sentences (rulerVtIclNumNoises fits it as RULER does); default RULER_VT_CONFIG's. */
  vtIclNumNoises?: number;
}

function need<K extends RulerResourceName>(resources: RulerResources, name: K, task: RulerTaskName): NonNullable<RulerResources[K]> {
  const value = resources[name];
  if (value === undefined) fail(`RULER ${task} needs the ${name} resource`, `pass it in resources (RULER_TASKS.${task}.needs lists what the task reads)`);
  return value as NonNullable<RulerResources[K]>;
}

/**
 * One record of a RULER task: the prompt (RULER's input + answer prefix, base model template) and the
 * answers, scored with `rulerTaskScore(RULER_TASKS[task].metric, ...)`. All randomness comes from
 * `random`: seededRulerRandom(seed) for our runs, or RULER's recorded draws (the tests).
 */
export function buildRulerRecord(task: RulerTaskName, request: RulerRecordRequest, random: RulerTaskRandom, resources: RulerResources): RulerRecord {
  const spec = RULER_TASKS[task];
  if (!spec) fail(`unknown RULER task ${String(task)}`, `use one of ${RULER_TASK_NAMES.join(", ")}`);
  if (!Number.isInteger(request.size) || request.size < 0) fail(`RULER ${task}: size ${request.size}`, `pass a whole number of ${spec.size}`);
  switch (spec.kind) {
    case "niah": {
      const words = spec.needs.includes("keyWords") ? need(resources, "keyWords", task) : [];
      return spec.config.typeHaystack === "essay"
        ? rulerNiahEssayRecord(spec.config, request.size, random, words, need(resources, "essay", task), resources.splitSentences)
        : rulerNiahRecord(spec.config, request.size, random, words);
    }
    case "vt":
      return rulerVtRecord(request.size, random, request.vtIclNumNoises === undefined ? spec.config : { ...spec.config, iclNumNoises: request.vtIclNumNoises });
    case "cwe": {
      const words = { words: rulerCweWordPool(need(resources, "commonWords", task), random), englishWords: resources.englishWords };
      return rulerCweRecord(request.size, random, words, request.maxSeqLength, spec.config);
    }
    case "fwe":
      return rulerFweRecord(request.size, rulerFweVocabSize(request.maxSeqLength), random, spec.config);
    case "qa":
      return rulerQaRecord(need(resources, spec.config.dataset, task), request.index, request.size, random);
  }
}

/** Paths of the user's files; each is read only when a task asked for needs it. */
export interface RulerResourceFiles {
  /** PaulGrahamEssays.json ({"text": ...}). */
  essay?: string;
  /**
   * A punkt_tab language folder (nltk_data's tokenizers/punkt_tab/english, as RULER's sent_tokenize uses): the essay
   * haystack is then split by Punkt as RULER splits it; without it, by rulerSplitSentences' simple rule.
   */
  punkt?: string;
  /** Key words, one per line. */
  keyWords?: string;
  /** cwe word lists, one word per line, concatenated in order (wonderwords' nounlist.txt, adjectivelist.txt, verblist.txt). */
  commonWords?: readonly string[];
  /** english_words.json ({"key": "word", ...}). */
  englishWords?: string;
  /** SQuAD v2 dev JSON. */
  squad?: string;
  /** HotpotQA dev JSON. */
  hotpotqa?: string;
}

function readJson(path: string, what: string): unknown {
  const text = readTextFile(path, what);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    return fail(`${what} ${path} is not valid JSON (${(e as Error).message})`, "pass the file unchanged");
  }
}

/** One word per line, trailing whitespace dropped, blank lines skipped. */
function readWordLines(path: string, what: string): string[] {
  return readTextFile(path, what)
    .split("\n")
    .map((line) => line.replace(/\s+$/, ""))
    .filter((line) => line.length > 0);
}

function readEssay(path: string): string {
  const json = readJson(path, "RULER essay file");
  const text = typeof json === "object" && json !== null ? (json as Record<string, unknown>).text : undefined;
  if (typeof text !== "string") fail(`RULER essay file ${path} has no "text" string`, 'pass a JSON file shaped like RULER\'s PaulGrahamEssays.json: {"text": "..."}');
  return text;
}

function readEnglishWords(path: string): string[] {
  const json = readJson(path, "RULER english words file");
  const words = typeof json === "object" && json !== null && !Array.isArray(json) ? Object.values(json as Record<string, unknown>) : [];
  if (words.length === 0 || words.some((word) => typeof word !== "string")) fail(`RULER english words file ${path} is not an object of strings`, "pass RULER's json/english_words.json");
  return words as string[];
}

/**
 * Reads the files the given tasks need (and englishWords and punkt when given) into RulerResources; fails naming a missing one
 * unless `defaults` holds that resource (the suites' default key words and cwe words).
 */
export function loadRulerResources(tasks: readonly RulerTaskName[], files: RulerResourceFiles, defaults: Pick<RulerResources, "keyWords" | "commonWords"> = {}): RulerResources {
  const needed = new Set(tasks.flatMap((task) => RULER_TASKS[task].needs));
  const path = <K extends keyof RulerResourceFiles>(name: K): NonNullable<RulerResourceFiles[K]> => {
    const value = files[name];
    if (value === undefined) fail(`RULER tasks ${tasks.filter((t) => RULER_TASKS[t].needs.includes(name as RulerResourceName)).join(", ")} need the ${name} file`, `pass its path as ${name}`);
    return value as NonNullable<RulerResourceFiles[K]>;
  };
  const resources: RulerResources = {};
  if (needed.has("essay")) resources.essay = readEssay(path("essay"));
  if (needed.has("essay") && files.punkt !== undefined) resources.splitSentences = punktSplitter(loadPunktParameters(files.punkt));
  if (needed.has("keyWords")) resources.keyWords = files.keyWords === undefined && defaults.keyWords ? defaults.keyWords : readWordLines(path("keyWords"), "RULER key words file");
  if (needed.has("commonWords")) resources.commonWords = files.commonWords === undefined && defaults.commonWords ? defaults.commonWords : path("commonWords").flatMap((file) => readWordLines(file, "RULER cwe word list"));
  if (needed.has("commonWords") && files.englishWords !== undefined) resources.englishWords = readEnglishWords(files.englishWords);
  if (needed.has("squad")) resources.squad = readRulerSquad(readJson(path("squad"), "SQuAD file"));
  if (needed.has("hotpotqa")) resources.hotpotqa = readRulerHotpotqa(readJson(path("hotpotqa"), "HotpotQA file"));
  return resources;
}

/**
 * Default niah key words for our runs when no key-word file is given: adjective-animal pairs ("brave-otter") from
 * the synthetic vocabulary, sorted like RULER's `sorted(set(words))`. Same form as RULER's wonderwords pairs, other words.
 */
export function defaultRulerWords(): string[] {
  return [...new Set(ADJECTIVES.flatMap((a) => ANIMALS.map((n) => `${a}-${n}`)))].sort();
}

/**
 * Default cwe word list when no word files are given: the synthetic vocabulary's adjectives, animals and names,
 * lower-cased and deduplicated (RULER reads wonderwords' noun, adjective and verb lists).
 */
export function defaultRulerCommonWords(): string[] {
  return [...new Set([...ADJECTIVES, ...ANIMALS, ...NAMES].map((w) => w.toLowerCase()))].sort();
}
