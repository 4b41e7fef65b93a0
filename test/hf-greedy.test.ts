/**
 * The eval harness's full-KV answers on edge-lm against Hugging Face transformers' greedy answers to the same
 * prompts (test/fixtures/hf-greedy/edge-lm-2048.json: the prompts of `node scripts/eval-prompts.mjs SUITE --limit 2`
 * with the fixture's suite, decoded by transformers 5.17.0 in fp32 with eager attention as scripts/hf_greedy.py
 * does; docs/evaluation.md, "Checking full KV against Hugging Face transformers"). The records are the first two of
 * each task of eval/edge-lm-retrieval.yaml at 2048 tokens (seed 2503); key-value record 0 is one the backbone itself
 * answers wrongly (another key's value), so this checks that a method's misses at the trained context are the
 * backbone's, not the harness's: prompt ids (the generator, the tokenizer, the template), the greedy ids, the stop,
 * the decoded prediction and the score, end to end.
 */
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runSuite } from "../src/eval/harness.js";
import { parseSuite, type Suite } from "../src/eval/suite.js";
import { samplesForTask, suiteSampleSources, type EvalSample } from "../src/eval/samples.js";
import { loadBackbone, type LoadedBackbone } from "../src/loaders/index.js";
import { initBackend } from "../src/backend/select.js";
import type { SampleRow } from "../src/eval/samples-log.js";

const SHARED = resolve(import.meta.dirname, "..", "..", "shared");
const EDGE_LM = join(SHARED, "models", "edge-lm");
const FIXTURE = resolve(import.meta.dirname, "fixtures", "hf-greedy", "edge-lm-2048.json");

interface HfRow {
  sampleId: string;
  promptSha256: string;
  outputIds: number[];
  /** transformers' decode (scripts/hf_greedy.py writes it; the fixture's first version, made before, has none). */
  text?: string;
}
const fixture = JSON.parse(readFileSync(FIXTURE, "utf8")) as { madeBy: Record<string, string>; suite: Record<string, unknown>; limit: number; rows: HfRow[] };

const work = mkdtempSync(join(tmpdir(), "edgeinf-hf-greedy-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let suite: Suite;
let backbone: LoadedBackbone;
let samples: EvalSample[];
let rows: SampleRow[];

beforeAll(async () => {
  await initBackend("wasm", { log: () => {} });
  // The fixture's suite: eval/edge-lm-retrieval.yaml's tasks, seed and corpus at 2048 tokens, full KV only.
  suite = parseSuite({ ...fixture.suite, backbone: EDGE_LM, corpus: join(SHARED, "corpora", "gutenberg", "heldout"), methods: [{ name: "full" }] });
  backbone = await loadBackbone(EDGE_LM);
  const sources = suiteSampleSources(suite, backbone.tokenizer, { limit: fixture.limit });
  samples = suite.tasks.flatMap((t) => samplesForTask(suite, t, sources));
  const result = await runSuite(suite, { runDir: join(work, "run"), backbone, limit: fixture.limit, progress: "none", warn: () => {} });
  rows = result.samples;
}, 240_000);

describe("full KV on edge-lm answers as transformers does (2048 tokens, greedy)", () => {
  it("builds the same prompts the fixture was made from", () => {
    expect(samples.map((s) => s.sampleId)).toEqual(fixture.rows.map((r) => r.sampleId));
    for (const s of samples) {
      const sha = createHash("sha256").update(JSON.stringify(s.promptIds)).digest("hex");
      expect(sha, s.sampleId).toBe(fixture.rows.find((r) => r.sampleId === s.sampleId)!.promptSha256);
    }
  });

  it("generates transformers' greedy ids up to its stop and scores the answer they spell", () => {
    expect(rows).toHaveLength(fixture.rows.length);
    for (const hf of fixture.rows) {
      const row = rows.find((r) => r.sampleId === hf.sampleId)!;
      const sample = samples.find((s) => s.sampleId === hf.sampleId)!;
      // The harness stops at a stop id (not emitted) or at maxNewTokens; transformers ran on without stopping.
      const n = row.outputIds.length;
      expect(row.outputIds, hf.sampleId).toEqual(hf.outputIds.slice(0, n));
      expect(n === sample.maxNewTokens || sample.stopIds.includes(hf.outputIds[n]!), hf.sampleId).toBe(true);
      if (hf.text !== undefined) expect(hf.text.startsWith(row.prediction.trimEnd()), hf.sampleId).toBe(true);
      const digits = row.prediction.match(/\d+/)?.[0] ?? "";
      expect(row.score, hf.sampleId).toBe(digits === row.answers[0] ? 1 : 0);
    }
  });

  it("key-value record 0 is one the backbone gets wrong with full attention, and so does the harness", () => {
    const miss = rows.find((r) => r.sampleId === "kv-retrieval_2048_2503_0_d0.05")!;
    expect(miss.score).toBe(0);
    expect(rows.filter((r) => r.score === 1)).toHaveLength(3);
  });
});

// The script runs the built library (dist/, made by npm ci's prepare script).
describe("scripts/eval-prompts.mjs (the fixture's prompts, for an outside implementation)", () => {
  const script = resolve(import.meta.dirname, "..", "scripts", "eval-prompts.mjs");
  const run = (args: string[]) => spawnSync(process.execPath, [script, ...args], { encoding: "utf8" });

  it("writes the prompts the harness runs: same records, same ids, with the suite and limit", () => {
    const suitePath = join(work, "suite.json");
    writeFileSync(suitePath, JSON.stringify({ ...fixture.suite, backbone: EDGE_LM, corpus: join(SHARED, "corpora", "gutenberg", "heldout"), methods: [{ name: "full" }] }));
    const out = join(work, "prompts.json");
    const r = run([suitePath, out, "--limit", String(fixture.limit)]);
    expect(r.status, r.stderr).toBe(0);
    const written = JSON.parse(readFileSync(out, "utf8")) as { suite: Record<string, unknown>; limit: number; prompts: { sampleId: string; promptIds: number[]; maxNewTokens: number; stopIds: number[] }[] };
    expect(written.limit).toBe(fixture.limit);
    expect(written.suite["seed"]).toBe(fixture.suite["seed"]);
    expect(written.prompts.map((p) => p.sampleId)).toEqual(fixture.rows.map((row) => row.sampleId));
    for (const p of written.prompts) {
      expect(createHash("sha256").update(JSON.stringify(p.promptIds)).digest("hex")).toBe(fixture.rows.find((row) => row.sampleId === p.sampleId)!.promptSha256);
      const sample = samples.find((s) => s.sampleId === p.sampleId)!;
      expect([p.maxNewTokens, p.stopIds]).toEqual([sample.maxNewTokens, sample.stopIds]);
    }
  });

  it("bad input: one error line, exit code 1, no file", () => {
    const out = join(work, "none.json");
    const r = run([join(work, "missing.yaml"), out]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^error: suite .*missing\.yaml cannot be read/)]);
    expect(existsSync(out)).toBe(false);
    const usage = run([]);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/^error: usage: node scripts\/eval-prompts\.mjs/);
  });
});
