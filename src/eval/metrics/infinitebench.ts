/**
 * InfiniteBench's per-prediction scores (OpenBMB/InfiniteBench src/compute_scores.py `get_score_one_*`, Apache-2.0)
 * for every task the suites run; a task's score is the mean (compute_scores.get_score), ×100 in our tables.
 * References come as strings (samples, tables); numeric labels are read back as numbers where Python compares
 * numbers (math_find, math_calc, code_run). Where compute_scores.py would raise (int("3.5") against an int label)
 * or compare a string label with an int (never equal), the numbers are compared instead.
 */
import { infiniteBenchScore, type InfiniteBenchModel, type InfiniteBenchTask } from "../../datasets/infinitebench.js";
import type { InfiniteBenchFileTask } from "../../datasets/infinitebench-files.js";
import { normalizeZhAnswer } from "./normalize-zh-answer.js";
import { pySplitWhitespace, pyStrip } from "./python-str.js";
import { qaF1Score } from "./qa-f1.js";
import { tokenF1 } from "./token-f1.js";

export type InfiniteBenchTaskName = InfiniteBenchTask | InfiniteBenchFileTask;

/** Every occurrence of each of `chars` replaced by a space (the scorers' chained str.replace). */
function blank(text: string, chars: readonly string[]): string {
  let out = text;
  for (const c of chars) out = out.split(c).join(" ");
  return out;
}

/** `while "  " in pred: pred = pred.replace("  ", " ")`. */
function squeezeSpaces(text: string): string {
  let out = text;
  while (out.includes("  ")) out = out.split("  ").join(" ");
  return out;
}

/** Python int(word) for what a model writes: optional sign, ASCII digits (underscores between digits); null when int() raises. */
function pyInt(word: string): number | null {
  return /^[+-]?[0-9]+(_[0-9]+)*$/.test(word) ? Number(word.replace(/_/g, "")) : null;
}

function codeRun(prediction: string, label: string): boolean {
  const words = pySplitWhitespace(blank(pyStrip(prediction), ["\n", ".", "`", "'", '"', ":"]));
  if (words.length === 0) return false;
  const value = pyInt(words[words.length - 1]!);
  return value !== null && value === Number(label);
}

/** The answer prefixes both multiple-choice scorers look for, in their order, and what follows the first found. */
function afterPrefix(pred: string, prefixes: readonly string[]): { found: boolean; rest: string | null } {
  for (const prefix of prefixes) {
    const idx = pred.indexOf(prefix);
    if (idx === -1) continue;
    // "The prediction ends with this prefix": nothing after it (and the space after it) to compare.
    if (pred.length < idx + prefix.length + 1) return { found: true, rest: null };
    return { found: true, rest: pred.slice(idx + prefix.length + 1) };
  }
  return { found: false, rest: null };
}

function codeDebug(prediction: string, [fnName, letter]: readonly string[]): boolean {
  let pred = pyStrip(prediction);
  if ([`${letter}.`, `${letter}:`].includes(Array.from(pred).slice(0, 2).join(""))) return true;
  pred = squeezeSpaces(blank(pyStrip(pred), ["\n", "`", "'", '"', "-", "*", "Option", "option"]));
  const { found, rest } = afterPrefix(pred, ["answer is:", "is:", "answer:", "correct option is:"]);
  if (!found || rest === null) return false;
  return [letter!, fnName!].some((s) => rest.startsWith(s));
}

function mathFind(prediction: string, label: string): boolean {
  const first = /[0-9]+\.[0-9]+|[0-9]+/.exec(prediction)?.[0];
  return first !== undefined && Number(first) === Number(label);
}

function mathCalc(prediction: string, labels: readonly string[], model: InfiniteBenchModel): number {
  let nums = prediction.split(/[^0-9]/).filter((piece) => piece !== "").map(Number);
  // "Our prompts makes GPT4 always output the first number as the first value."
  if (model === "gpt4") nums = nums.slice(1);
  let count = 0;
  for (let i = 0; i < labels.length && i < nums.length; i++) {
    if (Number(labels[i]) !== nums[i]) break;
    count++;
  }
  return count / labels.length;
}

function longDialogue(prediction: string, label: string): boolean {
  const words = pySplitWhitespace(blank(pyStrip(prediction), ["\n", ":", '"', "'", ".", ",", "?", "!", "{", "}"]));
  return words.map((w) => w.toUpperCase()).includes(label);
}

function longBookChoice(prediction: string, label: readonly string[]): boolean {
  let pred = pyStrip(prediction);
  if (pred === "") return false;
  const first = Array.from(pred)[0]!;
  if ("ABCD".includes(first)) return label.includes(first);
  if (label.includes(pred)) return true;
  pred = squeezeSpaces(blank(pred, ["\n", '"', "'", ".", ",", "?", "!", "{", "}"]));
  const { found, rest } = afterPrefix(pred, ["answer is:", "answer:", "answer is", "option is"]);
  if (found) return rest !== null && label.some((s) => rest.startsWith(s));
  // "Finally, just find the first occurrence of A, B, C, or D" (a substring test: "AB" in "ABCD" counts).
  const word = pySplitWhitespace(pred).find((w) => "ABCD".includes(w));
  return word !== undefined && label.includes(word);
}

function qaChinese(prediction: string, groundTruth: string): number {
  // One character one token, after normalize_zh_answer.
  return tokenF1(Array.from(normalizeZhAnswer(prediction)), Array.from(normalizeZhAnswer(groundTruth)));
}

/** compute_scores.get_score_one for `task`, as a number in [0, 1]; `model` matters only to math_calc (gpt4). */
export function infiniteBenchTaskScore(task: InfiniteBenchTaskName, prediction: string, answers: readonly string[], model: InfiniteBenchModel): number {
  const label = answers[0] ?? "";
  switch (task) {
    case "passkey":
    case "number_string":
    case "kv_retrieval":
      return infiniteBenchScore(task, prediction, label);
    case "code_run":
      return codeRun(prediction, label) ? 1 : 0;
    case "code_debug":
      return codeDebug(prediction, answers) ? 1 : 0;
    case "math_find":
      return mathFind(prediction, label) ? 1 : 0;
    case "math_calc":
      return mathCalc(prediction, answers, model);
    case "longdialogue_qa_eng":
      return longDialogue(prediction, label) ? 1 : 0;
    case "longbook_choice_eng":
      return longBookChoice(prediction, answers) ? 1 : 0;
    case "longbook_qa_eng":
      return Math.max(0, ...answers.map((gt) => qaF1Score(prediction, gt)));
    case "longbook_qa_chn":
      return Math.max(0, ...answers.map((gt) => qaChinese(prediction, gt)));
  }
}
