/**
 * Issue 14 (Reliability), item by item, as a user meets it: the built CLI run as a child process. Each test failed
 * before its fix (a stack trace, a hang, exit 0 on bad input, a wrong message). Items without a CLI surface are tested
 * at the function that fixes them, at the end of this file.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import * as tf from "../src/tf.js";
import { backendRequest } from "../src/cli/common.js";
import { checkSamplingOptions } from "../src/cli/options.js";
import { methodOptionFlags } from "../src/cli/commands/generate.js";
import { MixtureSampler } from "../src/datasets/mixture.js";
import { readTextFile as readCorpusText } from "../src/datasets/readers/text.js";
import { appendSample, type SampleRow } from "../src/eval/samples-log.js";
import { identifyBackbone, loadBackbone } from "../src/loaders/index.js";
import { readSafetensorsHeader } from "../src/loaders/safetensors.js";
import { LlamaModel } from "../src/backbone/model.js";
import { runSuite } from "../src/eval/harness.js";
import { loadSuite, parseSuite } from "../src/eval/suite.js";
import { makeEdgeInfiniteConfig } from "../src/memory/config.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { saveCheckpoint } from "../src/training/checkpoint.js";
import { EdgeInfError } from "../src/util/errors.js";
import { readJsonFile } from "../src/util/json.js";
import { LOCK_FILE } from "../src/util/lock.js";
import { ensureDir } from "../src/util/paths.js";
import { CLI_TIMEOUT_MS, ROOT, expectOneLineError, runCli, useCliTestDir, type CliResult } from "./fixtures/cli.js";

const STORIES = "../shared/models/stories260K/stories260K.bin";
const EDGE_LM = resolve(ROOT, "../shared/models/edge-lm");
const CORPUS = resolve(ROOT, "../shared/corpora/gutenberg/heldout");
/** Calibration text (edgeinf retrieval-heads) comes from the training books, not the held-out ones. */
const TRAIN_CORPUS = resolve(ROOT, "../shared/corpora/gutenberg/train");
const tmp = useCliTestDir("edgeinf-reliability-");

function expectOk(r: CliResult): void {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.code, `stderr:\n${r.stderr}`).toBe(0);
}

/** A training-style checkpoint for stories260K (latest.json + step folder); `poison` sets one weight. */
async function storiesCheckpoint(name: string, poison?: number): Promise<string> {
  await tf.setBackend("cpu");
  const id = await identifyBackbone(resolve(ROOT, STORIES));
  const module = new MemoryGatingModule(id.config, makeEdgeInfiniteConfig({ sinkTokens: 2, windowTokens: 16, segmentLength: 4 }));
  if (poison !== undefined) {
    const [, v] = [...module.trainableVariables()][0]!;
    const data = v.dataSync().slice();
    data[3] = poison;
    tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
  }
  const out = join(tmp(), "ckpt", name);
  await saveCheckpoint(out, module, { step: 5, backbone: { id: id.id, sha256: id.sha256, format: id.format }, recipe: { name, backbone: STORIES } });
  module.dispose();
  return out;
}

