/**
 * `edgeinf train` as a user runs it: the built CLI (dist/src/cli/main.js) as a child process from the repo root.
 * Bad recipes and bad --set arguments exit with code 1, print exactly one `error:` line naming the problem, and write
 * nothing (the recipe's output folder is never created). One small run checks the success path and --resume with
 * another backbone.
 */
import { describe, expect, it } from "vitest";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { spawn } from "node:child_process";
import { CLI, ROOT, cliEnv, expectOneLineError, meaningfulStderr, runCli, useCliTestDir } from "./fixtures/cli.js";
import { TEST_CRASH_ENV } from "./fixtures/crash-hook.js";
import { fileListing } from "./fixtures/files.js";

const SHARED = resolve(ROOT, "../shared");
const STORIES = `${SHARED}/models/stories260K/stories260K.bin`;

/** Scratch folder of this file (after a build of dist/ if stale). */
const tmp = useCliTestDir("edgeinf-cli-train-");

/** A tiny stories260K recipe in its own folder; `edit` rewrites its text. Returns the recipe path and its output dir. */
function recipe(name: string, edit: (text: string) => string = (t) => t): { path: string; out: string } {
  const dir = join(tmp(), name);
  mkdirSync(dir, { recursive: true });
  const out = join(dir, "out");
  const text = `name: ${name}
seed: 3
backend: cpu
backbone: ${STORIES}
data:
  sequenceLength: 128
  mixture:
    - { source: text, path: ${SHARED}/corpora/gutenberg/train/Peter_Pan.txt, weight: 1 }
  heldout: { path: ${SHARED}/corpora/gutenberg/heldout/Treasure_Island.txt, sequences: 1 }
edgeinfinite: { sinkTokens: 4, windowTokens: 28, segmentLength: 16 }
training:
  steps: 2
  optimizer: { lr: 0.01 }
  evalInterval: 2
  checkpointInterval: 2
output: ${out}
`;
  const path = join(dir, "recipe.yaml");
  writeFileSync(path, edit(text));
  return { path, out };
}

describe("edgeinf train: bad recipes are one line, exit 1, and write nothing", () => {
  const cases: { name: string; edit?: (t: string) => string; set?: string[]; expect: RegExp[] }[] = [
    {
      name: "unknown-key",
      edit: (t) => t.replace("  steps: 2", "  stepz: 2"),
      expect: [/unknown key "training\.stepz" \(did you mean "steps"\?\)/, /allowed keys in training: steps, tbpttSegments, batchSize/, /recipes\/README\.md/],
    },
    {
      name: "wrong-type",
      edit: (t) => t.replace("sequenceLength: 128", "sequenceLength: long"),
      expect: [/data\.sequenceLength is "long" \(a string\) — expected a positive integer/],
    },
    {
      name: "bad-enum",
      edit: (t) => t.replace("segmentLength: 16 }", "segmentLength: 16, gateKind: mlp }"),
      expect: [/edgeinfinite\.gateKind is "mlp" — allowed values: scalar, learned/],
    },
    {
      name: "missing-backbone",
      edit: (t) => t.replace(STORIES, `${SHARED}/models/stories260K/nope.bin`),
      expect: [/backbone .*stories260K\/nope\.bin does not exist/],
    },
    {
      name: "missing-data",
      edit: (t) => t.replace("train/Peter_Pan.txt", "train/Peter_Pan_2.txt"),
      expect: [/data\.mixture\[0\]\.path .*Peter_Pan_2\.txt does not exist/],
    },
    {
      name: "missing-heldout",
      edit: (t) => t.replace("heldout/Treasure_Island.txt", "heldout/nope"),
      expect: [/data\.heldout\.path .*heldout\/nope does not exist/],
    },
    {
      name: "not-a-multiple",
      edit: (t) => t.replace("sequenceLength: 128", "sequenceLength: 100"),
      expect: [/data\.sequenceLength 100 is not a multiple of edgeinfinite\.segmentLength 16/],
    },
    {
      name: "window-shorter-than-segment",
      set: ["edgeinfinite.segmentLength=32"],
      expect: [/recipe window-shorter-than-segment: edgeinfinite: .*windowTokens \(28\) < segmentLength \(32\)/],
    },
    { name: "set-not-key-value", set: ["training.steps"], expect: [/--set "training\.steps" is not key=value/] },
    { name: "set-unknown-key", set: ["training.lr=0.1"], expect: [/\(with --set training\.lr=0\.1\): unknown key "training\.lr"/, /allowed keys in training: steps,/] },
    { name: "set-wrong-type", set: ["training.steps=many"], expect: [/\(with --set training\.steps=many\): training\.steps is "many" \(a string\) — expected a positive integer/] },
    { name: "set-into-a-value", set: ["training.steps.max=3"], expect: [/--set "training\.steps\.max=3": training\.steps is 2, not a section/] },
    { name: "bad-backend-in-recipe", edit: (t) => t.replace("backend: cpu", "backend: tpu"), expect: [/backend is "tpu" — allowed values: auto, tensorflow, webgpu, wasm, cpu/] },
    { name: "bad-backend-flag", set: [], expect: [/Argument: backend, Given: "tpu", Choices: "auto", "tensorflow", "webgpu", "wasm", "cpu"/] },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const r = recipe(c.name, c.edit);
      const extra = c.name === "bad-backend-flag" ? ["--backend", "tpu"] : (c.set ?? []).flatMap((s) => ["--set", s]);
      const res = await runCli(["train", "--recipe", r.path, ...extra]);
      expectOneLineError(res, ...c.expect);
      expect(existsSync(r.out)).toBe(false);
    }, 60_000);
  }

  it("a recipe that does not exist", async () => {
    expectOneLineError(await runCli(["train", "--recipe", join(tmp(), "no-such.yaml")]), /recipe .*no-such\.yaml does not exist/);
  }, 60_000);
});

