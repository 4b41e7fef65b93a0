/**
 * RULER tasks as suite samples: for each length and record, the task's builder (src/datasets/ruler/tasks.ts) with
 * our seeded RulerRandom, sized like RULER's prepare — the most haystack sentences whose prompt still fits the
 * length. Differences from RULER, on purpose: the length bounds the prompt we feed (BOS included) rather than
 * prompt + tokens_to_generate; each record is sized on its own (RULER sizes once and backs off per record); the
 * draws are ours (mulberry32 from the suite seed), not Python's.
 */
import { RULER_TASKS, defaultRulerWords } from "../../datasets/ruler/tasks.js";
import { seededRulerRandom } from "../../datasets/ruler/random.js";
import { fail } from "../../util/errors.js";
import { DEFAULT_COUNT, finishSample, questionStartIn, type EvalSample, type SampleSources } from "../samples.js";
import { taskLengths, type Suite, type TaskOf } from "../suite.js";
import { fitToTokens, sampleSeed } from "./fit.js";

/** RULER's scripts/data/synthetic/constants.py tokens_to_generate by task family (niah_* → niah). */
const TOKENS_TO_GENERATE: Readonly<Record<string, number>> = { niah: 128, vt: 30, cwe: 120, fwe: 50, qa: 32 };

function tokensToGenerate(task: string): number {
  return TOKENS_TO_GENERATE[task.split("_")[0]!] ?? 128;
}

export interface RulerSized {
  /** Haystack size the search settled on. */
  size: number;
  seed: number;
  prompt: string;
  answers: string[];
  ids: number[];
}

/**
 * Record `index` of RULER task `name` at `length` tokens: its seed, then the largest size whose prompt (BOS
 * included) fits. Fails with one line when even one haystack sentence is too long.
 */
export function rulerSized(name: string, suiteSeed: number, length: number, index: number, src: Pick<SampleSources, "tokenizer">, words: readonly string[]): RulerSized {
  const task = RULER_TASKS[name]!;
  const seed = sampleSeed("ruler", suiteSeed, name, length, index);
  const fitted = fitToTokens(
    (size) => {
      const record = task.build(size, seededRulerRandom(seed), { words });
      return { record, ids: src.tokenizer.encode(record.prompt, { bos: true }) };
    },
    (built) => built.ids.length,
    length,
  );
  if (fitted === null) fail(`RULER ${name}: a prompt with a single haystack sentence is longer than ${length} tokens`, "use a longer length for this task");
  return { size: fitted.size, seed, prompt: fitted.built.record.prompt, answers: fitted.built.record.answers, ids: fitted.built.ids };
}

export function rulerSamples(suite: Suite, task: TaskOf<"ruler">, src: SampleSources): EvalSample[] {
  const name = task.task ?? task.name;
  const words = defaultRulerWords();
  const count = Math.min(task.count ?? DEFAULT_COUNT, src.limit ?? Infinity);
  const out: EvalSample[] = [];
  for (const length of taskLengths(suite, task)) {
    for (let index = 0; index < count; index++) {
      const sized = rulerSized(name, suite.seed, length, index, src, words);
      // RULER's templates end with the question (and answer prefix) on the last line.
      const question = sized.prompt.slice(sized.prompt.lastIndexOf("\n") + 1);
      const prompt = { ids: sized.ids, questionStart: questionStartIn(src, sized.prompt, question, sized.ids, true) };
      out.push(
        finishSample(suite, task, src, {
          dataset: name,
          length,
          sampleId: `${name}_${length}_${suite.seed}_${index}`,
          depth: null,
          prompt,
          truncated: false,
          answers: sized.answers,
          defaultMaxNewTokens: tokensToGenerate(name),
        }),
      );
    }
  }
  return out;
}
