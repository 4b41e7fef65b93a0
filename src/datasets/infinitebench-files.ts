/**
 * InfiniteBench's file-based tasks (OpenBMB/InfiniteBench, Apache-2.0): the rows of the user's data files
 * (data/<task>.jsonl: context, input, answer, options), prompts by src/eval_utils.py `create_prompt` with
 * src/prompt.py's templates (verbatim below), references by `get_answer`.
 */
import type { InfiniteBenchModel } from "./infinitebench.js";
import { formatPythonTemplate } from "../eval/longbench.js";

export type InfiniteBenchFileTask =
  | "longbook_qa_eng"
  | "longbook_choice_eng"
  | "longbook_qa_chn"
  | "longdialogue_qa_eng"
  | "math_find"
  | "math_calc"
  | "code_run"
  | "code_debug"
  | "longbook_sum_eng";

export const INFINITEBENCH_FILE_TEMPLATES: Readonly<Record<InfiniteBenchModel, Readonly<Record<InfiniteBenchFileTask, string>>>> = {
  "gpt4": {
    longbook_qa_eng: "Read the book below and answer a question.\n\n{context}\n\nQuestion: {question}\n\nBe very concise.",
    longbook_choice_eng: "Read the book and answer the question.\n\n{context}\n\nQuestion: {question}\n\nOnly one of the following options is correct, tell me the answer using one single letter (A, B, C, or D). Don't say anything else.\nA. {OPTION_A}\nB. {OPTION_B}\nC. {OPTION_C}\nD. {OPTION_D}",
    longbook_qa_chn: "请根据以下书籍回答我的问题。\n\n{context}\n\n问题：{question}\n请尽量简短地回答。",
    longdialogue_qa_eng: "Below is a dialogue script where one random occurrence of a character name is replaced with \"$$MASK$$\", and you should try to guess who that character is.\n\nThe dialogue:\n\n---\n\n{context}\n\n---\n\nEnd of dialogue.\n\nWhich character is most likely \"$$MASK$$\"? Just say the name used by the scriptwriter (before the colon marks) of one single character and nothing else.",
    math_find: "{prefix}\n\n{context}\n\n{input}",
    math_calc: "Compute the intermediate values in the following long expression.\n\n{context}",
    code_run: "Following is a set of Python functions. There is a function called named {func}.\n\n{context}\n\nPlease give me the exact number of the return value of {func_call}. Be concise. Your response must end with the final returned value.",
    code_debug: "There is ONLY ONE function in the large project that is deliberately made to include an obvious error. Please find the function that contains the most obvious errors. I will give you four options to narrow your scope. You can inspect the options and think. Eventually, tell me the answer using one single letter (A, B, C, or D).\n\n{context}\n\nWhich funtion has deliberate error?\nA. {OPTION_A}\nB. {OPTION_B}\nC. {OPTION_C}\nD. {OPTION_D}\n\nYou should first find the functions in the options. Repeat their content, inspect through code, and at last give me your answer for the function that has the deliberate and obvious error in A, B, C, or D.",
    longbook_sum_eng: "Summarize the following book.\n\n{context}",
  },
  "claude2": {
    longbook_qa_eng: "Read the novel below and answer a question:\n\n{context}\n\n{input}\nPlease answer as short as possible. The answer is: ",
    longbook_choice_eng: "Read the book and answer the question.\n\n{context}\n\nQuestion: {question}\n\nOnly one of the following options is correct, tell me the answer using one single letter (A, B, C, or D). Don't say anything else.\nA. {OPTION_A}\nB. {OPTION_B}\nC. {OPTION_C}\nD. {OPTION_D}",
    longbook_qa_chn: "请根据以下书籍回答我的问题。\n\n{context}\n\n问题：{question}\n请尽量简短地回答。",
    longdialogue_qa_eng: "Below is a dialogue script where one random occurrence of a character name is replaced with \"$$MASK$$\", and you should try to guess who that character is.\n\nThe dialogue:\n\n---\n\n{context}\n\n---\n\nEnd of dialogue.\n\nWhich character is most likely \"$$MASK$$\"? Just say the name used by the scriptwriter (before the colon marks) of one single character and nothing else.",
    math_find: "{prefix}\n\n{context}\n\n{input}",
    math_calc: "Let us calculate the intermediate values of an expression.\nExpression: 1 + 3 + 4\nValues: [1, 4, 8]\n\nExpression: 8 - 3 + 2 - 4\nValues: [8, 5, 7, 3]\n\nExpression: {context}\nValues:",
    code_run: "In the file functions_module.py, there is a function called ${func}.\n\n\nHere is the content of functions_module.py:\n{context}\n\nPlease give me the exact number of the return value of {func_call}. Your response should end with the sentence 'The return value is:'.",
    code_debug: "There is ONLY ONE function in the large project that is deliberately made to include an obvious error. Please find the function that contains the most obvious errors. I will give you four options to narrow your scope. You can inspect through the options and think. Eventually, tell me the answer using one single letter (A, B, C, or D).\n\n{context}\n\nWhich funtion has deliberate error?\nA. {OPTION_A}\nB. {OPTION_B}\nC. {OPTION_C}\nD. {OPTION_D}\n\nYou should first find the functions in the options. Repeat their content, inspect through code, and at last give me your answer for the function that has the deliberate and obvious error in A, B, C, or D.",
    longbook_sum_eng: "Summarize the following book.\n\n{context}",
  },
  "kimi": {
    longbook_qa_eng: "Read the book below and answer a question.\n\nQuestion: {question}\n\nBe very concise.{file:{context}}",
    longbook_choice_eng: "Read the book and answer the question.\n\nQuestion: {question}\n\nOnly one of the following options is correct, tell me the answer using one single letter (A, B, C, or D). Don't say anything else.\nA. {OPTION_A}\nB. {OPTION_B}\nC. {OPTION_C}\nD. {OPTION_D}{file:{document}}",
    longbook_qa_chn: "阅读以下书籍然后回答问题。\n\n问题：{question}\n答案：{file:{context}}",
    longdialogue_qa_eng: "Below is a dialogue script where one random occurrence of a character name is replaced with \"$$MASK$$\", and you should try to guess who that character is. Give me the answer using the name before the colons, don't say anything else.\n\n{context}",
    math_find: "{prefix}\n\n{context}\n\n{input}",
    math_calc: "Let us calculate the intermediate values of an expression.\nExpression: 1 + 3 + 4\nValues: [1, 4, 8]\n\nExpression: 8 - 3 + 2 - 4\nValues: [8, 5, 7, 3]\n\nExpression: {context}\nValues:",
    code_run: "In the file functions_module.py, there is a function called ${func}.\n\n\nHere is the content of functions_module.py:\n\nPlease give me the exact number of the return value of ${func_call}. Your response should end with the sentence 'The return value is:'.{context}",
    code_debug: "Below is a code repository where there is one single function with bugs that causes an error. Please tell me the name of that function.\nWhich function has bugs? Give me the final answer in this format: \"[FINAL ANSWER: XXX]\". Don't say anything else.{fcontext}",
    longbook_sum_eng: "Summarize the book below:\n\n{file:{context}}",
  },
  "yarn-mistral": {
    longbook_qa_eng: "Read the book and answer the question. Be very concise in your answer.\n\n{context}\n\nQuestion: {question}\nAnswer:",
    longbook_choice_eng: "Read the book and answer the question.\n\n{context}\n\nQuestion: {question}\nA. {OPTION_A}\nB. {OPTION_B}\nC. {OPTION_C}\nD. {OPTION_D}\n\nThe letter of the correct answer is",
    longbook_qa_chn: "阅读以下书籍然后回答问题。\n\n{context}\n\n问题：{question}\n答案：",
    longdialogue_qa_eng: "Below is a dialogue script where one random occurrence of a character name is replaced with \"$$MASK$$\", and you should try to guess who that character is.\n\n{context}\n\nThe name that has been replaced with $$MASK$$ is likely",
    math_find: "{prefix}\n\n{context}\n\n{input}",
    math_calc: "Let us calculate the intermediate values of an expression.\n\nExpression: 1 + 3 + 4\nValues: [1, 4, 8]\n\nExpression: 8 - 3 + 2 - 4\nValues: [8, 5, 7, 3]\n\nExpression: {context}\nValues:",
    code_run: "There is a function called {func} in the following Python code.\n\n{context}\n\nPlease compute the exact value of {func_call}. The value of {func_call} is",
    code_debug: "Following is a Python code where exactly one of the functions/methods has a deliberate error that makes it crash.\n\n{context}\n\nOptions:\nA. {OPTION_A}\nB. {OPTION_B}\nC. {OPTION_C}\nD. {OPTION_D}\n\nThe correct option is:",
    longbook_sum_eng: "Summarize the book below.\n\n{context}\n\nSummary:",
  },
};