describe("edgeinf train: a run, and --resume with another backbone", () => {
  it("trains, writes checkpoint + dataset manifest; --resume with another backbone is refused naming both, writing nothing", async () => {
    const r = recipe("ok");
    const res = await runCli(["train", "--recipe", r.path]);
    expect(res.code, res.stderr).toBe(0);
    const result = JSON.parse(res.stdout) as { steps: number; heldoutLoss: number; baselineHeldoutLoss: number };
    expect(result.steps).toBe(2);
    expect(Number.isFinite(result.heldoutLoss) && Number.isFinite(result.baselineHeldoutLoss)).toBe(true);
    expect(res.stderr).toMatch(/held-out loss, untrained module \(gate ≈ 0 ≈ StreamingLLM\): \d+\.\d{4}/);
    expect(readdirSync(r.out).sort()).toEqual(
      ["dataset.manifest.json", "latest.json", "run.json", "step-000002", "summary.json", "train_log.csv", "train_log.jsonl"].sort(),
    );
    const manifest = JSON.parse(readFileSync(join(r.out, "dataset.manifest.json"), "utf8"));
    expect(manifest).toMatchObject({ name: "ok", seed: 3, sequenceLength: 128, records: 2, tokens: 2 * 129 });

    // another backbone: a copy of stories260K with one weight changed
    const otherDir = join(tmp(), "other");
    mkdirSync(otherDir, { recursive: true });
    const bin = readFileSync(STORIES);
    bin.writeFloatLE(bin.readFloatLE(bin.length - 4) + 0.5, bin.length - 4);
    writeFileSync(join(otherDir, "stories-other.bin"), bin);
    copyFileSync(`${SHARED}/models/stories260K/tok512.bin`, join(otherDir, "tok512.bin"));
    const listing = readdirSync(r.out).map((f) => `${f} ${statSync(join(r.out, f)).mtimeMs}`);
    const refused = await runCli(["train", "--recipe", r.path, "--resume", "--set", `backbone=${join(otherDir, "stories-other.bin")}`]);
    expectOneLineError(refused, /checkpoint .*step-000002 was trained on backbone "stories260K" \(sha256 b0a507e7ad0f…\), not on "stories-other" \(sha256 [0-9a-f]{12}…\)/);
    expect(readdirSync(r.out).map((f) => `${f} ${statSync(join(r.out, f)).mtimeMs}`)).toEqual(listing);
    // the same checkpoint through generate
    const gen = await runCli(["generate", "-m", join(otherDir, "stories-other.bin"), "-p", "Once", "--max-new-tokens", "2", "--method", "edgeinfinite", "--checkpoint", r.out]);
    expectOneLineError(gen, /was trained on backbone "stories260K" .*, not on "stories-other"/);
  }, 180_000);
});

const stepFolders = (out: string) => readdirSync(out).filter((f) => /^step-\d+$/.test(f)).sort();

/** Waits for `child` to exit; resolves with its code, signal and stderr. */
function exited(child: ReturnType<typeof spawn>): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((done) => child.on("exit", (code, signal) => done({ code, signal, stderr })));
}

