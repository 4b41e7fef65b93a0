/**
 * RULER NIAH prompts, character by character: RULER's own generate_input_output (run by
 * scripts/make-ruler-niah-fixtures.py with the template prepare.py composes) recorded its random
 * draws and the prompt it built; replaying the same draws through rulerNiahRecord must give the
 * same prompt and answers.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RULER_NIAH_ANSWER_PREFIX, RULER_NIAH_TASKS, RULER_NIAH_TEMPLATE, rulerNiahRecord, type RulerNiahConfig } from "../src/datasets/ruler/niah.js";
import { replayRulerDraws, type RulerDraw } from "./fixtures/ruler-replay.js";

interface Fixture {
  template: string;
  records: Array<{ task: string; config: Record<string, string | number>; numHaystack: number; draws: RulerDraw[]; prompt: string; answers: string[] }>;
}
const fixture = JSON.parse(readFileSync(join(import.meta.dirname, "fixtures", "ruler-official", "niah-prompts.json"), "utf8")) as Fixture;

const toConfig = (c: Record<string, string | number>): RulerNiahConfig => ({
  typeHaystack: c.type_haystack as RulerNiahConfig["typeHaystack"],
  typeNeedleK: c.type_needle_k as RulerNiahConfig["typeNeedleK"],
  typeNeedleV: c.type_needle_v as RulerNiahConfig["typeNeedleV"],
  numNeedleK: c.num_needle_k as number,
  numNeedleV: c.num_needle_v as number,
  numNeedleQ: c.num_needle_q as number,
});

describe("RULER NIAH prompt builder equals RULER's generate_input_output", () => {
  it("uses RULER's template and answer prefix verbatim (base model template)", () => {
    expect(RULER_NIAH_TEMPLATE + RULER_NIAH_ANSWER_PREFIX).toBe(fixture.template);
  });

  for (const record of fixture.records) {
    it(`${record.task}, ${record.numHaystack} haystack sentences`, () => {
      const config = toConfig(record.config);
      if (record.task in RULER_NIAH_TASKS) expect(RULER_NIAH_TASKS[record.task]).toEqual(config);
      const random = replayRulerDraws(record.draws, "draws");
      const built = rulerNiahRecord(config, record.numHaystack, random, []);
      expect(built.prompt).toBe(record.prompt);
      expect(built.answers).toEqual(record.answers);
      expect(random.left()).toBe(0);
    });
  }
});