export const INFINITEBENCH_FILE_TASKS = Object.keys(INFINITEBENCH_FILE_TEMPLATES["yarn-mistral"]) as InfiniteBenchFileTask[];

/** eval_utils.DATA_NAME_TO_MAX_NEW_TOKENS for these tasks. */
export const INFINITEBENCH_FILE_MAX_NEW_TOKENS: Readonly<Record<InfiniteBenchFileTask, number>> = {
  longbook_qa_eng: 40,
  longbook_choice_eng: 40,
  longbook_qa_chn: 40,
  longdialogue_qa_eng: 40,
  math_find: 3,
  math_calc: 30000,
  code_run: 5,
  code_debug: 5,
  longbook_sum_eng: 1200,
};

/** One row of an InfiniteBench data file; `answer` keeps its JSON type (numbers matter to math_find and code_run). */
export interface InfiniteBenchFileRow {
  id?: number | string;
  context: string;
  input: string;
  answer: InfiniteBenchLabel;
  options: string[];
}

export type InfiniteBenchLabel = string | number | readonly (string | number | readonly number[])[];

/** The template fields create_prompt passes for `task` (a template naming any other field fails, as in Python). */
function promptFields(task: InfiniteBenchFileTask, row: Pick<InfiniteBenchFileRow, "context" | "input" | "options">): Record<string, string> {
  const options = { OPTION_A: row.options[0] ?? "", OPTION_B: row.options[1] ?? "", OPTION_C: row.options[2] ?? "", OPTION_D: row.options[3] ?? "" };
  switch (task) {
    case "code_run": {
      // re.findall(r"func_[0-9]+\(\-?[0-9]+\)", input)[0]; Python raises IndexError when there is none.
      const call = /func_[0-9]+\(-?[0-9]+\)/.exec(row.input)?.[0];
      if (call === undefined) throw new RangeError(`code_run input has no func_N(arg) call: ${JSON.stringify(row.input.slice(0, 80))}`);
      return { func: call.split("(")[0]!, func_call: call, context: row.context };
    }
    case "code_debug":
      return { context: row.context, ...options };
    case "longbook_choice_eng":
      return { question: row.input, context: row.context, ...options };
    case "longbook_qa_eng":
    case "longbook_qa_chn":
      return { question: row.input, context: row.context };
    case "math_find": {
      // The "The ... of" phrase of the input, lower-cased, its last 3 characters (" of"'s "of" and the space before) cut.
      const found = /The .+ of/.exec(row.input)?.[0];
      if (found === undefined) throw new RangeError(`math_find input has no "The ... of": ${JSON.stringify(row.input.slice(0, 80))}`);
      return { prefix: `What is ${found.toLowerCase().slice(0, -3)} in the following list?`, context: row.context, input: row.input };
    }
    default:
      return { context: row.context };
  }
}

