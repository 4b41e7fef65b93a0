/**
 * RULER's essay NIAH, vt, cwe, fwe, qa_1 and qa_2 prompts, character by character: RULER's own
 * functions (run by scripts/make-ruler-task-fixtures.py with the template prepare.py composes, on
 * small stand-in inputs) recorded their random draws and what they built; replaying the same draws
 * through buildRulerRecord must give the same prompt and answers. The essay's sentences: nltk's punkt
 * replaced by our default splitter, except in the records marked `punkt`, where RULER's code ran
 * nltk's own PunktSentenceTokenizer on the fixture parameters of that folder and our builder gets
 * the same folder through loadRulerResources (nltk's English parameters are not available offline).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { seededRulerRandom } from "../src/datasets/ruler/common.js";
import { RULER_CWE_ANSWER_PREFIX, RULER_CWE_TEMPLATE } from "../src/datasets/ruler/common-words.js";
import { RULER_FWE_ANSWER_PREFIX, RULER_FWE_TEMPLATE, rulerFweVocabSize } from "../src/datasets/ruler/freq-words.js";
import { RULER_DEPTHS, RULER_NIAH_ANSWER_PREFIX, RULER_NIAH_TEMPLATE, rulerSplitSentences } from "../src/datasets/ruler/niah.js";
import { RULER_QA_ANSWER_PREFIX, RULER_QA_TEMPLATE, readRulerHotpotqa, readRulerSquad } from "../src/datasets/ruler/qa.js";
import { buildRulerRecord, loadRulerResources, RULER_TASK_NAMES, RULER_TASKS, type RulerResources, type RulerTaskName } from "../src/datasets/ruler/tasks.js";
import { RULER_VT_ANSWER_PREFIX, RULER_VT_TEMPLATE } from "../src/datasets/ruler/variable-tracking.js";
import { rulerResources } from "../src/eval/sources/ruler.js";
import { parseSuite, type TaskOf } from "../src/eval/suite.js";
import { replayRulerDraws, type RulerDraw } from "./fixtures/ruler-replay.js";

interface FixtureRecord {
  task: RulerTaskName;
  size: number;
  index?: number;
  maxSeqLength?: number;
  vocabSize?: number;
  iclNumNoises?: number;
  /** The punkt_tab folder (repository-relative) RULER's sent_tokenize ran with, and which input essay. */
  punkt?: string;
  essay?: "essay" | "punktEssay";
  draws: RulerDraw[];
  prompt: string;
  answers: string[];
}
interface Fixture {
  templates: Record<string, string>;
  depths: number[];
  inputs: { essay: string; punktEssay: string; keyWords: string[]; cweRawWords: string[]; cwePool: string[]; englishWords: string[]; squad: unknown; hotpotqa: unknown };
  permutations: Record<string, number[]>;
  records: FixtureRecord[];
}
const fixture = JSON.parse(readFileSync(join(import.meta.dirname, "fixtures", "ruler-official", "task-prompts.json"), "utf8")) as Fixture;

const resources: RulerResources = {
  keyWords: fixture.inputs.keyWords,
  essay: fixture.inputs.essay,
  commonWords: fixture.inputs.cweRawWords,
  englishWords: fixture.inputs.englishWords,
  squad: readRulerSquad(fixture.inputs.squad),
  hotpotqa: readRulerHotpotqa(fixture.inputs.hotpotqa),
};

const repo = join(import.meta.dirname, "..");

