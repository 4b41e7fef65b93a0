/**
 * LongBench v2 (THUDM/LongBench, the repository's top-level pred.py, result.py and prompts/, MIT):
 * 503 four-choice questions from a file the user provides (the THUDM/LongBench-v2 data.json rows).
 * Prompts by pred.py's chained `str.replace`, answers by its `extract_answer`, accuracy overall,
 * by difficulty (easy/hard) and by length (short/medium/long) as result.py prints it.
 */
import { pythonRound } from "./metrics/python-round.js";
import { pyStrip } from "./metrics/python-str.js";

/** prompts/*.txt, verbatim (the CoT files spell "Let’s" with U+2019). */
export const LONGBENCH_V2_PROMPTS = {
  "0shot": "Please read the following text and answer the question below.\n\n<text>\n$DOC$\n</text>\n\nWhat is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n(D) $C_D$\n\nFormat your response as follows: \"The correct answer is (insert answer here)\".",
  "0shot_cot": "Please read the following text and answer the questions below.\n\n<text>\n$DOC$\n</text>\n\nWhat is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n(D) $C_D$\n\nLet’s think step by step:",
  "0shot_cot_ans": "Please read the following text and answer the questions below.\n\nThe text is too long and omitted here.\n\nWhat is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n(D) $C_D$\n\nLet’s think step by step: $COT$\n\nBased on the above, what is the single, most likely answer choice? Format your response as follows: \"The correct answer is (insert answer here)\".",
  "0shot_no_context": "What is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n(D) $C_D$\n\nWhat is the single, most likely answer choice? Format your response as follows: \"The correct answer is (insert answer here)\".",
} as const;

export type LongBenchV2Prompt = keyof typeof LONGBENCH_V2_PROMPTS;

export interface LongBenchV2Item {
  _id: string;
  difficulty: string;
  length: string;
  question: string;
  choice_A: string;
  choice_B: string;
  choice_C: string;
  choice_D: string;
  answer: string;
  context: string;
}

/**
 * pred.py's prompt: `template.replace('$DOC$', context.strip()).replace('$Q$', ...)...` — every
 * occurrence, one placeholder after the other, so a placeholder that appears inside an earlier
 * substitution is replaced too, as in Python. `cot` is the first answer of the CoT pass (0shot_cot_ans).
 */
export function longBenchV2Prompt(kind: LongBenchV2Prompt, item: LongBenchV2Item, cot = ""): string {
  let prompt: string = LONGBENCH_V2_PROMPTS[kind];
  const steps: [string, string][] = [
    ["$DOC$", pyStrip(item.context)],
    ["$Q$", pyStrip(item.question)],
    ["$C_A$", pyStrip(item.choice_A)],
    ["$C_B$", pyStrip(item.choice_B)],
    ["$C_C$", pyStrip(item.choice_C)],
    ["$C_D$", pyStrip(item.choice_D)],
  ];
  if (kind === "0shot_cot_ans") steps.push(["$COT$", cot]);
  for (const [placeholder, value] of steps) prompt = prompt.split(placeholder).join(value);
  return prompt;
}

/** pred.py `extract_answer`: drop '*', then "The correct answer is (X)" or "... is X"; null when neither. */
export function extractLongBenchV2Answer(response: string): string | null {
  const text = response.split("*").join("");
  return /The correct answer is \(([A-D])\)/.exec(text)?.[1] ?? /The correct answer is ([A-D])/.exec(text)?.[1] ?? null;
}

export interface LongBenchV2Judged {
  difficulty: string;
  length: string;
  pred: string | null;
  judge: boolean;
}

export type LongBenchV2Accuracy = Record<"overall" | "easy" | "hard" | "short" | "medium" | "long", number>;

/**
 * result.py: accuracy × 100 rounded to 1 decimal, overall, by difficulty ("easy", anything else is
 * hard) and by length ("short", "medium", anything else is long). `compensated` counts an
 * unanswered item (pred null) as 0.25, result.py's option. An empty group is NaN (result.py divides by zero).
 */
export function longBenchV2Accuracy(rows: readonly LongBenchV2Judged[], compensated = false): LongBenchV2Accuracy {
  const sums = { easy: [0, 0], hard: [0, 0], short: [0, 0], medium: [0, 0], long: [0, 0] };
  for (const row of rows) {
    const acc = compensated && row.pred === null ? 0.25 : row.judge ? 1 : 0;
    const difficulty = row.difficulty === "easy" ? sums.easy : sums.hard;
    const length = row.length === "short" ? sums.short : row.length === "medium" ? sums.medium : sums.long;
    for (const group of [difficulty, length]) {
      group[0]! += 1;
      group[1]! += acc;
    }
  }
  const pct = ([n, acc]: number[]): number => (n === 0 ? NaN : pythonRound((100 * acc!) / n!, 1));
  return {
    overall: rows.length === 0 ? NaN : pythonRound((100 * (sums.easy[1]! + sums.hard[1]!)) / rows.length, 1),
    easy: pct(sums.easy),
    hard: pct(sums.hard),
    short: pct(sums.short),
    medium: pct(sums.medium),
    long: pct(sums.long),
  };
}

/** A finished LongBench v2 sample as the results hold it (a SampleRow's fields). */
export interface LongBenchV2Row {
  task: string;
  length: number;
  method: string;
  source: string;
  prediction: string;
  answers: readonly string[];
  groups?: Record<string, string>;
}

/** result.py's table for one task × length × method cell of a run. */
export interface LongBenchV2Breakdown {
  task: string;
  length: number;
  method: string;
  n: number;
  accuracy: LongBenchV2Accuracy;
}

/**
 * result.py's overall / easy / hard / short / medium / long accuracy per task × length × method, over the LongBench
 * v2 rows of a run (others are ignored), in first-seen order; the caller sorts.
 */
export function longBenchV2Breakdowns(rows: readonly LongBenchV2Row[]): LongBenchV2Breakdown[] {
  const cells = new Map<string, { key: Omit<LongBenchV2Breakdown, "n" | "accuracy">; judged: LongBenchV2Judged[] }>();
  for (const row of rows) {
    if (row.source !== "longbench-v2") continue;
    const id = JSON.stringify([row.task, row.length, row.method]);
    const cell = cells.get(id) ?? { key: { task: row.task, length: row.length, method: row.method }, judged: [] };
    const pred = extractLongBenchV2Answer(row.prediction);
    cell.judged.push({ difficulty: row.groups?.["difficulty"] ?? "", length: row.groups?.["length"] ?? "", pred, judge: pred === row.answers[0] });
    cells.set(id, cell);
  }
  return [...cells.values()].map(({ key, judged }) => ({ ...key, n: judged.length, accuracy: longBenchV2Accuracy(judged) }));
}
