/**
 * `edgeinf train` as a user runs it: the built CLI (dist/src/cli/main.js) as a child process from the repo root.
 * Bad recipes and bad --set arguments exit with code 1, print exactly one `error:` line naming the problem, and write
 * nothing (the recipe's output folder is never created). One small run checks the success path and --resume with
 * another backbone.
 */
import { describe, expect, it } from "vitest";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ROOT, expectOneLineError, runCli, useCliTestDir } from "./fixtures/cli.js";

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
