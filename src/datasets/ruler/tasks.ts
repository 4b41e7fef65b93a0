/**
 * RULER tasks by name, each with its metric and a builder of one record from a size (haystack sentences, the unit
 * RULER's prepare sizes by binary search), a RulerRandom and shared resources. Only the three NIAH tasks that need
 * no essay file live here for now; the other RULER tasks (vt, cwe, fwe, qa, essay NIAH) join this registry with the
 * same shape.
 */
import type { RulerMetric } from "../../eval/metrics/ruler.js";
import { ADJECTIVES, ANIMALS } from "../synthetic/vocabulary.js";
import { RULER_NIAH_TASKS, rulerNiahRecord, type RulerRandom } from "./niah.js";

/** What builders read besides the random draws. */
export interface RulerResources {
  /**
   * Needle keys of the "words" type. RULER's are wonderwords adjective-noun pairs; ours are the synthetic
   * vocabulary's (defaultRulerWords), so keys differ from RULER's but have the same form.
   */
  words: readonly string[];
}

export interface RulerTaskRecord {
  /** What the model reads: RULER's input followed by its answer prefix. */
  prompt: string;
  answers: string[];
}

export interface RulerTask {
  metric: RulerMetric;
  build(size: number, random: RulerRandom, resources: RulerResources): RulerTaskRecord;
}

export const RULER_TASKS: Readonly<Record<string, RulerTask>> = Object.fromEntries(
  Object.entries(RULER_NIAH_TASKS).map(([name, config]) => [
    name,
    { metric: "string_match_all" as const, build: (size, random, resources) => rulerNiahRecord(config, size, random, resources.words) } satisfies RulerTask,
  ]),
);

export const RULER_TASK_NAMES: readonly string[] = Object.keys(RULER_TASKS);

/** One record of `task` (a name of RULER_TASKS). */
export function buildRulerRecord(task: string, size: number, random: RulerRandom, resources: RulerResources): RulerTaskRecord {
  const entry = RULER_TASKS[task];
  if (entry === undefined) throw new RangeError(`unknown RULER task "${task}" (known: ${RULER_TASK_NAMES.join(", ")})`);
  return entry.build(size, random, resources);
}

/** adjective-animal pairs ("brave-otter"), sorted like RULER's `sorted(set(words))`. */
export function defaultRulerWords(): string[] {
  return [...new Set(ADJECTIVES.flatMap((a) => ANIMALS.map((n) => `${a}-${n}`)))].sort();
}
