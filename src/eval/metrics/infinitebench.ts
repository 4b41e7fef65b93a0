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

/**
 * longbook_sum_eng: HF evaluate's rouge (metrics/rouge/rouge.py) as compute_scores.py calls it, `use_aggregator=False`,
 * no stemmer, key rougeLsum: google-research rouge_score's RougeScorer, summary-level LCS (ROUGE 1.5.5) over
 * "sentences" split on "\n" (empty ones dropped), tokens = lower-case, runs of non-[a-z0-9] as spaces, split.
 * The label is a list, so evaluate calls score_multi: the best F over the references.
 */
export function rougeLsum(prediction: string, references: readonly string[]): number {
  const sents = (text: string): string[][] =>
    text.split("\n").filter((s) => s.length > 0).map((s) => s.toLowerCase().replace(/[^a-z0-9]+/g, " ").split(" ").filter((t) => t !== ""));
  const can = sents(prediction);
  const one = (reference: string): number => {
    const ref = sents(reference);
    const m = ref.reduce((a, s) => a + s.length, 0);
    const n = can.reduce((a, s) => a + s.length, 0);
    if (m === 0 || n === 0) return 0;
    const counts = (list: string[][]): Map<string, number> => {
      const c = new Map<string, number>();
      for (const s of list) for (const t of s) c.set(t, (c.get(t) ?? 0) + 1);
      return c;
    };
    const cntR = counts(ref);
    const cntC = counts(can);
    let hits = 0;
    for (const r of ref) {
      // Union over candidate sentences of the indices into r of one LCS each (rouge_scorer's _lcs_table + _backtrack_norec).
      const union = new Set<number>();
      for (const c of can) {
        const t = Array.from({ length: r.length + 1 }, () => new Int32Array(c.length + 1));
        for (let i = 1; i <= r.length; i++) {
          for (let j = 1; j <= c.length; j++) t[i]![j] = r[i - 1] === c[j - 1] ? t[i - 1]![j - 1]! + 1 : Math.max(t[i - 1]![j]!, t[i]![j - 1]!);
        }
        for (let i = r.length, j = c.length; i > 0 && j > 0; ) {
          if (r[i - 1] === c[j - 1]) union.add(--i), j--;
          else if (t[i]![j - 1]! > t[i - 1]![j]!) j--;
          else i--;
        }
      }
      for (const i of [...union].sort((a, b) => a - b)) {
        const tok = r[i]!;
        if ((cntC.get(tok) ?? 0) > 0 && (cntR.get(tok) ?? 0) > 0) {
          hits++;
          cntC.set(tok, cntC.get(tok)! - 1);
          cntR.set(tok, cntR.get(tok)! - 1);
        }
      }
    }
    const recall = hits / m;
    const precision = hits / n;
    return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  };
  return Math.max(0, ...references.map(one));
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
    case "longbook_sum_eng":
      return rougeLsum(prediction, answers);
  }
}