/** A process holding the lock on `dir` (as a running eval or training would), until killed. */
function lockHolder(dir: string): Promise<ChildProcess> {
  const script = `import { acquireDirLock } from ${JSON.stringify(join(ROOT, "dist/src/util/lock.js"))};
acquireDirLock(${JSON.stringify(dir)}, "eval"); process.stdout.write("locked\\n"); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((ok) => child.stdout!.on("data", () => ok(child)));
}

// ---------------------------------------------------------------------------------------------------------------
// Stack traces or crashes instead of one line

describe("issue 14: one line instead of a stack trace", () => {
  // Item 1: src/training/checkpoint.ts resolveCheckpointDir reads latest.json with readJsonFile (src/util/json.ts).
  it("1. latest.json holding garbage: export names the file in one line", async () => {
    const ckpt = await storiesCheckpoint("garbage-latest");
    writeFileSync(join(ckpt, "latest.json"), "garbage\n");
    const r = await runCli(["export", "safetensors", "--checkpoint", ckpt, "--out", join(tmp(), "x.st")]);
    expectOneLineError(r, join(ckpt, "latest.json"), "not valid JSON");
  });

  it("1. readJsonFile: garbage or a missing file is one EdgeInfError line naming the file and the fix", () => {
    const p = join(tmp(), "garbage.json");
    writeFileSync(p, "garbage\n");
    expect(() => readJsonFile(p, "use an earlier step folder")).toThrow(EdgeInfError);
    expect(() => readJsonFile(p, "use an earlier step folder")).toThrow(new RegExp(`^${p} is not valid JSON [^\n]* — use an earlier step folder$`));
    expect(() => readJsonFile(join(tmp(), "none.json"), "fix")).toThrow(/cannot read .*none\.json \(ENOENT\) — fix/);
  });

  it("2. eval --run-dir naming an existing file", async () => {
    const file = join(tmp(), "a-file");
    writeFileSync(file, "x");
    const r = await runCli(["eval", "--suite", "eval/quick.yaml", "--run-dir", file, "--backend", "cpu"]);
    expectOneLineError(r, `cannot create directory ${file}: it exists and is not a directory`);
  });

  it("3. a repeated option (-m A -m B, -p a -p b, --out a --out b) names the option once", async () => {
    const [model, prompt, out] = await Promise.all([
      runCli(["generate", "-m", STORIES, "-m", STORIES, "-p", "hi"]),
      runCli(["generate", "-m", STORIES, "-p", "a", "-p", "b"]),
      runCli(["export", "onnx", "--checkpoint", "c", "--out", "a", "--out", "b"]),
    ]);
    expectOneLineError(model, { noNoise: true }, `--model was given 2 times ("${STORIES}", "${STORIES}") — give --model once`);
    expectOneLineError(prompt, { noNoise: true }, '--prompt was given 2 times ("a", "b")');
    expectOneLineError(out, { noNoise: true }, "--out was given 2 times");
  });

  it("3b. --method-option repeats (each KEY=VALUE one option) and takes number lists as [a, b]", async () => {
    const ok = await runCli(["generate", "-m", STORIES, "-p", "Once upon a time", "-n", "2", "--json", "--backend", "cpu",
      "--method", "edgeinfinite", "--method-option", "exactTokens=4", "--method-option", "exactSpread=[1, 1]"]);
    expectOk(ok);
    expect(JSON.parse(ok.stdout).newTokens).toBe(2);
    expect(methodOptionFlags(["exactSpread=[1, 2]", "a=[]", "b=[x, 1]", "c=3", "d.e=[0,0]"])).toEqual({ exactSpread: [1, 2], a: [], b: "[x, 1]", c: 3, d: { e: [0, 0] } });
    const bad = await runCli(["generate", "-m", STORIES, "-p", "hi", "--backend", "cpu", "--method", "edgeinfinite", "--method-option", "exactSpread=[1]"]);
    expectOneLineError(bad, "method edgeinfinite: exactSpread: two integers ≥ 0, [before, after]");
  });

  it("3c. edgeinf layout prints, sets and clears a checkpoint's run layout; bad flags are one line and write nothing", async () => {
    const dir = join(tmp(), "module");
    mkdirSync(dir, { recursive: true });
    const shipped = readJsonFile<Record<string, unknown>>(join(ROOT, "modules/edge-lm-retrieval-lm/checkpoint.json"), "checkpoint");
    const { inference: _shippedLayout, ...trainedOnly } = shipped;
    writeFileSync(join(dir, "checkpoint.json"), JSON.stringify(trainedOnly));
    const show = await runCli(["layout", dir, "--json"]);
    expectOk(show);
    expect(JSON.parse(show.stdout)).toMatchObject({ inference: null, runsAt: { sinkTokens: 32, windowTokens: 256, exactTokens: 152, exactSpread: [0, 0], routingThreshold: 288 } });
    const set = await runCli(["layout", dir, "--sink", "16", "--window", "128", "--segment", "128", "--json"]);
    expectOk(set);
    expect(JSON.parse(set.stdout).runsAt).toEqual({ sinkTokens: 16, windowTokens: 128, segmentLength: 128, routingThreshold: 144, exactTokens: 152, exactSpread: [0, 0], exactTokensPerLayer: null });
    // flags add to the block already there
    expectOk(await runCli(["layout", dir, "--exact", "296", "--spread", "1,1"]));
    const written = readJsonFile<Record<string, unknown>>(join(dir, "checkpoint.json"), "checkpoint");
    expect(written["inference"]).toEqual({ sinkTokens: 16, windowTokens: 128, segmentLength: 128, exactTokens: 296, exactSpread: [1, 1] });
    expect({ ...written, inference: undefined }).toEqual({ ...trainedOnly, inference: undefined });
    const [spread, negative, tooSmall, clearWith, missing, perLayer] = await Promise.all([
      runCli(["layout", dir, "--spread", "1"]),
      runCli(["layout", dir, "--sink", "-1"]),
      runCli(["layout", dir, "--window", "64"]),
      runCli(["layout", dir, "--clear", "--sink", "4"]),
      runCli(["layout", join(dir, "nope")]),
      runCli(["layout", dir, "--exact-per-layer", "40,x"]),
    ]);
    expectOneLineError(perLayer, "--exact-per-layer 40,x is not whole numbers separated by commas");
    expectOneLineError(spread, "--spread 1 is not two whole numbers");
    expectOneLineError(negative, "--sink -1 is not a whole number ≥ 0");
    expectOneLineError(tooSmall, "windowTokens (64) < segmentLength (128)");
    expectOneLineError(clearWith, "--clear removes the layout and takes no other flag");
    expectOneLineError(missing, "does not exist");
    expect(readJsonFile<Record<string, unknown>>(join(dir, "checkpoint.json"), "checkpoint")).toEqual(written);
    // a split over layers is stored and shown, and "none" takes it back out of what the module runs at
    const split = await runCli(["layout", dir, "--exact-per-layer", "39,41,39,136,553,52,258,1250", "--json"]);
    expectOk(split);
    expect(JSON.parse(split.stdout).runsAt.exactTokensPerLayer).toEqual([39, 41, 39, 136, 553, 52, 258, 1250]);
    expect(JSON.parse((await runCli(["layout", dir, "--exact-per-layer", "none", "--json"])).stdout).runsAt.exactTokensPerLayer).toBeNull();
    // --exact alone replaces a stored split: that many in every layer
    expectOk(await runCli(["layout", dir, "--exact-per-layer", "39,41,39,136,553,52,258,1250"]));
    const uniform = JSON.parse((await runCli(["layout", dir, "--exact", "300", "--json"])).stdout);
    expect(uniform.runsAt).toMatchObject({ exactTokens: 300, exactTokensPerLayer: null });
    expect(uniform.inference.exactTokensPerLayer).toBeUndefined();
    expectOk(await runCli(["layout", dir, "--clear"]));
    expect(readJsonFile<Record<string, unknown>>(join(dir, "checkpoint.json"), "checkpoint")).toEqual(trainedOnly);
  });

  it("3e. edgeinf retrieval-heads scores heads and splits a budget; bad input is one line", async () => {
    const json = join(tmp(), "heads.json");
    const ok = await runCli(["retrieval-heads", "-m", STORIES, "--corpus", TRAIN_CORPUS, "--backend", "cpu", "--probes", "2", "--length", "512", "--exact", "16", "--json", json]);
    expectOk(ok);
    const out = readJsonFile<{ scores: number[][]; exactTokensPerLayer: number[]; floor: number; probes: number }>(json, "heads");
    expect(out.scores.length).toBe(5); // stories260K: 5 layers, 8 query heads
    expect(out.scores.every((row) => row.length === 8 && row.every((x) => x >= 0 && x <= 1))).toBe(true);
    expect(out.exactTokensPerLayer.reduce((a, b) => a + b, 0)).toBe(16 * 5);
    expect(Math.min(...out.exactTokensPerLayer)).toBeGreaterThanOrEqual(out.floor);
    expect(ok.stdout).toContain("| layer | best head | score | all heads | exact tokens |");
    const [noCorpus, writeAlone, badProbes] = await Promise.all([
      runCli(["retrieval-heads", "-m", STORIES, "--corpus", join(tmp(), "nope")]),
      runCli(["retrieval-heads", "-m", STORIES, "--corpus", TRAIN_CORPUS, "--write"]),
      runCli(["retrieval-heads", "-m", STORIES, "--corpus", TRAIN_CORPUS, "--probes", "0"]),
    ]);
    expectOneLineError(noCorpus, "corpus", "does not exist");
    expectOneLineError(writeAlone, "--write stores the split in a checkpoint and needs --checkpoint");
    expectOneLineError(badProbes, "--probes 0 must be a whole number ≥ 1");
  });

  it("3d. the shipped module runs at the layout the suites name for it (its inference block equals edgeinfinite-heads' keys)", () => {
    const shipped = readJsonFile<{ inference?: Record<string, unknown> }>(join(ROOT, "modules/edge-lm-retrieval-lm/checkpoint.json"), "checkpoint");
    for (const [file, label] of [["eval/edge-lm-retrieval.yaml", "edgeinfinite-heads"], ["eval/quickstart-retrieval.yaml", "edgeinfinite"]] as const) {
      const m = loadSuite(join(ROOT, file), { baseDir: ROOT }).methods.find((x) => x.label === label)!;
      const keys = Object.fromEntries(Object.entries(m).filter(([k]) => ["sinkTokens", "windowTokens", "segmentLength", "exactTokens", "exactSpread", "exactTokensPerLayer"].includes(k)));
      expect(keys, file).toEqual(shipped.inference);
    }
  });

  it("4. --prompt-file over the read cap, /dev/zero, a binary file: one line; ppl --max-tokens reads only a prefix of a huge file", async () => {
    const big = join(tmp(), "big.txt");
    const fd = openSync(big, "w");
    writeSync(fd, "Once upon a time there was a little girl. ".repeat(2000));
    ftruncateSync(fd, 600 * 1024 * 1024); // sparse: 600 MiB on paper, nothing on disk
    closeSync(fd);
    expectOneLineError(await runCli(["generate", "-m", STORIES, "--prompt-file", big]), "prompt file", "larger than 256 MiB");
    expectOneLineError(await runCli(["generate", "-m", STORIES, "--prompt-file", "/dev/zero"]), "prompt file /dev/zero is not a text file");
    const ppl = await runCli(["ppl", "-m", STORIES, "-f", big, "--max-tokens", "100", "--backend", "cpu"]);
    expectOk(ppl);
    expect(JSON.parse(ppl.stdout).tokens).toBe(99);
    expectOneLineError(await runCli(["ppl", "-m", STORIES, "-f", big, "--backend", "cpu"]), "larger than 256 MiB", "--max-tokens");
  });

  it("EDGEINF_TFJS_FLAGS: a flag the backend does not register, or an item that is not NAME=value, is one line", async () => {
    const gen = ["generate", "-m", STORIES, "-p", "Once", "-n", "1", "--backend", "cpu"];
    expectOneLineError(await runCli(gen, CLI_TIMEOUT_MS, { EDGEINF_TFJS_FLAGS: "NO_SUCH_FLAG=1" }), "EDGEINF_TFJS_FLAGS: tfjs has no flag NO_SUCH_FLAG with the cpu backend");
    expectOneLineError(await runCli(gen, CLI_TIMEOUT_MS, { EDGEINF_TFJS_FLAGS: "WEBGPU" }), 'EDGEINF_TFJS_FLAGS: "WEBGPU" is not NAME=value');
    expectOk(await runCli(gen, CLI_TIMEOUT_MS, { EDGEINF_TFJS_FLAGS: "CHECK_COMPUTATION_FOR_ERRORS=true" }));
  });

  it("4. ppl --max-tokens scores the same tokens from a prefix as from the whole file", async () => {
    const text = readFileSync(join(CORPUS, "Persuasion.txt"), "utf8").slice(0, 300_000);
    const whole = join(tmp(), "whole.txt");
    writeFileSync(whole, text);
    const r = await runCli(["ppl", "-m", STORIES, "-f", whole, "--max-tokens", "300", "--backend", "cpu", "--json", join(tmp(), "nll.json")]);
    expectOk(r);
    const { ids } = JSON.parse(readFileSync(join(tmp(), "nll.json"), "utf8")) as { ids: number[] };
    const backbone = await loadBackbone(resolve(ROOT, STORIES));
    expect([1, ...ids]).toEqual(backbone.tokenizer.encode(text, { bos: true }).slice(0, 300));
  });

  it("5. num_hidden_layers: 10000000 in config.json: one line, fast, before anything is sized by it", async () => {
    const dir = join(tmp(), "huge-layers");
    mkdirSync(dir);
    for (const f of ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json"]) {
      symlinkSync(join(EDGE_LM, f), join(dir, f));
    }
    const config = JSON.parse(readFileSync(join(EDGE_LM, "config.json"), "utf8")) as Record<string, unknown>;
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, num_hidden_layers: 10_000_000 }));
    const t0 = Date.now();
    const r = await runCli(["generate", "-m", dir, "-p", "hi", "-n", "1", "--backend", "cpu"]);
    expectOneLineError(r, "num_hidden_layers 10000000", /the weights hold|at most 1024/, "restore the model's own config.json");
    expect(Date.now() - t0).toBeLessThan(30_000);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The hang, wrong numbers, locks

describe("issue 14: the hang, locks and wrong numbers", () => {
  it("6. ppl --json /proc/nonexist/x.json returns at once with one line (Node's recursive mkdir would loop)", async () => {
    const r = await runCli(["ppl", "-m", STORIES, "-f", "README.md", "--json", "/proc/nonexist/x.json"], 60_000);
    expectOneLineError(r, "/proc/nonexist", "--json");
    expect(() => ensureDir("/proc/nonexist/x")).toThrow(EdgeInfError);
  });

  it("8. an eval into a run dir another process holds: one line naming its pid and the folder; nothing written", async () => {
    const runDir = join(tmp(), "busy-run");
    const holder = await lockHolder(runDir);
    try {
      const r = await runCli(["eval", "--suite", "eval/quick.yaml", "--run-dir", runDir, "--backend", "cpu", "--limit", "1"]);
      expectOneLineError(r, `${runDir} is in use by another edgeinf eval (pid ${holder.pid}`, join(runDir, LOCK_FILE));
      expect(existsSync(join(runDir, "samples.jsonl"))).toBe(false);
    } finally {
      holder.kill("SIGKILL");
    }
  });

  it("13. run.json counts the samples finished before a crash (not newSamples: 0)", async () => {
    await tf.setBackend("cpu");
    const backbone = await loadBackbone(resolve(ROOT, STORIES));
    const model = LlamaModel.fromHost(backbone.config, backbone.weights);
    const suite = parseSuite(
      { name: "crash", backbone: STORIES, corpus: CORPUS, seed: 7, lengths: [128], tasks: [{ name: "passkey", source: "synthetic", count: 3, intro: false }], methods: [{ name: "full" }], generation: { maxNewTokens: 2, temperature: 0 }, warmup: false },
      "<test suite>",
      ROOT,
    );
    const runDir = join(tmp(), "crash-run");
    const crash = (p: { done: number }): void => {
      if (p.done === 2) throw new Error("simulated kill after the second sample");
    };
    await expect(runSuite(suite, { runDir, backbone, model, progress: "none", warn: () => {}, onProgress: crash })).rejects.toThrow(/simulated kill/);
    model.dispose();
    const run = JSON.parse(readFileSync(join(runDir, "run.json"), "utf8")) as { invocations: { newSamples: number; complete: boolean }[] };
    expect(run.invocations.at(-1)).toMatchObject({ newSamples: 2, complete: false });
    expect(existsSync(join(runDir, LOCK_FILE))).toBe(false); // released on the way out
  });

  it("9. a sample row that cannot be written whole (full disk) is one error line, never counted as done", () => {
    expect(() => appendSample("/dev/full", { task: "t" } as unknown as SampleRow)).toThrow(/cannot append a sample to \/dev\/full: ENOSPC/);
  });

  it("10. export of a checkpoint holding a NaN weight is refused (nothing written)", async () => {
    const ckpt = await storiesCheckpoint("nan", NaN);
    const out = join(tmp(), "nan.onnx");
    expectOneLineError(await runCli(["export", "onnx", "--checkpoint", ckpt, "--out", out]), "holds NaN at index 3", "export an earlier step folder");
    expect(existsSync(out)).toBe(false);
    const clean = await storiesCheckpoint("clean");
    expectOk(await runCli(["export", "safetensors", "--checkpoint", clean, "--out", join(tmp(), "clean.st")]));
  });

  it("11. generate -t NaN and --seed abc: one line with the value as typed", async () => {
    const [temperature, seed] = await Promise.all([runCli(["generate", "-m", STORIES, "-p", "hi", "-t", "NaN"]), runCli(["generate", "-m", STORIES, "-p", "hi", "--seed", "abc"])]);
    expectOneLineError(temperature, { noNoise: true }, "--temperature NaN must be a number ≥ 0");
    expectOneLineError(seed, { noNoise: true }, "--seed abc must be an integer in [0, 4294967295]");
  });

  it.each([
    [{ temperature: -1 }, "--temperature -1 must be a number ≥ 0"],
    [{ topP: 2 }, "--top-p 2 must be a number in (0, 1]"],
    [{ topP: 0 }, "--top-p 0 must be a number in (0, 1]"],
    [{ topK: -3 }, "--top-k -3 must be an integer ≥ 1"],
    [{ topK: 2.5 }, "--top-k 2.5 must be an integer ≥ 1"],
    [{ seed: 2 ** 32 }, "--seed 4294967296 must be an integer"],
  ])("11. checkSamplingOptions(%j)", (args, message) => {
    expect(() => checkSamplingOptions(args)).toThrow(message);
  });

  it("11. valid sampling options pass", () => {
    expect(() => checkSamplingOptions({ temperature: 0, topK: 1, topP: 1, seed: 0 })).not.toThrow();
    expect(() => checkSamplingOptions({ temperature: 0.8, topP: 0.9, seed: 2 ** 32 - 1 })).not.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Accepted silently

describe("issue 14: no longer accepted silently", () => {
  it("--budget with edgeinfinite, --checkpoint with full, -p with --prompt-file: refused, not ignored", async () => {
    const [budget, checkpoint, both] = await Promise.all([
      runCli(["generate", "-m", STORIES, "-p", "hi", "--method", "edgeinfinite", "--budget", "64"]),
      runCli(["generate", "-m", STORIES, "-p", "hi", "--checkpoint", "checkpoints/x"]),
      runCli(["generate", "-m", STORIES, "-p", "hi", "--prompt-file", "README.md"]),
    ]);
    expectOneLineError(budget, { noNoise: true }, "--budget does nothing with --method edgeinfinite");
    expectOneLineError(checkpoint, { noNoise: true }, "--checkpoint does nothing with --method full");
    expectOneLineError(both, { noNoise: true }, "--prompt and --prompt-file were both given");
  });

  it("ppl --context past the trained context warns", async () => {
    const r = await runCli(["ppl", "-m", STORIES, "-f", "README.md", "--max-tokens", "20", "--context", "1024", "--backend", "cpu"]);
    expectOk(r);
    expect(r.stderr).toMatch(/^warning: --context 1024 is past stories260K's trained context of 512 tokens/m);
  });

  it("an empty LongBench file is one line, before anything runs", async () => {
    const empty = join(tmp(), "empty.jsonl");
    writeFileSync(empty, "\n");
    const suite = join(tmp(), "empty-suite.yaml");
    writeFileSync(suite, `name: empty\nbackbone: ${resolve(ROOT, STORIES)}\nlengths: [256]\ntasks:\n  - name: hotpotqa\n    source: longbench\n    path: ${empty}\nmethods:\n  - name: full\n`);
    expectOneLineError(await runCli(["eval", "--suite", suite, "--run-dir", join(tmp(), "empty-run"), "--backend", "cpu"]), `${empty}: no LongBench rows for task "hotpotqa"`);
    expect(existsSync(join(tmp(), "empty-run"))).toBe(false); // the run dir it made is gone again
  });

  it("trec rows without all_classes: FILE:LINE (eval score) / FILE row (eval), before anything runs", async () => {
    const preds = join(tmp(), "trec.jsonl");
    writeFileSync(preds, `{"pred": "Location", "answers": ["Location"], "all_classes": null}\n\n`);
    expectOneLineError(await runCli(["eval", "score", "--task", "trec", "--preds", preds]), `${preds}:1: the last row has no "all_classes"`);
    const rows = join(tmp(), "trec-rows.jsonl");
    writeFileSync(rows, `{"input": "q", "context": "c", "answers": ["Location"], "length": 10, "_id": "a"}\n`);
    const suite = join(tmp(), "trec-suite.yaml");
    writeFileSync(suite, `name: trec\nbackbone: ${resolve(ROOT, STORIES)}\nlengths: [256]\ntasks:\n  - name: trec\n    source: longbench\n    path: ${rows}\nmethods:\n  - name: full\n`);
    expectOneLineError(await runCli(["eval", "--suite", suite, "--run-dir", join(tmp(), "trec-run"), "--backend", "cpu"]), `${rows}: row 1 (_id a) has no "all_classes"`);
  });

  it("a negative length in a predictions file is FILE:LINE, not bucketed as 0-4k", async () => {
    const preds = join(tmp(), "neg.jsonl");
    writeFileSync(preds, `{"pred": "a", "answers": ["a"], "length": 10}\n{"pred": "a", "answers": ["a"], "length": -5}\n`);
    expectOneLineError(await runCli(["eval", "score", "--task", "hotpotqa", "--preds", preds]), `${preds}:2: "length" must be a non-negative number`);
  });

  it("--set __proto__.x=1 (or constructor.prototype) is refused before it reaches Object.prototype", async () => {
    expectOneLineError(await runCli(["train", "--recipe", "recipes/quickstart.yaml", "--set", "__proto__.x=1"]), { noNoise: true }, '"__proto__" is not a recipe key');
    expectOneLineError(await runCli(["train", "--recipe", "recipes/quickstart.yaml", "--set", "constructor.prototype.x=1"]), { noNoise: true }, "is not a recipe key");
  });

  it("two safetensors tensors sharing bytes", () => {
    const header = JSON.stringify({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] }, c: { dtype: "F32", shape: [1], data_offsets: [12, 16] } });
    const p = join(tmp(), "overlap.safetensors");
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
    writeFileSync(p, Buffer.concat([len, Buffer.from(header), Buffer.alloc(16)]));
    expect(() => readSafetensorsHeader(p)).toThrow(/tensors a and b share bytes/);
  });

  it("a 100-token tokenizer on an 8192-vocab model", async () => {
    const dir = join(tmp(), "small-tok");
    mkdirSync(dir);
    for (const f of ["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"]) symlinkSync(join(EDGE_LM, f), join(dir, f));
    const vocab = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [i < 3 ? ["<unk>", "<s>", "</s>"][i]! : `t${i}`, i]));
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify({ version: "1.0", added_tokens: [], normalizer: null, pre_tokenizer: { type: "Whitespace" }, post_processor: null, decoder: null, model: { type: "WordLevel", vocab, unk_token: "<unk>" } }));
    const r = await runCli(["generate", "-m", dir, "-p", "hi", "-n", "1", "--backend", "cpu"]);
    expectOneLineError(r, "has 100 tokens but the model's vocab_size is 8192");
  });

  it("a held-out path that is a binary file (error); a 1-character held-out file (one warning)", () => {
    const bin = join(tmp(), "weights.txt");
    writeFileSync(bin, Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x00, 0x00]));
    expect(() => readCorpusText(bin)).toThrow(/is not a text file \(a NUL byte at offset 4\)/);
    const tokenizer = { bosId: 1, eosId: 2, encode: (t: string) => [...t].map((c) => 3 + (c.charCodeAt(0) % 50)), decode: () => "" };
    const warnings: string[] = [];
    const sampler = new MixtureSampler({ tokenizer: tokenizer as never, sequenceLength: 64, seed: 1, sources: [{ kind: "text", name: "heldout", weight: 1, texts: ["a"] }], warn: (m) => warnings.push(m) });
    sampler.take(3);
    expect(warnings).toEqual([expect.stringMatching(/^mixture source "heldout" holds fewer tokens than one sequence of 64: its text is repeated/)]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Messages

describe("issue 14: messages", () => {
  it("--budget abc names abc", async () => {
    const r = await runCli(["generate", "-m", STORIES, "-p", "hi", "--method", "streaming", "--budget", "abc", "--backend", "cpu"]);
    expectOneLineError(r, 'budget "abc" for method streaming');
  });

  it("a budget ≥ the prompt: accepted by a method that evicts while decoding (its cache still stops at the budget), refused by a prefill-only one", async () => {
    const h2o = await runCli(["generate", "-m", STORIES, "-p", "Once upon a time", "--method", "h2o", "--budget", "32", "-n", "60", "--json", "--backend", "cpu"]);
    expect(h2o.code, h2o.stderr).toBe(0);
    const g = JSON.parse(h2o.stdout) as { promptTokens: number; newTokens: number; kvBytesAfterPrefill: number; peakKvBytes: number };
    expect(g.promptTokens).toBeLessThan(32);
    expect(g.newTokens).toBe(60);
    const bytesPerToken = g.kvBytesAfterPrefill / g.promptTokens;
    expect(g.peakKvBytes).toBeGreaterThan(30 * bytesPerToken); // the cache grew to the budget …
    expect(g.peakKvBytes).toBeLessThanOrEqual(33 * bytesPerToken); // … and no further (one token in flight)
    const snap = await runCli(["generate", "-m", STORIES, "-p", "Once upon a time", "--method", "snapkv", "--budget", "32", "-n", "4", "--backend", "cpu"]);
    expectOneLineError(snap, "≥ prompt length", "method snapkv: nothing would be evicted");
  });

  it("hints name no option that does not exist (--data, --offline)", () => {
    const longbench = readFileSync(join(ROOT, "src/eval/longbench.ts"), "utf8");
    const hub = readFileSync(join(ROOT, "src/loaders/hub.ts"), "utf8");
    expect(longbench).not.toContain("--data");
    expect(hub).not.toContain("--offline");
  });

  it("export pickle names the format", async () => {
    expectOneLineError(await runCli(["export", "pickle", "--checkpoint", "c", "--out", "o"]), { noNoise: true }, 'unknown export format "pickle" — name a format: edgeinf export onnx | safetensors');
  });

  it("a recipe that is a directory", async () => {
    expectOneLineError(await runCli(["train", "--recipe", "recipes"]), { noNoise: true }, "recipe recipes is a directory");
  });

  it("the mkdir -p hint quotes a path with spaces", async () => {
    const out = join(tmp(), "no such dir", "m.onnx");
    expectOneLineError(await runCli(["export", "onnx", "--checkpoint", "c", "--out", out]), `mkdir -p '${join(tmp(), "no such dir")}'`);
  });

  it("backend precedence: flag > EDGEINF_BACKEND > the recipe's or suite's backend", () => {
    expect(backendRequest("wasm", "cpu", "tensorflow")).toBe("wasm");
    expect(backendRequest(undefined, "auto", "cpu")).toBeUndefined(); // initBackend then reads EDGEINF_BACKEND
    expect(backendRequest(undefined, "cpu", undefined)).toBe("cpu");
    expect(backendRequest(undefined, "auto", "")).toBe("auto");
  });
});
