import { describe, it, expect, beforeAll, afterAll, vi } from "vitest";
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { identifyBackbone, loadBackbone, type LoadedBackbone } from "../src/loaders/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import { loadCorpus } from "../src/datasets/manifest.js";
import { generateTask } from "../src/datasets/synthetic/index.js";
import { loadCheckpoint, saveCheckpoint, writeCheckpointLayout } from "../src/training/checkpoint.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig } from "../src/memory/config.js";
import { EdgeInfError } from "../src/util/errors.js";
import { loadSuite, parseSuite, type Suite } from "../src/eval/suite.js";
import { runSuite, type RunResult } from "../src/eval/harness.js";
import { checkBudget, prepareMethod } from "../src/eval/methods.js";
import { report } from "../src/eval/report.js";
import type { SampleRow } from "../src/eval/samples-log.js";
import { median } from "../src/eval/measure.js";
import { formatSeconds, progressReporter, rateAndEta } from "../src/eval/progress.js";
import { scorePrediction } from "../src/eval/metrics/index.js";
import type { InferenceSession } from "../src/backbone/session.js";
import { countPixels, decodePng, svgSize } from "./fixtures/png.js";

/**
 * Every session the harness makes (warm-up and timed) goes through createSession: while `recording` is set, each is
 * wrapped to log its prefill (tokens, wall ms, an optional injected delay) and the greedy id after every prefill and
 * step, so tests can count sessions and compare repeats. Off, sessions pass through untouched.
 */
interface RecordedSession {
  method: string;
  prefillTokens: number;
  /** Wall ms of the prefill call (injected delay included); generate's TTFT spans it. */
  prefillMs: number;
  /** Ids fed by step(). */
  stepIds: number[];
  /** Argmax of the logits after the prefill and after each step: the greedy continuation. */
  greedy: number[];
}
const sessions = vi.hoisted(() => ({
  recording: false,
  log: [] as RecordedSession[],
  /** ms to sleep before the n-th recorded session's prefill (0-based). */
  delayMs: (_n: number): number => 0,
}));
vi.mock("../src/eval/methods.js", async (importOriginal) => {
  const original = await importOriginal<typeof import("../src/eval/methods.js")>();
  const argmax = async (t: tf.Tensor): Promise<number> => {
    const a = t.argMax();
    try {
      return (await a.data())[0]!;
    } finally {
      a.dispose();
    }
  };
  const createSession: typeof original.createSession = (method, ctx) => {
    const inner = original.createSession(method, ctx);
    if (!sessions.recording) return inner;
    const rec: RecordedSession = { method: inner.method, prefillTokens: -1, prefillMs: -1, stepIds: [], greedy: [] };
    const delay = sessions.delayMs(sessions.log.length);
    sessions.log.push(rec);
    const wrapped: InferenceSession = {
      method: inner.method,
      async prefill(ids) {
        const t0 = performance.now();
        if (delay > 0) await new Promise((done) => setTimeout(done, delay));
        const logits = await inner.prefill(ids);
        rec.prefillMs = performance.now() - t0;
        rec.prefillTokens = ids.length;
        rec.greedy.push(await argmax(logits));
        return logits;
      },
      async step(id) {
        rec.stepIds.push(id);
        const logits = await inner.step(id);
        rec.greedy.push(await argmax(logits));
        return logits;
      },
      kvBytes: () => inner.kvBytes(),
      peakKvBytes: () => inner.peakKvBytes(),
      tokensSeen: () => inner.tokensSeen(),
      dispose: () => inner.dispose(),
    };
    return wrapped;
  };
  return { ...original, createSession };
});

/** Records the sessions made while `body` runs, sleeping delayMs(n) before the n-th one's prefill. */
async function recordSessions<T>(body: () => Promise<T>, delayMs: (n: number) => number = () => 0): Promise<{ result: T; log: RecordedSession[] }> {
  sessions.recording = true;
  sessions.log = [];
  sessions.delayMs = delayMs;
  try {
    return { result: await body(), log: sessions.log };
  } finally {
    sessions.recording = false;
    sessions.delayMs = () => 0;
  }
}

const repo = resolve(__dirname, "..");
const storiesPath = resolve(repo, "../shared/models/stories260K/stories260K.bin");
const corpusPath = resolve(repo, "../shared/corpora/gutenberg/heldout");

/** Bytes of one cached token in stories260K: keys + values, 5 layers × 4 KV heads × head dim 8, float32. */
const STORIES_TOKEN_BYTES = 2 * 5 * 4 * 8 * 4;

let backbone: LoadedBackbone;
let model: LlamaModel;
const dirs: string[] = [];

function tempDir(tag: string): string {
  const d = mkdtempSync(join(tmpdir(), `edgeinf-eval-${tag}-`));
  dirs.push(d);
  return d;
}

function suite(overrides: Record<string, unknown>): Suite {
  return parseSuite(
    {
      name: "tiny",
      backbone: storiesPath,
      corpus: corpusPath,
      seed: 7,
      lengths: [128],
      // No intro: stories260K's small vocabulary spends 100 tokens on it, more than these short contexts allow.
      tasks: [{ name: "passkey", source: "synthetic", count: 2, depths: [0.2, 0.8], intro: false }],
      methods: [{ name: "full" }],
      generation: { maxNewTokens: 8, temperature: 0 },
      warmup: false,
      ...overrides,
    },
    "<test suite>",
    repo,
  );
}