/** eval_utils.create_prompt for a file-based task with `model`'s template (gpt4's math_calc is the bare context). */
export function infiniteBenchFilePrompt(task: InfiniteBenchFileTask, model: InfiniteBenchModel, row: Pick<InfiniteBenchFileRow, "context" | "input" | "options">): string {
  if (model === "gpt4" && task === "math_calc") return row.context;
  return formatPythonTemplate(INFINITEBENCH_FILE_TEMPLATES[model][task], promptFields(task, row));
}

/**
 * Whether `model`'s template of `task` can be filled at all: kimi's book and code_debug templates name fields
 * create_prompt never passes ({file:...}, {fcontext}), so Python's str.format raises on them.
 */
export function infiniteBenchTemplateWorks(task: InfiniteBenchFileTask, model: InfiniteBenchModel): boolean {
  try {
    infiniteBenchFilePrompt(task, model, { context: "c", input: "The x of func_1(2)", options: ["a", "b", "c", "d"] });
    return true;
  } catch {
    return false;
  }
}

/** A label as strings: each item of a list (a nested list as JSON), or the one scalar. get_answer's result for every task but the two choice tasks. */
export function labelStrings(label: InfiniteBenchLabel): string[] {
  return Array.isArray(label) ? (label as readonly unknown[]).map((x) => (Array.isArray(x) ? JSON.stringify(x) : String(x))) : [String(label)];
}

/**
 * eval_utils.get_answer: code_debug and longbook_choice_eng → [option text, its letter]; every other task → the
 * row's answer. As strings, for samples and tables; the scorers read numbers back (src/eval/metrics/infinitebench.ts).
 */
export function infiniteBenchFileAnswers(task: InfiniteBenchFileTask, row: Pick<InfiniteBenchFileRow, "answer" | "options">): string[] {
  if (task !== "code_debug" && task !== "longbook_choice_eng") {
    // math_calc's label may be nested one level ([[1, 3, -1]]): compute_scores uses label[0] then.
    if (task === "math_calc" && Array.isArray(row.answer) && Array.isArray(row.answer[0])) return (row.answer[0] as readonly number[]).map(String);
    return labelStrings(row.answer);
  }
  const answer = row.answer;
  const letterOf = (text: string): string => {
    const at = row.options.indexOf(text);
    if (at < 0) throw new RangeError(`answer ${JSON.stringify(text)} is not one of the options`);
    return "ABCD"[at]!;
  };
  if (typeof answer === "string") return [answer, letterOf(answer)];
  if (Array.isArray(answer) && answer.length === 1) return [String(answer[0]), letterOf(String(answer[0]))];
  if (Array.isArray(answer) && answer.length === 2 && ["A", "B", "C", "D"].includes(String(answer[1]))) return answer.map(String);
  throw new RangeError(`answer ${JSON.stringify(answer)} is neither an option nor [option, letter]`);
}
