/**
 * InfiniteBench's generated tasks against its own code (scripts/make-infinitebench-fixtures.py ran
 * construct_synthetic_dataset.py's builders, eval_utils.create_prompt for every model and
 * compute_scores.py's scorers): contexts and prompts rebuilt here must have the same SHA-256 and
 * length (so they are equal character by character), and 1,500 scores must agree.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  infiniteBenchPrompt,
  infiniteBenchScore,
  kvRetrievalRecord,
  numberStringKey,
  numberStringRecord,
  passkeyRecord,
  type InfiniteBenchModel,
  type InfiniteBenchRecord,
  type InfiniteBenchTask,
} from "../src/datasets/infinitebench.js";

interface Digest {
  sha256: string;
  chars: number;
}
interface FixtureRecord {
  task: InfiniteBenchTask;
  id?: number;
  len?: number;
  input: string;
  answer: string;
  permutation?: number[];
  context: Digest;
  prompts: Record<InfiniteBenchModel, Digest>;
}
const fixture = JSON.parse(readFileSync(join(import.meta.dirname, "fixtures", "infinitebench-official", "generated.json"), "utf8")) as {
  kvKeys: [string, string][];
  records: FixtureRecord[];
  scores: Array<{ task: InfiniteBenchTask; pred: string; label: string; score: number }>;
};

const digest = (text: string): Digest => ({ sha256: createHash("sha256").update(text, "utf8").digest("hex"), chars: text.length });

/** The record our builders make from what the official one recorded (key, noise position, shuffle). */
function rebuild(r: FixtureRecord): InfiniteBenchRecord {
  // construct_synthetic_dataset.py: passkey_8192 has 326 noise lines, number_string (128k) 5220; "len" = 26 × lines after the needle.
  if (r.task === "passkey") return passkeyRecord(r.answer, 326, 326 - r.len! / 26);
  if (r.task === "number_string") return numberStringRecord(r.answer, 5220, 5220 - r.len! / 26);
  const shuffled = r.permutation!.map((i) => fixture.kvKeys[i]!);
  return kvRetrievalRecord(shuffled, 2500, Math.min(Math.trunc((r.id! * 2500) / 500), 2500));
}

describe("InfiniteBench generated tasks equal the official builders and create_prompt", () => {
  for (const r of fixture.records) {
    it(`${r.task} ${r.answer}`, () => {
      const record = rebuild(r);
      expect(digest(record.context)).toEqual(r.context);
      expect(record.input).toBe(r.input);
      expect(record.answer).toBe(r.answer);
      for (const model of Object.keys(r.prompts) as InfiniteBenchModel[]) {
        expect(digest(infiniteBenchPrompt(r.task, model, record)), model).toEqual(r.prompts[model]);
      }
    });
  }

  it("number_string keys: 5 digits, each of 5 draws duplicates the digit at its position", () => {
    // Python keys.insert(pos, keys[pos]), pos_k in 0..4+k: [1,2,3,4,5] → pos 0: 112345 → pos 5: 1123455 →
    // pos 0: 11123455 → pos 2: 111123455 → pos 8: 1111234555
    expect(numberStringKey([1, 2, 3, 4, 5], [0, 5, 0, 2, 8])).toBe("1111234555");
  });
});

describe("InfiniteBench scores equal compute_scores.py", () => {
  it("passkey, number_string (first integer) and kv_retrieval (value among the words) on 1,500 predictions", () => {
    expect(fixture.scores).toHaveLength(1500);
    const wrong = fixture.scores.filter((c) => infiniteBenchScore(c.task, c.pred, c.label) !== c.score);
    expect(wrong).toEqual([]);
  });
});