function run(s: Suite, runDir: string, extra: Partial<Parameters<typeof runSuite>[1]> = {}): Promise<RunResult> {
  return runSuite(s, { runDir, backbone, model, progress: "none", warn: () => {}, ...extra });
}

function readRows(runDir: string): SampleRow[] {
  return readFileSync(join(runDir, "samples.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as SampleRow);
}

/** Greedy decoding with no cache at all: full forward over prompt + output so far, argmax of the last row. */
function referenceGreedy(promptIds: number[], maxNewTokens: number, stop: (id: number) => boolean): number[] {
  const ids = [...promptIds];
  const out: number[] = [];
  for (let i = 0; i < maxNewTokens; i++) {
    const next = tf.tidy(() => {
      const hidden = model.forward(ids);
      const last = tf.slice(hidden, [ids.length - 1, 0], [1, hidden.shape[1]]);
      return model.logits(last).argMax(1).dataSync()[0]!;
    });
    if (stop(next)) break;
    out.push(next);
    ids.push(next);
  }
  return out;
}

/** Expect an EdgeInfError with a one-line message matching every pattern. */
async function expectOneLineError(p: Promise<unknown> | (() => unknown), ...patterns: (string | RegExp)[]): Promise<void> {
  let error: unknown = null;
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(EdgeInfError);
  const message = (error as Error).message;
  expect(message).not.toContain("\n");
  for (const pattern of patterns) expect(message).toMatch(pattern);
}

beforeAll(async () => {
  await initBackend("wasm", { log: () => {} });
  backbone = await loadBackbone(storiesPath);
  model = LlamaModel.fromHost(backbone.config, backbone.weights);
});

afterAll(() => {
  model?.dispose();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("methods that keep every token reproduce the backbone", () => {
  it("full, and streaming with sink + window ≥ prompt, give plain-forward greedy ids", async () => {
    const s = suite({
      lengths: [200],
      methods: [{ name: "full" }, { name: "streaming", sinkTokens: 4, windowTokens: 400 }],
      generation: { maxNewTokens: 12, temperature: 0 },
    });
    const runDir = tempDir("exact");
    const result = await run(s, runDir);
    expect(result.samples).toHaveLength(4);

    // The prompts, built here from the generator's records: BOS + context + query.
    const records = generateTask("passkey", { tokenizer: backbone.tokenizer, corpus: loadCorpus(corpusPath).texts, targetTokens: 200, count: 2, seed: 7, depths: [0.2, 0.8], intro: false });
    const tok = backbone.tokenizer;
    const stop = (id: number) => id === tok.eosId || tok.decode([id]).includes("\n");
    for (const record of records) {
      const promptIds = tok.encode(record.context + record.input, { bos: true });
      const expected = referenceGreedy(promptIds, 12, stop);
      expect(expected.length).toBeGreaterThan(0);
      for (const method of ["full", "streaming"]) {
        const row = result.samples.find((r) => r.sampleId === record._id && r.method === method)!;
        expect(row.promptTokens).toBe(promptIds.length);
        expect(row.outputIds).toEqual(expected);
        expect(row.prediction).toBe(tok.decode(expected));
        // Nothing evicted: both hold the whole prompt after prefill.
        expect(row.kvBytesAfterPrefill).toBe(promptIds.length * STORIES_TOKEN_BYTES);
        expect(row.kvBytesFull).toBe(promptIds.length * STORIES_TOKEN_BYTES);
        expect(row.leakedTensors).toBe(0);
        // string_match_all with one answer: 1 when the key appears in the prediction.
        expect(row.score).toBe(row.prediction.includes(record.answers[0]!) ? 1 : 0);
      }
    }
  });
});

describe("a tiny suite end to end", () => {
  const methods = [
    { name: "full" },
    { name: "streaming", budget: 64, sinkTokens: 4 },
    { name: "h2o", budget: "50%" },
    { name: "edgeinfinite", sinkTokens: 4, windowTokens: 60, segmentLength: 32 },
  ];
  const labels = ["full", "streaming", "h2o", "edgeinfinite-untrained"];
  let s: Suite;
  let runDir: string;
  let result: RunResult;

  beforeAll(async () => {
    s = suite({ lengths: [128, 192], methods });
    runDir = tempDir("e2e");
    result = await run(s, runDir);
  });

  it("writes one sample line per task × length × sample × method and the run record", () => {
    const rows = readRows(runDir);
    expect(rows).toHaveLength(1 * 2 * 2 * 4);
    expect(result.newSamples).toBe(16);
    expect(result.complete).toBe(true);
    const runJson = JSON.parse(readFileSync(join(runDir, "run.json"), "utf8")) as Record<string, unknown> & { versions: Record<string, string>; invocations: unknown[] };
    expect(runJson["seed"]).toBe(7);
    expect(runJson["backend"]).toBe("wasm");
    expect(runJson.versions["tfjs"]).toBe(tf.version_core);
    expect(runJson.versions["node"]).toBe(process.versions.node);
    expect(runJson.invocations).toHaveLength(1);
  });

  it("measures KV bytes as the budgets say", () => {
    for (const r of readRows(runDir)) {
      const perToken = STORIES_TOKEN_BYTES;
      if (r.method === "full") expect(r.kvBytesAfterPrefill).toBe(r.promptTokens * perToken);
      if (r.method === "streaming") expect(r.kvBytesAfterPrefill).toBe(64 * perToken);
      if (r.method === "h2o") expect(r.kvBytesAfterPrefill).toBe(Math.round(r.promptTokens / 2) * perToken);
      expect(r.peakKvBytes).toBeGreaterThanOrEqual(r.kvBytesAfterPrefill);
      expect(r.ttftMs).toBeGreaterThan(0);
      expect(r.maxRssKb).toBeGreaterThan(0);
      expect(r.backend).toBe("wasm");
      expect(r.score).toBe(r.answers.every((a) => r.prediction.includes(a)) ? 1 : 0);
    }
  });

  it("aggregates per task × length × method into results.csv/json/md", () => {
    const rows = readRows(runDir);
    const csv = readFileSync(join(runDir, "results.csv"), "utf8").trim().split("\n");
    const header = csv[0]!.split(",");
    expect(header).toEqual([
      "task", "length", "method", "n", "score", "ttftMs", "decodeTokensPerSecond", "prefillTokensPerSecond", "promptTokens",
      "kvBytesAfterPrefill", "peakKvBytes", "kvBytesFull", "kvRatio", "maxRssKb", "backend",
    ]);
    expect(csv).toHaveLength(1 + 8);
    const cells = csv.slice(1).map((line) => Object.fromEntries(line.split(",").map((v, i) => [header[i]!, v])));
    // Table order: lengths ascending, methods in suite order.
    expect(cells.map((c) => `${c["length"]}/${c["method"]}`)).toEqual([128, 192].flatMap((l) => labels.map((m) => `${l}/${m}`)));
    for (const c of cells) {
      const mine = rows.filter((r) => r.method === c["method"] && r.length === Number(c["length"]));
      expect(Number(c["n"])).toBe(2);
      expect(Number(c["score"])).toBeCloseTo((100 * (mine[0]!.score + mine[1]!.score)) / 2, 9);
      expect(Number(c["ttftMs"])).toBeCloseTo((mine[0]!.ttftMs + mine[1]!.ttftMs) / 2, 6);
      expect(Number(c["peakKvBytes"])).toBe(Math.max(mine[0]!.peakKvBytes, mine[1]!.peakKvBytes));
      const ratio = (mine[0]!.kvBytesAfterPrefill / mine[0]!.kvBytesFull + mine[1]!.kvBytesAfterPrefill / mine[1]!.kvBytesFull) / 2;
      expect(Number(c["kvRatio"])).toBeCloseTo(ratio, 9);
    }
    const json = JSON.parse(readFileSync(join(runDir, "results.json"), "utf8")) as { aggregates: { method: string; n: number }[]; samples: unknown[] };
    expect(json.aggregates).toHaveLength(8);
    expect(json.samples).toHaveLength(16);
    const md = readFileSync(join(runDir, "results.md"), "utf8");
    for (const m of labels) expect(md).toContain(`|${m}|`);
    expect(md).toContain("|task|length|method|n|score|TTFT ms|");
    expect(existsSync(join(runDir, "samples.csv"))).toBe(true);
  });

  it("report prints the comparison and writes both plots as SVG and PNG", async () => {
    let printed = "";
    const warnings: string[] = [];
    const r = await report(runDir, { print: (t) => (printed += t), warn: (m) => warnings.push(m) });
    expect(printed).toContain("|task|length|full|streaming|h2o|edgeinfinite-untrained|");
    expect(warnings).toEqual([]);
    expect(r.files.map((f) => f.split("/").pop())).toEqual(["score_vs_kv.svg", "score_vs_kv.png", "ttft_vs_length.svg", "ttft_vs_length.png"]);
    const pngs: Buffer[] = [];
    for (const name of ["score_vs_kv", "ttft_vs_length"]) {
      const svg = readFileSync(join(runDir, `${name}.svg`), "utf8");
      expect(svg.startsWith("<svg")).toBe(true);
      for (const m of labels) expect(svg).toContain(m);

      const png = readFileSync(join(runDir, `${name}.png`));
      pngs.push(png);
      // Signature, IHDR first and IEND last, every CRC, the inflated IDAT of the right size: decodePng checks them.
      expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
      const img = decodePng(png);
      // Twice the SVG's size (PNG_SCALE), so labels stay readable.
      const size = svgSize(svg);
      expect(size.width).toBeGreaterThan(100);
      expect([img.width, img.height]).toEqual([2 * size.width, 2 * size.height]);
      expect(png.length).toBeGreaterThan(10_000);
      const all = countPixels(img);
      // White background, a few % inked, method colours for the marks, and text: near-black pixels (axes and grid
      // are grey) overall and in the title band at the top, where nothing but the title is drawn.
      expect(all.transparent).toBe(0);
      expect(all.inked).toBeGreaterThan(0.02 * img.width * img.height);
      expect(all.inked).toBeLessThan(0.5 * img.width * img.height);
      expect(all.coloured).toBeGreaterThan(200);
      expect(all.dark).toBeGreaterThan(2000);
      expect(countPixels(img, 0, 40).dark).toBeGreaterThan(100);
    }
    expect(pngs[0]!.equals(pngs[1]!)).toBe(false);
  });

  it("report writes SVG only, with one warning, when the rasteriser cannot load (and drops older PNGs)", async () => {
    const dir = tempDir("no-png");
    // The run dir as the report above left it (with its PNGs), without its SVGs.
    cpSync(runDir, dir, { recursive: true });
    for (const f of readdirSync(dir)) if (f.endsWith(".svg")) rmSync(join(dir, f));
    const warnings: string[] = [];
    const failing = async (): Promise<never> => {
      throw new Error("Cannot find module '@resvg/resvg-js-linux-x64-gnu'\nRequire stack: ...");
    };
    const r = await report(dir, { print: () => {}, warn: (m) => warnings.push(m), rasteriser: failing });
    expect(r.files.map((f) => f.split("/").pop())).toEqual(["score_vs_kv.svg", "ttft_vs_length.svg"]);
    for (const f of r.files) expect(readFileSync(f, "utf8").startsWith("<svg")).toBe(true);
    expect(readdirSync(dir).filter((f) => f.endsWith(".png"))).toEqual([]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).not.toContain("\n");
    expect(warnings[0]).toMatch(/PNG plots skipped, SVG only: .*@resvg\/resvg-js.*Cannot find module '@resvg\/resvg-js-linux-x64-gnu'/);
  });

  it("re-running the same run dir skips every finished sample", async () => {
    const before = readFileSync(join(runDir, "samples.jsonl"), "utf8");
    const again = await run(s, runDir);
    expect(again.newSamples).toBe(0);
    expect(again.resumedSamples).toBe(16);
    expect(readFileSync(join(runDir, "samples.jsonl"), "utf8")).toBe(before);
  });

  it("interrupted after k samples then resumed gives the same table", async () => {
    const dir = tempDir("resume");
    const controller = new AbortController();
    const first = await run(s, dir, { onProgress: (e) => e.done === 5 && controller.abort(), signal: controller.signal });
    expect(first.complete).toBe(false);
    expect(readRows(dir)).toHaveLength(5);
    const second = await run(s, dir);
    expect(second.newSamples).toBe(11);
    expect(second.resumedSamples).toBe(5);
    expect(readRows(dir)).toHaveLength(16);
    const deterministic = (r: RunResult) =>
      r.aggregates.map((a) => [a.task, a.length, a.method, a.n, a.score, a.promptTokens, a.kvBytesAfterPrefill, a.peakKvBytes, a.kvRatio]);
    expect(deterministic(second)).toEqual(deterministic(result));
    const outputs = (r: RunResult) => r.samples.map((x) => [x.sampleId, x.method, x.outputIds]);
    expect(outputs(second)).toEqual(outputs(result));
  });

  it("a line cut off by a crash is dropped and its sample run again", async () => {
    const dir = tempDir("crash");
    cpSync(runDir, dir, { recursive: true });
    const lines = readFileSync(join(dir, "samples.jsonl"), "utf8").trim().split("\n");
    writeFileSync(join(dir, "samples.jsonl"), lines.slice(0, -1).join("\n") + "\n" + lines.at(-1)!.slice(0, 40));
    const again = await run(s, dir);
    expect(again.newSamples).toBe(1);
    expect(readRows(dir)).toHaveLength(16);
  });

  it("a method added to the suite later runs alone; --methods selects, and names an unknown one", async () => {
    const dir = tempDir("added");
    cpSync(runDir, dir, { recursive: true });
    const grown = suite({ lengths: [128, 192], methods: [...methods, { name: "tova", budget: 48 }] });
    await expectOneLineError(run(grown, dir, { methods: ["tova", "snapkv"] }), /method "snapkv" is not in suite <test suite>/, /the suite's methods: full, streaming, h2o, edgeinfinite-untrained, tova/);
    const added = await run(grown, dir, { methods: ["tova"] });
    expect(added.newSamples).toBe(4);
    expect(added.resumedSamples).toBe(0);
    expect(added.aggregates).toHaveLength(10);
    for (const r of added.samples.filter((x) => x.method === "tova")) expect(r.kvBytesAfterPrefill).toBe(48 * STORIES_TOKEN_BYTES);
  });

  it("refuses to resume rows made with other method settings", async () => {
    const changed = suite({ lengths: [128, 192], methods: methods.map((m) => (m.name === "h2o" ? { ...m, budget: "40%" } : m)) });
    await expectOneLineError(run(changed, runDir), /rows of method "h2o" were made with other settings/, /new --run-dir/);
  });
});

describe("warm-up and repeats", () => {
  const methods = [{ name: "full" }, { name: "streaming", budget: 64, sinkTokens: 4 }];
  /** Greedy output of a recorded session: its argmax ids up to the first stop id (EOS, newline), at most 8 (maxNewTokens). */
  const outputOf = (greedy: readonly number[]): number[] => {
    const tok = backbone.tokenizer;
    const cut = greedy.findIndex((id) => id === tok.eosId || tok.decode([id]).includes("\n"));
    return greedy.slice(0, Math.min(cut === -1 ? greedy.length : cut, 8));
  };

  it("the warm-up is one untimed 16-token session per method, before its samples, and in no row", async () => {
    const dir = tempDir("warmup");
    const { result, log } = await recordSessions(() => run(suite({ methods, warmup: true }), dir));
    const rows = readRows(dir);
    // 2 samples × 2 methods are measured: 4 rows, 4 timed sessions, plus one warm-up session per method first.
    expect(rows).toHaveLength(4);
    expect(result.newSamples).toBe(4);
    expect(log).toHaveLength(2 + 4);
    const warm = log.slice(0, 2);
    const timed = log.slice(2);
    // Run order: warm-ups in suite method order, then sample × method.
    expect(timed.map((t) => t.method)).toEqual([warm[0]!.method, warm[1]!.method, warm[0]!.method, warm[1]!.method]);
    for (const w of warm) {
      expect(w.prefillTokens).toBe(16);
      expect(w.stepIds).toHaveLength(1);
    }
    // samples.jsonl is in run order: row i is timed session i, measured once; no row is the warm-up.
    for (const [i, row] of rows.entries()) {
      expect(row.promptTokens).toBeGreaterThan(16);
      expect(timed[i]!.prefillTokens).toBe(row.promptTokens);
      expect(row.repeats).toBe(1);
      expect(row.ttftMsRuns).toEqual([row.ttftMs]);
      expect(row.ttftMs).toBeGreaterThanOrEqual(timed[i]!.prefillMs);
      expect(outputOf(timed[i]!.greedy)).toEqual(row.outputIds);
    }

    // Without warm-up: the same rows from exactly one session per row.
    const cold = tempDir("no-warmup");
    const plain = await recordSessions(() => run(suite({ methods, warmup: false }), cold));
    expect(plain.log).toHaveLength(4);
    expect(plain.log.every((t) => t.prefillTokens > 16)).toBe(true);
    const results = (rs: SampleRow[]) => rs.map((r) => [r.sampleId, r.method, r.promptTokens, r.outputIds, r.score, r.kvBytesAfterPrefill, r.peakKvBytes]);
    expect(results(readRows(cold))).toEqual(results(rows));

    // Resuming a finished run makes no session at all: no warm-up when nothing is left to measure.
    const again = await recordSessions(() => run(suite({ methods, warmup: true }), dir));
    expect(again.result.newSamples).toBe(0);
    expect(again.log).toHaveLength(0);
  });

  it("repeats: 3 measures every sample in 3 fresh sessions; TTFT is the median of the 3 recorded times; outputs and scores agree", async () => {
    const dir = tempDir("repeats");
    // The 1st and 3rd run of every sample sleep 300 and 60 ms inside prefill, so the three times are far apart and
    // their median (≈ 60 ms + prefill) is far from their mean (≈ 120 ms + prefill).
    const delays = [300, 0, 60];
    const { log } = await recordSessions(() => run(suite({ methods, repeats: 3 }), dir), (n) => delays[n % 3]!);
    const rows = readRows(dir);
    expect(rows).toHaveLength(4);
    expect(log).toHaveLength(4 * 3);
    for (const [i, row] of rows.entries()) {
      const runs = log.slice(3 * i, 3 * i + 3);
      expect(row.repeats).toBe(3);
      for (const r of runs) {
        expect(r.method).toBe(runs[0]!.method);
        expect(r.prefillTokens).toBe(row.promptTokens);
      }
      // One TTFT per run, in run order: each spans that run's prefill (sleep included).
      expect(row.ttftMsRuns).toHaveLength(3);
      for (const [k, r] of runs.entries()) {
        expect(r.prefillMs).toBeGreaterThanOrEqual(delays[k]! - 2);
        expect(row.ttftMsRuns![k]).toBeGreaterThanOrEqual(r.prefillMs);
      }
      expect(row.ttftMs).toBe(median(row.ttftMsRuns!));
      // Two of the three runs slept ≥ 60 ms, so the median did too.
      expect(row.ttftMs).toBeGreaterThanOrEqual(58);
      // Greedy decoding: every run sees the same continuation, so the same output and score as the row.
      for (const r of runs.slice(1)) {
        expect(r.greedy).toEqual(runs[0]!.greedy);
        expect(r.stepIds).toEqual(runs[0]!.stepIds);
      }
      for (const r of runs) {
        const out = outputOf(r.greedy);
        expect(out).toEqual(row.outputIds);
        expect(scorePrediction(row.dataset, backbone.tokenizer.decode(out), row.answers)).toBe(row.score);
      }
    }
    // The tables average the per-sample medians.
    const json = JSON.parse(readFileSync(join(dir, "results.json"), "utf8")) as { aggregates: { method: string; ttftMs: number }[] };
    for (const a of json.aggregates) {
      const mine = rows.filter((r) => r.method === a.method);
      expect(a.ttftMs).toBeCloseTo((mine[0]!.ttftMs + mine[1]!.ttftMs) / 2, 6);
    }
  });
});

describe("edgeinfinite from a checkpoint", () => {
  it("loads the trained tensors and applies the suite's window settings", async () => {
    const dir = tempDir("ckpt");
    const cfg = makeEdgeInfiniteConfig({ sinkTokens: 4, windowTokens: 64, segmentLength: 32 });
    const trained = new MemoryGatingModule(backbone.config, cfg);
    trained.trainableVariables().get("layers.2.gate.bias")!.assign(tf.fill([backbone.config.numHeads], 1.5));
    await saveCheckpoint(dir, trained, { step: 3, backbone: { id: backbone.source.id, sha256: backbone.source.sha256, format: backbone.source.format } });
    trained.dispose();
    const s = suite({ methods: [{ name: "edgeinfinite", checkpoint: dir, windowTokens: 96 }] });
    expect(s.methods[0]!.label).toBe("edgeinfinite");
    const prepared = prepareMethod(s.methods[0]!, backbone);
    try {
      expect(prepared.checkpointDir).toBe(join(dir, "step-000003"));
      expect(prepared.edgeinfinite).toMatchObject({ sinkTokens: 4, windowTokens: 96, segmentLength: 32, routingThreshold: 100 });
      expect(Array.from(prepared.module!.layers[2]!.gate.bias.dataSync())).toEqual(new Array(backbone.config.numHeads).fill(1.5));
      expect(Array.from(prepared.module!.layers[1]!.gate.bias.dataSync())).toEqual(new Array(backbone.config.numHeads).fill(cfg.gateInitLogit));
      expect(prepared.edgeinfinite).toMatchObject({ exactTokens: 0, exactSpread: [0, 0] });
    } finally {
      prepared.dispose();
    }
    // the exact cache and its spread are layout settings too: a suite sets them over the checkpoint's
    const spread = prepareMethod(suite({ methods: [{ name: "edgeinfinite", checkpoint: dir, exactTokens: 8, exactSpread: [1, 2] }] }).methods[0]!, backbone);
    try {
      expect(spread.edgeinfinite).toMatchObject({ exactTokens: 8, exactSpread: [1, 2], windowTokens: 64 });
      expect(Array.from(spread.module!.layers[2]!.gate.bias.dataSync())).toEqual(new Array(backbone.config.numHeads).fill(1.5));
    } finally {
      spread.dispose();
    }
    await expectOneLineError(
      () => prepareMethod(suite({ methods: [{ name: "edgeinfinite", checkpoint: dir, exactSpread: [1] }] }).methods[0]!, backbone),
      /exactSpread/,
      /.+/,
    );
  });

  it("a checkpoint's inference layout (edgeinf layout) is what it runs at unless the suite says otherwise", async () => {
    const dir = tempDir("ckpt-layout");
    const cfg = makeEdgeInfiniteConfig({ sinkTokens: 4, windowTokens: 64, segmentLength: 32 });
    const trained = new MemoryGatingModule(backbone.config, cfg);
    tf.tidy(() => trained.trainableVariables().get("layers.1.gate.bias")!.assign(tf.fill([backbone.config.numHeads], -0.5)));
    await saveCheckpoint(dir, trained, { step: 2, backbone: { id: backbone.source.id, sha256: backbone.source.sha256, format: backbone.source.format } });
    trained.dispose();
    const tensorsAtStart = tf.memory().numTensors;
    const step = join(dir, "step-000002");
    const before = JSON.parse(readFileSync(join(step, "checkpoint.json"), "utf8")) as Record<string, unknown>;
    writeCheckpointLayout(dir, { sinkTokens: 2, windowTokens: 48, segmentLength: 16, exactTokens: 6, exactSpread: [1, 1] });
    const after = JSON.parse(readFileSync(join(step, "checkpoint.json"), "utf8")) as Record<string, unknown>;
    // only the inference block is added: the trained settings, recipe and step stay as written
    expect({ ...after, inference: undefined }).toEqual({ ...before, inference: undefined });
    expect(after["inference"]).toEqual({ sinkTokens: 2, windowTokens: 48, segmentLength: 16, exactTokens: 6, exactSpread: [1, 1] });
    const plain = prepareMethod(suite({ methods: [{ name: "edgeinfinite", checkpoint: dir }] }).methods[0]!, backbone);
    try {
      // routing follows the new sink + window (2 + 48), as it does for suite keys
      expect(plain.edgeinfinite).toMatchObject({ sinkTokens: 2, windowTokens: 48, segmentLength: 16, exactTokens: 6, exactSpread: [1, 1], routingThreshold: 50 });
      expect(Array.from(plain.module!.layers[1]!.gate.bias.dataSync())).toEqual(new Array(backbone.config.numHeads).fill(-0.5));
    } finally {
      plain.dispose();
    }
    // suite keys override the block key by key
    const over = prepareMethod(suite({ methods: [{ name: "edgeinfinite", checkpoint: dir, windowTokens: 80, exactSpread: [0, 0] }] }).methods[0]!, backbone);
    try {
      expect(over.edgeinfinite).toMatchObject({ sinkTokens: 2, windowTokens: 80, segmentLength: 16, exactTokens: 6, exactSpread: [0, 0], routingThreshold: 82 });
    } finally {
      over.dispose();
    }
    // training's loader (resume) keeps the trained layout
    const resumed = loadCheckpoint(dir, backbone);
    try {
      expect(resumed.module.config).toMatchObject({ sinkTokens: 4, windowTokens: 64, segmentLength: 32, exactTokens: 0, routingThreshold: 68 });
    } finally {
      resumed.module.dispose();
    }
    // a layout that cannot run is refused before anything is written; null removes the block
    expect(() => writeCheckpointLayout(dir, { windowTokens: 8 })).toThrow(/windowTokens \(8\) < segmentLength \(32\)/);
    expect(JSON.parse(readFileSync(join(step, "checkpoint.json"), "utf8"))).toEqual(after);
    writeCheckpointLayout(dir, null);
    expect(JSON.parse(readFileSync(join(step, "checkpoint.json"), "utf8"))).toEqual(before);
    // a hand-edited block with a bad key is one line naming the file and the key
    writeFileSync(join(step, "checkpoint.json"), JSON.stringify({ ...before, inference: { windowTokens: -1 } }));
    await expectOneLineError(() => prepareMethod(suite({ methods: [{ name: "edgeinfinite", checkpoint: dir }] }).methods[0]!, backbone), /checkpoint\.json: inference\.windowTokens/, /edgeinf layout/);
    expect(tf.memory().numTensors).toBe(tensorsAtStart);
  });

  it("a missing checkpoint is an error unless checkpointIfMissing: untrained", async () => {
    const missing = join(tempDir("nockpt"), "nothing-here");
    const s = suite({ methods: [{ name: "edgeinfinite", checkpoint: missing }] });
    expect(s.methods[0]!.label).toBe("edgeinfinite");
    await expectOneLineError(() => prepareMethod(s.methods[0]!, backbone), /checkpoint .*nothing-here does not exist/, /checkpointIfMissing: untrained/);
    const lenient = suite({ methods: [{ name: "edgeinfinite", checkpoint: missing, checkpointIfMissing: "untrained" }] });
    expect(lenient.methods[0]!.label).toBe("edgeinfinite-untrained");
  });
});

describe("bad input gives one-line errors", () => {
  const recordLine = (id: string, answers: unknown = ["42"]) =>
    JSON.stringify({ input: " The pass key is", context: "The pass key is 42. Remember it.", answers, all_classes: null, length: 12, _id: id });

  function longbenchSuite(path: string, onError: "skip" | "stop"): Suite {
    return suite({ lengths: [64], tasks: [{ name: "passkey", source: "longbench", path, onError }], generation: { maxNewTokens: 2, temperature: 0 } });
  }

  it("a malformed JSONL line stops the run naming its line, or is skipped with a warning", async () => {
    const dir = tempDir("jsonl");
    const path = join(dir, "bad.jsonl");
    writeFileSync(path, [recordLine("a"), '{"input": "x", "context": ', recordLine("c")].join("\n") + "\n");
    await expectOneLineError(run(longbenchSuite(path, "stop"), join(dir, "run-stop")), /bad\.jsonl:2: malformed JSON/);
    const warnings: string[] = [];
    const skipped = await run(longbenchSuite(path, "skip"), join(dir, "run-skip"), { warn: (m) => warnings.push(m) });
    expect(skipped.samples.map((r) => r.sampleId)).toEqual(["a", "c"]);
    expect(warnings.some((w) => w.includes("bad.jsonl:2:"))).toBe(true);
  });

  it("a record without answers is refused with its line number", async () => {
    const dir = tempDir("answers");
    const path = join(dir, "noanswers.jsonl");
    const noAnswers = JSON.parse(recordLine("b")) as Record<string, unknown>;
    delete noAnswers["answers"];
    writeFileSync(path, [recordLine("a"), JSON.stringify(noAnswers)].join("\n") + "\n");
    await expectOneLineError(run(longbenchSuite(path, "stop"), join(dir, "run")), /noanswers\.jsonl:2: record has no "answers"/);
  });

  it("unknown tasks, methods and keys are named with what is allowed", async () => {
    await expectOneLineError(() => suite({ tasks: [{ name: "pasky", source: "synthetic" }] }), /unknown synthetic task "pasky"/, /known synthetic tasks: passkey, needle/);
    await expectOneLineError(() => suite({ tasks: [{ name: "narrativeqaa", source: "longbench", path: "x.jsonl" }] }), /unknown LongBench task "narrativeqaa"/, /narrativeqa, qasper/);
    await expectOneLineError(() => suite({ methods: [{ name: "full" }, { name: "h3o", budget: 64 }] }), /methods\[1\]: unknown method "h3o"/, /known methods: full, streaming, h2o, snapkv, pyramidkv, tova, random, edgeinfinite/);
    await expectOneLineError(() => suite({ methods: [{ name: "h2o", budgt: 64 }] }), /unknown key "methods\[0\]\.budgt"/, /allowed keys in methods\[0\]: name, label, budget, recentTokens/);
    await expectOneLineError(() => suite({ generation: { maxNewTokens: 4, temprature: 0 } }), /unknown key "generation\.temprature"/, /maxNewTokens, temperature/);
    await expectOneLineError(() => suite({ lenghts: [1] }), /unknown key "lenghts" \(did you mean "lengths"\?\)/, /allowed keys at the top level: name, description, backbone/);
    await expectOneLineError(() => suite({ methods: [{ name: "h2o", budget: "150%" }] }), /budget 150% must be in \(0%, 100%\]/);
    await expectOneLineError(() => suite({ methods: [{ name: "full", budget: 64 }] }), /full keeps every token and takes no budget/);
    await expectOneLineError(() => suite({ lengths: undefined }), /lengths is missing — expected a non-empty list of positive integers — add it \(see docs\/evaluation\.md\)/);
  });

  it("a budget larger than the backbone's context, or than the prompt, is refused before anything runs", async () => {
    const tooBig = suite({ lengths: [1024], methods: [{ name: "streaming", budget: 600 }] });
    const dir = tempDir("budget");
    await expectOneLineError(run(tooBig, join(dir, "a")), /method streaming: budget 600 gives a cache of 600 tokens/, /larger than the backbone's context 512/);
    expect(existsSync(join(dir, "a"))).toBe(false);
    // a prefill-only method (snapkv) with a budget ≥ the prompt would equal full; h2o, streaming and tova evict while decoding
    const overPrompt = suite({ lengths: [128], methods: [{ name: "snapkv", budget: 256 }] });
    await expectOneLineError(run(overPrompt, join(dir, "b")), /budget 256 tokens ≥ prompt length \d+ for method snapkv/);
  });

  it("suite files: YAML errors name the file; the shipped suites parse", async () => {
    const dir = tempDir("yaml");
    const path = join(dir, "broken.yaml");
    writeFileSync(path, "name: x\nlengths: [1, 2\n");
    await expectOneLineError(() => loadSuite(path), /broken\.yaml is not valid YAML/);
    appendFileSync(join(dir, "ok.yaml"), `name: ok\nbackbone: ${storiesPath}\nlengths: [64]\ntasks:\n  - {name: passkey, source: synthetic}\nmethods:\n  - {name: full}\n`);
    await expectOneLineError(() => loadSuite(join(dir, "ok.yaml")), /ok\.yaml: synthetic tasks need "corpus"/);

    const quick = loadSuite(resolve(repo, "eval/quick.yaml"), { baseDir: repo });
    expect(quick.backbone).toBe(storiesPath);
    // edgeinfinite reads the main job's checkpoint when it exists (then it is the trained module's label).
    const edgeLabel = existsSync(resolve(repo, "checkpoints/quickstart/latest.json")) ? "edgeinfinite" : "edgeinfinite-untrained";
    expect(quick.methods.map((m) => m.label)).toEqual(["full", "streaming", "h2o", "snapkv", "pyramidkv", "tova", "random", edgeLabel]);
    expect(quick.methods.at(-1)).toMatchObject({ checkpoint: resolve(repo, "checkpoints/quickstart"), checkpointIfMissing: "untrained" });
    expect(quick.lengths).toEqual([256, 512, 1024]);
    const edge = loadSuite(resolve(repo, "eval/edge-lm.yaml"), { baseDir: repo });
    expect(edge.tasks.map((t) => t.name)).toEqual(["passkey", "kv_retrieval", "needle"]);
    expect(edge.lengths).toEqual([1024, 2048, 4096, 8192, 16384]);
    expect(edge.methods.find((m) => m.name === "edgeinfinite")).toMatchObject({ sinkTokens: 64, windowTokens: 1024, segmentLength: 256 });
  });

  it("every shipped suite passes the budget checks at each of its lengths (a prompt fills its length up to the question)", async () => {
    // eval/edge-lm-niah.yaml had snapkv's 512-token budget at length 512: refused at run time, after loading everything
    for (const file of readdirSync(resolve(repo, "eval")).filter((f) => f.endsWith(".yaml"))) {
      const suite = loadSuite(resolve(repo, "eval", file), { baseDir: repo });
      const { config } = await identifyBackbone(suite.backbone);
      for (const length of suite.lengths) {
        for (const method of suite.methods) expect(() => checkBudget(method, length - 32, config), `${file} ${method.label} @${length}`).not.toThrow();
      }
    }
  });
});

describe("timing helpers and progress", () => {
  it("median of odd and even lists", () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
  });

  it("rate and ETA count only samples run in this process", () => {
    // 4 samples in 2 s → 2 samples/s; 6 left → 3 s.
    expect(rateAndEta(4, 2000, 6)).toEqual({ rate: 2, etaSeconds: 3 });
    expect(rateAndEta(0, 0, 6).etaSeconds).toBe(Infinity);
    expect(formatSeconds(42.4)).toBe("42s");
    expect(formatSeconds(125)).toBe("2m05s");
    expect(formatSeconds(3 * 3600 + 7 * 60)).toBe("3h07m");
  });

  it("plain progress lines count from the samples already finished", () => {
    const written: string[] = [];
    const stream = { isTTY: false, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream;
    const p = progressReporter("auto", 10, 4, stream);
    p.tick("a");
    p.tick("b");
    p.stop();
    expect(written).toHaveLength(2);
    expect(written[0]).toMatch(/^eval 5\/10 a \| [0-9.]+ samples\/s \| eta /);
    expect(written[1]).toMatch(/^eval 6\/10 b /);
  });
});