/** The essay and its Punkt splitter as a user passes them: an essay file and a punkt_tab folder, read by loadRulerResources. */
function punktResources(record: FixtureRecord): RulerResources {
  const dir = mkdtempSync(join(tmpdir(), "ruler-punkt-"));
  try {
    const essay = join(dir, "essays.json");
    writeFileSync(essay, JSON.stringify({ text: fixture.inputs[record.essay ?? "essay"] }));
    return { ...resources, ...loadRulerResources([record.task], { essay, punkt: join(repo, record.punkt!) }, { keyWords: fixture.inputs.keyWords }) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("RULER task builders equal RULER's generators", () => {
  it("use RULER's templates and answer prefixes verbatim (base model template) and its depths", () => {
    expect(RULER_NIAH_TEMPLATE + RULER_NIAH_ANSWER_PREFIX).toBe(fixture.templates.niah);
    expect(RULER_VT_TEMPLATE + RULER_VT_ANSWER_PREFIX).toBe(fixture.templates.variable_tracking);
    expect(RULER_CWE_TEMPLATE + RULER_CWE_ANSWER_PREFIX).toBe(fixture.templates.common_words_extraction);
    expect(RULER_FWE_TEMPLATE + RULER_FWE_ANSWER_PREFIX).toBe(fixture.templates.freq_words_extraction);
    expect(RULER_QA_TEMPLATE + RULER_QA_ANSWER_PREFIX).toBe(fixture.templates.qa);
    expect(RULER_DEPTHS).toEqual(fixture.depths);
  });

  it("covers every task but the three checked in ruler-niah.test.ts", () => {
    const covered = new Set(fixture.records.map((r) => r.task));
    expect(RULER_TASK_NAMES.filter((t) => !covered.has(t))).toEqual(["niah_single_1", "niah_multikey_2", "niah_multikey_3"]);
  });

  for (const record of fixture.records) {
    const where = record.index !== undefined ? `, question ${record.index}` : record.maxSeqLength !== undefined ? `, max_seq_length ${record.maxSeqLength}` : "";
    const split = record.punkt !== undefined ? `, ${record.essay} split by Punkt (${record.punkt.split("/").at(-1)} parameters)` : "";
    it(`${record.task}, size ${record.size}${where}${split}`, () => {
      const spec = RULER_TASKS[record.task];
      if (record.iclNumNoises !== undefined && spec.kind === "vt") expect(spec.config.iclNumNoises).toBe(record.iclNumNoises);
      // fwe's vocabulary comes from max_seq_length: (L - 50) // 50 = vocabSize for L = 50 (vocabSize + 1).
      const maxSeqLength = record.maxSeqLength ?? (record.vocabSize !== undefined ? 50 * (record.vocabSize + 1) : 4096);
      if (record.vocabSize !== undefined) expect(rulerFweVocabSize(maxSeqLength)).toBe(record.vocabSize);
      const random = replayRulerDraws(record.draws, fixture.permutations);
      const built = buildRulerRecord(record.task, { size: record.size, maxSeqLength, index: record.index ?? 0 }, random, record.punkt !== undefined ? punktResources(record) : resources);
      expect(built.prompt).toBe(record.prompt);
      expect(built.answers).toEqual(record.answers);
      expect(random.left()).toBe(0);
    });
  }
});

describe("RULER essay haystack split by Punkt", () => {
  const punktRecords = fixture.records.filter((r) => r.punkt !== undefined);
  it("covers niah_single_2, niah_single_3 and niah_multikey_1 on both essays", () => {
    for (const task of ["niah_single_2", "niah_single_3", "niah_multikey_1"]) {
      expect(new Set(punktRecords.filter((r) => r.task === task).map((r) => r.essay))).toEqual(new Set(["essay", "punktEssay"]));
    }
  });

  it("is what makes those prompts: the simple rule builds other prompts from the same draws", () => {
    let differ = 0;
    for (const record of punktRecords) {
      const simple = { ...punktResources(record), splitSentences: rulerSplitSentences };
      const built = buildRulerRecord(record.task, { size: record.size, maxSeqLength: 4096, index: 0 }, replayRulerDraws(record.draws, fixture.permutations), simple);
      if (built.prompt !== record.prompt) differ++;
    }
    expect(differ).toBeGreaterThan(punktRecords.length / 2);
  });
});

describe("a suite's RULER files", () => {
  it("take a punkt folder, which splits the essay haystack", () => {
    const dir = mkdtempSync(join(tmpdir(), "ruler-suite-"));
    try {
      const essay = join(dir, "essays.json");
      writeFileSync(essay, JSON.stringify({ text: fixture.inputs.essay }));
      const punkt = join(repo, "test/fixtures/punkt/params/trained");
      const files = { essay, punkt };
      const suite = parseSuite({ name: "s", backbone: "model", lengths: [512], tasks: [{ name: "niah_single_2", source: "ruler", files }], methods: [{ name: "full" }] });
      const task = suite.tasks[0] as TaskOf<"ruler">;
      expect(task.files).toEqual(files);
      const split = rulerResources("niah_single_2", task).splitSentences!;
      expect(split("Mr. Holmes came. Then he left.")).toEqual(["Mr. Holmes came.", "Then he left."]);
      expect(rulerSplitSentences("Mr. Holmes came. Then he left.")).toEqual(["Mr.", "Holmes came.", "Then he left."]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("RULER task registry", () => {
  it("lists RULER's metrics and the resources each task needs", () => {
    const metrics = Object.fromEntries(RULER_TASK_NAMES.map((t) => [t, RULER_TASKS[t].metric]));
    expect(Object.entries(metrics).filter(([, m]) => m === "string_match_part").map(([t]) => t)).toEqual(["qa_1", "qa_2"]);
    expect(RULER_TASKS.niah_multikey_3.needs).toEqual([]);
    expect(RULER_TASKS.niah_single_2.needs).toEqual(["essay", "keyWords"]);
    expect(RULER_TASKS.cwe.needs).toEqual(["commonWords"]);
  });

  it("builds every task from a seed, deterministically, with the answers in the prompt where RULER puts them", () => {
    for (const task of RULER_TASK_NAMES) {
      // Essay words and fwe's Zipf counts need larger sizes for every needle / answer to appear (rank 4 of fwe: size / 16 / 1.64).
      const size = RULER_TASKS[task].needs.includes("essay") ? 200 : task === "fwe" ? 200 : 20;
      const request = { size, maxSeqLength: 4096, index: 1 };
      const a = buildRulerRecord(task, request, seededRulerRandom(7), resources);
      const b = buildRulerRecord(task, request, seededRulerRandom(7), resources);
      expect(a).toEqual(b);
      expect(a.answers.length).toBeGreaterThan(0);
      if (RULER_TASKS[task].kind !== "qa") for (const answer of a.answers) expect(a.prompt).toContain(answer);
    }
  });

  it("seededRulerRandom samples distinct indexes and shuffles with a fixed permutation per seed", () => {
    const random = seededRulerRandom(3);
    const picked = random.sample(1_000_000, 50);
    expect(new Set(picked).size).toBe(50);
    expect(picked.every((i) => Number.isInteger(i) && i >= 0 && i < 1_000_000)).toBe(true);
    expect([...random.sample(6, 6)].sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(random.shufflePermutation(30, 42)).toEqual(seededRulerRandom(9).shufflePermutation(30, 42));
    expect(random.getrandbits128() < 1n << 128n).toBe(true);
    expect(() => random.sample(3, 4)).toThrow(/sample of 4 from 3/);
  });

  it("names the missing resource", () => {
    expect(() => buildRulerRecord("qa_1", { size: 3, maxSeqLength: 4096, index: 0 }, seededRulerRandom(1), {})).toThrow(/qa_1 needs the squad resource/);
    expect(() => buildRulerRecord("niah_single_2", { size: 30, maxSeqLength: 4096, index: 0 }, seededRulerRandom(1), { keyWords: ["a-b"] })).toThrow(/needs the essay resource/);
  });
});

describe("loadRulerResources", () => {
  it("reads the files the tasks need: essay JSON, word lines, English words, SQuAD and HotpotQA", () => {
    const dir = mkdtempSync(join(tmpdir(), "ruler-resources-"));
    try {
      const file = (name: string, content: string): string => (writeFileSync(join(dir, name), content), join(dir, name));
      const files = {
        essay: file("essays.json", JSON.stringify({ text: fixture.inputs.essay })),
        keyWords: file("keys.txt", `${fixture.inputs.keyWords.join("\n")}\n`),
        commonWords: [file("nouns.txt", "apple \nriver\r\n\n"), file("verbs.txt", "run\n")],
        englishWords: file("english.json", JSON.stringify({ a: "alta", b: "beta" })),
        squad: file("squad.json", JSON.stringify(fixture.inputs.squad)),
        hotpotqa: file("hotpot.json", JSON.stringify(fixture.inputs.hotpotqa)),
      };
      const loaded = loadRulerResources(["niah_single_2", "cwe", "qa_1", "qa_2"], files);
      expect(loaded.essay).toBe(fixture.inputs.essay);
      expect(loaded.keyWords).toEqual(fixture.inputs.keyWords);
      expect(loaded.commonWords).toEqual(["apple", "river", "run"]);
      expect(loaded.englishWords).toEqual(["alta", "beta"]);
      expect(loaded.squad).toEqual(resources.squad);
      expect(loaded.hotpotqa).toEqual(resources.hotpotqa);
      expect(loaded.splitSentences).toBeUndefined(); // no punkt folder: rulerSplitSentences, the builder's default
      expect(() => loadRulerResources(["niah_single_2"], { ...files, punkt: join(dir, "no-punkt") })).toThrow(/punkt folder .*no-punkt does not exist/);
      expect(loadRulerResources(["vt", "fwe", "niah_multikey_3"], {})).toEqual({});
      expect(() => loadRulerResources(["qa_2"], {})).toThrow(/qa_2 need the hotpotqa file/);
      expect(() => loadRulerResources(["niah_single_3"], { ...files, essay: files.keyWords })).toThrow(/not valid JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
