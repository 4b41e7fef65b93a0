/**
 * RULER tasks as suite samples: for each length and record, the task's builder (src/datasets/ruler/tasks.ts) with
 * our seeded RulerRandom, sized like RULER's prepare — the most haystack sentences whose prompt still fits the
 * length. Differences from RULER, on purpose: the length bounds the prompt we feed (BOS included) rather than
 * prompt + tokens_to_generate; each record is sized on its own (RULER sizes once and backs off per record); the
 * draws are ours (mulberry32 from the suite seed), not Python's.
 */
import { buildRulerRecord, defaultRulerCommonWords, defaultRulerWords, loadRulerResources, RULER_TASKS, type RulerResources, type RulerTaskName } from "../../datasets/ruler/tasks.js";
import { seededRulerRandom, type RulerRecord } from "../../datasets/ruler/common.js";
import { EdgeInfError, fail } from "../../util/errors.js";
import { rulerVtIclNumNoises } from "../../datasets/ruler/variable-tracking.js";
import { DEFAULT_COUNT, finishSample, questionStartIn, type EvalSample, type SampleSources } from "../samples.js";
import { taskLengths, type Suite, type TaskOf } from "../suite.js";
import { fitToTokens, sampleSeed } from "./fit.js";

export interface RulerSized {
  /** Haystack size the search settled on. */
  size: number;
  seed: number;
  prompt: string;
  answers: string[];
  ids: number[];
}

/**
 * vt's in-context example noise count for a suite: RULER fits the example to 500 tokens of the model's tokenizer once
 * per dataset; so do we, once per task, with draws seeded by the suite seed alone.
 */
export function suiteVtIclNumNoises(suiteSeed: number, src: Pick<SampleSources, "tokenizer">): number {
  return rulerVtIclNumNoises((text) => src.tokenizer.encode(text, { bos: false }).length, seededRulerRandom(sampleSeed("ruler-vt-icl", suiteSeed)));
}

/**
 * Record `index` of RULER task `name` at `length` tokens: its seed, then the largest size whose prompt (BOS
 * included) fits. Fails with one line when even one haystack sentence is too long. `vtIcl`: vt's in-context noise
 * count (suiteVtIclNumNoises; without it, RULER_VT_CONFIG's).
 */
export function rulerSized(name: RulerTaskName, suiteSeed: number, length: number, index: number, src: Pick<SampleSources, "tokenizer">, resources: RulerResources, vtIcl?: number): RulerSized {
  const seed = sampleSeed("ruler", suiteSeed, name, length, index);
  // cwe cannot list more distinct words than its word lists hold: larger sizes count as too long.
  const maxSize = name === "cwe" ? (resources.commonWords?.length ?? 0) + (resources.englishWords?.length ?? 0) : Infinity;
  const build = (size: number): { record: RulerRecord; ids: number[] } | null => {
    if (size > maxSize) return null;
    const record = buildRulerRecord(name, { size, maxSeqLength: length, index, ...(vtIcl === undefined ? {} : { vtIclNumNoises: vtIcl }) }, seededRulerRandom(seed), resources);
    return { record, ids: src.tokenizer.encode(record.prompt, { bos: true }) };
  };
  const fitted = fitToTokens(build, (built) => (built === null ? Infinity : built.ids.length), length, smallestSize(name, build));
  if (fitted === null) fail(`RULER ${name}: the shortest prompt the task builds is longer than ${length} tokens`, "use a longer length for this task");
  const built = fitted.built!;
  return { size: fitted.size, seed, prompt: built.record.prompt, answers: built.record.answers, ids: built.ids };
}

/**
 * The smallest size a task builds at: vt inserts its chains into the noise, multi-needle tasks their needles, qa
 * its own documents, so sizes below those fail. Found by doubling from 1 (builders fail with a one-line error below it).
 */
function smallestSize(name: RulerTaskName, build: (size: number) => unknown): number {
  for (let size = 1; size <= 1024; size *= 2) {
    try {
      build(size);
      return size;
    } catch (e) {
      if (!(e instanceof EdgeInfError)) throw e;
    }
  }
  return fail(`RULER ${name}: no size up to 1024 builds a record`, "check the task's files (docs/evaluation.md)");
}

export function rulerSamples(suite: Suite, task: TaskOf<"ruler">, src: SampleSources): EvalSample[] {
  const name = (task.task ?? task.name) as RulerTaskName; // checked against RULER_TASKS by the suite schema
  const resources = rulerResources(name, task);
  const vtIcl = name === "vt" ? suiteVtIclNumNoises(suite.seed, src) : undefined;
  const count = Math.min(task.count ?? DEFAULT_COUNT, src.limit ?? Infinity);
  const out: EvalSample[] = [];
  for (const length of taskLengths(suite, task)) {
    for (let index = 0; index < count; index++) {
      const sized = rulerSized(name, suite.seed, length, index, src, resources, vtIcl);
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
          defaultMaxNewTokens: RULER_TASKS[name].tokensToGenerate,
        }),
      );
    }
  }
  return out;
}

/**
 * The files a task reads (its `files` in the suite), with our defaults where RULER's come from a Python package:
 * key words (adjective-animal pairs) and cwe's word list (the synthetic vocabulary). Essays and QA data have no default.
 */
export function rulerResources(name: RulerTaskName, task: TaskOf<"ruler">): RulerResources {
  return loadRulerResources([name], task.files ?? {}, { keyWords: defaultRulerWords(), commonWords: defaultRulerCommonWords() });
}