describe("edgeinf train: finished, diverging and interrupted runs", () => {
  it("--resume of a finished run says so and leaves its files as they are; after a kill before pruning the last checkpoint, the summary comes from the checkpoint and keepCheckpoints holds", async () => {
    const r = recipe("finished", (t) => t.replace("  steps: 2", "  steps: 3").replace("checkpointInterval: 2", "checkpointInterval: 1"));
    // killed right after latest.json named step 3, before older step folders were pruned and summary.json written
    const crashed = await exited(
      spawn(process.execPath, ["--import", "tsx", join(ROOT, "test/fixtures/train-child.ts"), r.path], { cwd: ROOT, env: { ...cliEnv(), [TEST_CRASH_ENV]: "before-prune@3" } }),
    );
    expect(crashed.signal, crashed.stderr).toBe("SIGKILL");
    expect(stepFolders(r.out)).toEqual(["step-000001", "step-000002", "step-000003"]);
    expect(existsSync(join(r.out, "summary.json"))).toBe(false);

    const first = await runCli(["train", "--recipe", r.path, "--resume"]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/already finished at step 3 \(training\.steps 3\)/);
    expect(first.stderr).not.toMatch(/NaN|it\/s/);
    expect(stepFolders(r.out)).toEqual(["step-000002", "step-000003"]); // keepCheckpoints: 2
    const summary = JSON.parse(readFileSync(join(r.out, "summary.json"), "utf8")) as Record<string, number>;
    const rows = readFileSync(join(r.out, "train_log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
    expect(summary).toMatchObject({ steps: 3, finalLoss: rows[2]!.loss, heldoutLoss: rows[2]!.heldoutLoss, tokensPerSecond: rows[2]!.tokensPerSecond });
    expect(JSON.parse(first.stdout)).toEqual(summary);

    // what a second `npm run quickstart` does: nothing is written, the summary is printed as it is
    const before = fileListing(r.out);
    const again = await runCli(["train", "--recipe", r.path, "--resume"]);
    expect(again.code, again.stderr).toBe(0);
    expect(meaningfulStderr(again.stderr)).toEqual([`${r.out} already finished at step 3 (training.steps 3); nothing to do, its files are left as they are`]);
    expect(JSON.parse(again.stdout)).toEqual(summary);
    expect(fileListing(r.out)).toEqual(before);
  }, 180_000);

  it("a diverging run (NaN inside the held-out segment loop) stops naming the step, the last good checkpoint folder and --resume", async () => {
    const r = recipe("diverging");
    expect((await runCli(["train", "--recipe", r.path])).code).toBe(0);
    const res = await runCli(["train", "--recipe", r.path, "--resume", "--set", "training.steps=4", "--set", "training.optimizer.lr=1e30", "--set", "training.evalInterval=1", "--set", "training.tbpttSegments=2"]);
    // a failure after the run started: its progress lines, then exactly one error line, last, without a stack
    expect(res.code, res.stderr).toBe(1);
    expect(res.stderr.match(/^error: /gm)).toHaveLength(1);
    expect(res.stderr).not.toMatch(/^\s+at /m);
    const line = meaningfulStderr(res.stderr).pop()!;
    expect(line).toMatch(/^error: EdgeInfinite NLL of segment \d+ is NaN .*, in the held-out loss at step 3; stopped, the last good checkpoint \S+\/step-000002 \(step 2\) is kept/);
    expect(line).toMatch(/then continue with --resume$/);
    expect(JSON.parse(readFileSync(join(r.out, "latest.json"), "utf8"))).toEqual({ step: 2, path: "step-000002" });
  }, 180_000);

  it("a second training into a folder that a running one holds is refused in one line naming the other pid; Ctrl-C exits 130 with one line naming the last checkpoint and the command that resumes it", async () => {
    const r = recipe("interrupted", (t) => t.replace("  steps: 2", "  steps: 500").replace("checkpointInterval: 2", "checkpointInterval: 1").replace("evalInterval: 2", "evalInterval: 1000"));
    const child = spawn(process.execPath, [CLI, "train", "--recipe", r.path, "--set", "seed=4"], { cwd: ROOT, env: cliEnv() });
    const done = exited(child);
    const deadline = Date.now() + 120_000;
    while (!existsSync(join(r.out, "latest.json")) && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 100));
    // the same folder again while the first run holds it (--resume gets past "already holds a checkpoint")
    const second = await runCli(["train", "--recipe", r.path, "--set", "seed=4", "--resume"]);
    expectOneLineError(second, `${r.out} is in use by another edgeinf training (pid ${child.pid}, started `, /wait for it to finish or stop it/);
    child.kill("SIGINT");
    const res = await done;
    expect(res.code, res.stderr).toBe(130);
    const last = meaningfulStderr(res.stderr).pop()!;
    const latest = JSON.parse(readFileSync(join(r.out, "latest.json"), "utf8")) as { step: number; path: string };
    expect(last).toBe(`interrupted: the last checkpoint is ${join(r.out, latest.path)} (step ${latest.step} of 500); continue with: edgeinf train --recipe ${r.path} --set seed=4 --resume`);
    expect(res.stderr).not.toMatch(/^\s+at /m);
    // the lock went with the process; the log has one row per step, none from the refused run
    expect(existsSync(join(r.out, ".edgeinf.lock"))).toBe(false);
    const steps = readFileSync(join(r.out, "train_log.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { step: number }).step);
    expect(steps).toEqual(steps.map((_, i) => i + 1));
  }, 240_000);
});
