/**
 * InfiniteBench's generated retrieval tasks (OpenBMB/InfiniteBench, Apache-2.0): records built by
 * the rules of data/construct_synthetic_dataset.py, prompts by src/eval_utils.py `create_prompt`
 * with src/prompt.py's templates, scores by src/compute_scores.py. Book, code and math tasks are
 * read from the user's InfiniteBench files.
 */
import { pySplitWhitespace } from "../eval/metrics/python-str.js";

export type InfiniteBenchTask = "passkey" | "number_string" | "kv_retrieval";
export type InfiniteBenchModel = "gpt4" | "claude2" | "kimi" | "yarn-mistral";

/** src/prompt.py templates of the generated tasks, verbatim (chatglm3 and the Yi models use yarn-mistral's). */
export const INFINITEBENCH_TEMPLATES: Readonly<Record<InfiniteBenchModel, Readonly<Record<InfiniteBenchTask, string>>>> = {
  gpt4: {
    passkey: "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there.\n\n{context}\n\n{input}",
    number_string: "There is an important info hidden inside a lot of irrelevant text. Find it. I will quiz you about the important information there.\n\n{context}\n\n{input}",
    kv_retrieval: "Extract the value corresponding to the specified key in the JSON object below.\n\n{context}\n\n{input}",
  },
  claude2: {
    passkey: "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there.\n\n{context}\n{input}\nThe pass key is",
    number_string: "There is an important info hidden inside a lot of irrelevant text. Find it. I will quiz you about the important information there.\n\n{context}\n{input}\nThe sequence of digits is",
    kv_retrieval: "There is an important info hidden inside a lot of irrelevant text. Find it. I will quiz you about the important information there.\n\n{context}\n{input}",
  },
  kimi: {
    passkey: "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there.\n\n{context}\n{input}\nThe pass key is",
    number_string: "There is an important info hidden inside a lot of irrelevant text. Find it. I will quiz you about the important information there.\n\n{context}\n{input}\nThe sequence of digits is",
    kv_retrieval: "Extract the value corresponding to the specified key in the JSON object below.\n\n{context}\n{input}",
  },
  "yarn-mistral": {
    passkey: "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about the important information.\n\n{context}\n\n{input}\n\nThe pass key is",
    number_string: "There is an important info hidden inside a lot of irrelevant text. Find it. I will quiz you about the important information there.\n\n{context}\n\n{input}\n\nThe sequence of digits is",
    kv_retrieval: "Extract the value corresponding to the specified key in the JSON object below.\n\n{context}\n\n{input}",
  },
};

export interface InfiniteBenchRecord {
  context: string;
  input: string;
  answer: string;
}

const NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n";

/** Noise lines, the needle, noise lines: `noise * noiseBefore + needle + noise * (numNoise - noiseBefore)`. */
function noisyContext(needle: string, numNoise: number, noiseBefore: number): string {
  return NOISE.repeat(noiseBefore) + needle + NOISE.repeat(numNoise - noiseBefore);
}

/** build_passkey: `key` is the 5-digit pass key; InfiniteBench uses numNoise 326/652/1305/2610 for 8k..64k. */
export function passkeyRecord(key: string, numNoise: number, noiseBefore: number): InfiniteBenchRecord {
  const context = noisyContext(`The pass key is ${key}. Remember it. ${key} is the pass key.\n`, numNoise, noiseBefore);
  return { context, input: "What is the pass key?", answer: key };
}

/** build_number_string: `key` is the 10-digit sequence (5 digits, 5 of them repeated in place). */
export function numberStringRecord(key: string, numNoise: number, noiseBefore: number): InfiniteBenchRecord {
  const context = noisyContext(`The sequence of digits is ${key}. Remember it. ${key} is the sequence of digits.\n`, numNoise, noiseBefore);
  return { context, input: "What is the sequence of digits?", answer: key };
}

/**
 * build_number_string's key from 10 draws: 5 digits, then for k = 0..4 the digit at position
 * pos_k (drawn in 0..4+k) is duplicated in place.
 */
export function numberStringKey(digits: readonly number[], positions: readonly number[]): string {
  const keys = digits.map(String);
  positions.forEach((pos) => keys.splice(pos, 0, keys[pos]!));
  return keys.join("");
}

/**
 * build_kv_retrieval: the first `numPairs` shuffled pairs as `JSON data:\n{"k": "v", ...}`, and the
 * question about pair `answerIndex` (of the shuffled list).
 */
export function kvRetrievalRecord(shuffledPairs: readonly (readonly [string, string])[], numPairs: number, answerIndex: number): InfiniteBenchRecord {
  const body = shuffledPairs.slice(0, numPairs).map(([key, value]) => `"${key}": "${value}"`).join(", ");
  const [key, value] = shuffledPairs[answerIndex]!;
  return { context: `JSON data:\n{${body}}`, input: `\nKey: "${key}"\nThe value associated with the specified key is: `, answer: value };
}

/** eval_utils.create_prompt for the generated tasks: the model's template with context and input. */
export function infiniteBenchPrompt(task: InfiniteBenchTask, model: InfiniteBenchModel, record: Pick<InfiniteBenchRecord, "context" | "input">): string {
  return INFINITEBENCH_TEMPLATES[model][task].replace(/\{(context|input)\}/g, (_, field: "context" | "input") => record[field]);
}

/** compute_scores.first_int_match: the first run of ASCII digits, or "". */
export function firstIntMatch(prediction: string): string {
  return prediction.split(/[^0-9]/).find((piece) => piece !== "") ?? "";
}

/** compute_scores.get_score_one_*: passkey/number_string compare the first integer; kv_retrieval looks for the value among the words. */
export function infiniteBenchScore(task: InfiniteBenchTask, prediction: string, label: string): number {
  if (task !== "kv_retrieval") return firstIntMatch(prediction) === label ? 1 : 0;
  let text = prediction;
  for (const c of ["\n", ":", '"', "'", ".", ",", "?", "!", "{", "}"]) text = text.split(c).join(" ");
  return pySplitWhitespace(text).includes(label) ? 1 : 0;
}
