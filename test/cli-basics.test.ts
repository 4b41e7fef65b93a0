/**
 * CLI-level tests: run the built `edgeinf` (dist/src/cli/main.js) as a child process from the repo root and check
 * help, info, generate, ppl and the one-line errors for bad input.
 */
import { describe, expect, it } from "vitest";
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, expectOneLineError, runCli, useCliTestDir, type CliResult } from "./fixtures/cli.js";

/** Paths as a user would type them from the repo root. */
const STORIES_DIR = "../shared/models/stories260K";
const STORIES_BIN = `${STORIES_DIR}/stories260K.bin`;
const EDGE_LM = "../shared/models/edge-lm";
const SHARED_README = join(ROOT, "../shared/README.md");
const HAVE_EDGE_LM = existsSync(join(ROOT, EDGE_LM, "config.json")) && existsSync(join(ROOT, EDGE_LM, "reference.json"));

/** stories260K's architecture as ../shared/README.md states it (the spec the CLI's output is checked against). */
const STORIES = { dim: 64, hidden: 172, layers: 5, heads: 8, kvHeads: 4, vocab: 512, seqLen: 512 } as const;
/** llama2.c greedy reference for BOS + encoded " Once upon a time" (../shared/README.md). */
const STORIES_REFERENCE = ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.";

function expectOk(r: CliResult): void {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.code, `stderr:\n${r.stderr}`).toBe(0);
}

// ---------------------------------------------------------------------------------------------
// The commands main.ts registers

/** Command names registered in src/cli/main.ts: each `.command(ident)` → its import → that module's `command:` string. */
function registeredCommands(): string[] {
  const main = readFileSync(join(ROOT, "src/cli/main.ts"), "utf8");
  const fileOf = new Map<string, string>();
  for (const m of main.matchAll(/import\s*\{([^}]*)\}\s*from\s*["']\.\/commands\/([\w-]+)\.js["']/g)) {
    for (const ident of m[1]!.split(",").map((s) => s.trim().split(/\s+as\s+/).pop()!.trim()).filter(Boolean)) fileOf.set(ident, m[2]!);
  }
  const names: string[] = [];
  for (const m of main.matchAll(/\.command\(\s*(\w+)\s*\)/g)) {
    const ident = m[1]!;
    const file = fileOf.get(ident);
    if (file === undefined) continue;
    const src = readFileSync(join(ROOT, "src/cli/commands", `${file}.ts`), "utf8");
    const decl = new RegExp(`export\\s+const\\s+${ident}\\b[\\s\\S]*?\\bcommand:\\s*(?:\\[\\s*)?["'\`]([\\w-]+)`).exec(src);
    names.push(decl ? decl[1]! : file);
  }
  return names;
}

/** Scratch folder of this file (after a build of dist/ if stale). */
const tmp = useCliTestDir("edgeinf-cli-");

// ---------------------------------------------------------------------------------------------
// 1. help

describe("edgeinf --help", () => {
  const commands = registeredCommands();

  it("main.ts registers at least info, generate, ppl and train", () => {
    expect(commands).toEqual(expect.arrayContaining(["info", "generate", "ppl", "train"]));
    expect(new Set(commands).size).toBe(commands.length);
  });

  it("exits 0 and lists every registered command", async () => {
    const r = await runCli(["--help"]);
    expectOk(r);
    const listed = new Set([...r.stdout.matchAll(/^\s+edgeinf ([\w-]+)/gm)].map((m) => m[1]!));
    for (const c of commands) expect(listed, `"edgeinf ${c}" missing from --help:\n${r.stdout}`).toContain(c);
    expect(r.stdout).toMatch(/^Commands:$/m);
  });

  it("<command> --help exits 0 with an Examples: section, for every command", async () => {
    const results = await Promise.all(commands.map((c) => runCli([c, "--help"])));
    results.forEach((r, i) => {
      const c = commands[i]!;
      expectOk(r);
      expect(r.stdout, `edgeinf ${c} --help`).toMatch(new RegExp(`^edgeinf ${c}\\b`, "m"));
      const examples = r.stdout.split(/^Examples:$/m);
      expect(examples.length, `edgeinf ${c} --help has no Examples: section:\n${r.stdout}`).toBe(2);
      expect(examples[1], `edgeinf ${c} --help: empty Examples:`).toMatch(new RegExp(`^\\s+edgeinf ${c}\\b`, "m"));
    });
  });
});

// ---------------------------------------------------------------------------------------------
// 2. info

/** Llama with a tied classifier: embedding + per layer (q, k, v, o, gate, up, down, 2 RMSNorms) + final RMSNorm. */
function llamaParamsTied(a: { dim: number; hidden: number; layers: number; heads: number; kvHeads: number; vocab: number }): number {
  const headDim = a.dim / a.heads;
  const kvDim = a.kvHeads * headDim;
  const perLayer = a.dim * a.dim /* wq */ + 2 * a.dim * kvDim /* wk, wv */ + a.dim * a.dim /* wo */ + 3 * a.dim * a.hidden /* w1, w2, w3 */ + 2 * a.dim;
  return a.vocab * a.dim + a.layers * perLayer + a.dim;
}

describe("edgeinf info", () => {
  it("prints stories260K's architecture, its parameter count and the backend", async () => {
    const expected = llamaParamsTied(STORIES);
    // Cross-check the formula with the file itself: 7 int32 header + float32 weights + freq_cis (seq_len × head_size).
    const fileFloats = (statSync(join(ROOT, STORIES_BIN)).size - 7 * 4) / 4;
    expect(fileFloats - STORIES.seqLen * (STORIES.dim / STORIES.heads)).toBe(expected);
    expect(expected).toBeGreaterThan(250_000); // "260K"
    expect(expected).toBeLessThan(270_000);

    const r = await runCli(["info", "-m", STORIES_BIN, "--backend", "cpu"]);
    expectOk(r);
    const kv = new Map(
      r.stdout
        .split("\n")
        .map((l) => /^(\w+)\s+(.*)$/.exec(l.trim()))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1]!, m[2]!.trim()]),
    );
    expect(kv.get("hiddenSize")).toBe(String(STORIES.dim));
    expect(kv.get("layers")).toBe(String(STORIES.layers));
    expect(kv.get("heads")).toBe(String(STORIES.heads));
    expect(kv.get("kvHeads")).toBe(String(STORIES.kvHeads));
    expect(kv.get("vocab")).toBe(String(STORIES.vocab));
    expect(kv.get("ffn")).toBe(String(STORIES.hidden));
    expect(kv.get("headDim")).toBe(String(STORIES.dim / STORIES.heads));
    expect(kv.get("trainedContext")).toBe(String(STORIES.seqLen));
    expect(kv.get("tiedEmbeddings")).toBe("true");
    expect(Number((kv.get("parameters") ?? "").replace(/[,_\s]/g, ""))).toBe(expected);
    expect(kv.get("backend")).toBe("cpu");
    expect(r.stderr).toMatch(/^backend: cpu\b/m);
  });
});

// ---------------------------------------------------------------------------------------------
// 3. generate

describe("edgeinf generate", () => {
  it("the reference continuation is the one in ../shared/README.md", () => {
    if (!existsSync(SHARED_README)) return;
    const readme = readFileSync(SHARED_README, "utf8").replace(/\s+/g, " ");
    expect(readme).toContain(STORIES_REFERENCE);
  });

  it('greedy stories260K on "Once upon a time" reproduces llama2.c and prints tokens/s', async () => {
    const r = await runCli(["generate", "-m", STORIES_BIN, "--backend", "cpu", "-p", "Once upon a time", "--max-new-tokens", "40"]);
    expectOk(r);
    expect(r.stdout.startsWith("Once upon a time" + STORIES_REFERENCE), r.stdout).toBe(true);
    // run.c's encoder prepends the dummy-prefix space itself: BOS + " Once" " upon" " a" " time" = 5 tokens.
    expect(r.stderr).toMatch(/\bprompt 5 tokens\b/);
    const m = /\bdecode ([\d.]+) tok\/s/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/^40 tokens\b/m);
  });

  it("a literal leading space is a token of its own (the dummy prefix is already added, as in run.c)", async () => {
    const r = await runCli(["generate", "-m", STORIES_BIN, "--backend", "cpu", "-p", " Once upon a time", "-n", "4", "--json"]);
    expectOk(r);
    const rec = JSON.parse(r.stdout) as { promptTokens: number; newTokens: number; decodeTokensPerSecond: number; backend: string };
    expect(rec.promptTokens).toBe(6);
    expect(rec.newTokens).toBe(4);
    expect(rec.backend).toBe("cpu");
    expect(rec.decodeTokensPerSecond).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------------------------------------
// 4. ppl against transformers fp32

interface RefPrompt {
  name: string;
  n_tokens: number;
  text: string;
  input_ids: number[];
  prompt_mean_nll: number;
}

describe("edgeinf ppl", () => {
  it("several files with --batch-size (full and edgeinfinite): each file's per-token NLL equals its own unbatched run, exactly", async () => {
    const dir = join(tmp(), "ppl-batch");
    mkdirSync(dir, { recursive: true });
    const texts = [
      "Once upon a time there was a little girl named Lily. She loved to play outside in the park with her dog.",
      "The sun was warm. Tom and his mom went to the store to buy some milk and bread for breakfast.",
      "A big red ball rolled down the hill and into the pond, and the frog jumped away.",
    ];
    const files = texts.map((t, i) => {
      const f = join(dir, `t${i}.txt`);
      writeFileSync(f, t);
      return f;
    });
    // full: windows of 16 tokens; edgeinfinite: files cut to 20 tokens (equal lengths) step through memory together.
    for (const [name, flags] of [["full", ["--context", "16"]], ["edgeinfinite", ["--method", "edgeinfinite", "--max-tokens", "20"]]] as const) {
      const common = ["ppl", "-m", STORIES_BIN, "--backend", "wasm", ...flags];
      const [batched, ...alone] = await Promise.all([
        runCli([...common, "-f", ...files, "--batch-size", "4", "--json", join(dir, `${name}-batched.json`)]),
        ...files.map((f, i) => runCli([...common, "-f", f, "--json", join(dir, `${name}-alone${i}.json`)])),
      ]);
      for (const r of [batched!, ...alone]) expectOk(r);
      type PerToken = { ids: number[]; nll: number[]; tokens: number; meanNll: number };
      const all = JSON.parse(readFileSync(join(dir, `${name}-batched.json`), "utf8")) as { batchSize: number; tokens: number; files: (PerToken & { file: string })[] };
      expect(all.batchSize).toBe(4);
      expect(all.files.map((f) => f.file)).toEqual(files);
      for (let i = 0; i < files.length; i++) {
        const one = JSON.parse(readFileSync(join(dir, `${name}-alone${i}.json`), "utf8")) as PerToken;
        expect(all.files[i]!.ids).toEqual(one.ids);
        expect(all.files[i]!.nll, `${name}, file ${i}`).toEqual(one.nll);
        expect(all.files[i]!.meanNll).toBe(one.meanNll);
      }
      expect(all.tokens).toBe(all.files.reduce((a, f) => a + f.tokens, 0));
      if (name === "edgeinfinite") expect(all.files.map((f) => f.tokens)).toEqual([19, 19, 19]); // one batch of 3
      const printed = JSON.parse(batched!.stdout) as { files: { file: string; perplexity: number }[]; perplexity: number };
      expect(printed.files).toHaveLength(3);
      expect(Number.isFinite(printed.perplexity)).toBe(true);
    }
  });

  it("--batch-size below 1 is one line", async () => {
    const text = join(tmp(), "ppl-batch-bad.txt");
    writeFileSync(text, "Once upon a time there was a cat.");
    expectOneLineError(await runCli(["ppl", "-m", STORIES_BIN, "--backend", "cpu", "-f", text, "--batch-size", "0"], 20_000), "--batch-size", "0");
  });

  it.skipIf(!HAVE_EDGE_LM).each(["short_prose", "heldout_prose_1900"])(
    "edge-lm %s: same ids and mean NLL as transformers fp32 (±1e-3) [skipped when ../shared/models/edge-lm is absent]",
    async (name) => {
      const ref = (JSON.parse(readFileSync(join(ROOT, EDGE_LM, "reference.json"), "utf8")) as { prompts: RefPrompt[] }).prompts.find((p) => p.name === name)!;
      expect(ref, `${name} in reference.json`).toBeDefined();
      expect(ref.input_ids).toHaveLength(ref.n_tokens);
      const dir = join(tmp(), `ppl-${name}`);
      mkdirSync(dir, { recursive: true });
      const textFile = join(dir, "text.txt");
      const nllFile = join(dir, "nll.json");
      writeFileSync(textFile, ref.text);
      const r = await runCli(["ppl", "-m", EDGE_LM, "-f", textFile, "--backend", "wasm", "--json", nllFile]);
      expectOk(r);
      const result = JSON.parse(r.stdout) as { tokens: number; meanNll: number; perplexity: number; backend: string };
      const perToken = JSON.parse(readFileSync(nllFile, "utf8")) as { ids: number[]; nll: number[]; meanNll: number };
      // Round trip: the CLI tokenized the reference text to exactly the reference ids (BOS excluded from the scored ids).
      expect(perToken.ids).toEqual(ref.input_ids.slice(1));
      expect(perToken.nll).toHaveLength(ref.n_tokens - 1);
      expect(result.tokens).toBe(ref.n_tokens - 1);
      expect(perToken.nll.every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
      const mean = perToken.nll.reduce((a, b) => a + b, 0) / perToken.nll.length;
      expect(Math.abs(mean - result.meanNll)).toBeLessThan(1e-9);
      expect(Math.abs(result.meanNll - ref.prompt_mean_nll), `mean NLL ${result.meanNll} vs transformers ${ref.prompt_mean_nll}`).toBeLessThan(1e-3);
      expect(result.perplexity).toBeCloseTo(Math.exp(result.meanNll), 6);
      expect(result.backend).toBe("wasm");
    },
  );
});

// ---------------------------------------------------------------------------------------------
// 5. bad input → exit 1 and one `error:` line naming the file and the problem

/** A copy of edge-lm in tmp: unchanged files are symlinks to ../shared, `replace` files are written fresh. */
function hfVariant(name: string, replace: Record<string, Uint8Array | string>): string {
  const src = join(ROOT, EDGE_LM);
  const dir = join(tmp(), name);
  mkdirSync(dir);
  for (const f of readdirSync(src)) {
    if (f in replace) writeFileSync(join(dir, f), replace[f]!);
    else symlinkSync(join(src, f), join(dir, f));
  }
  return dir;
}

function edgeConfig(): Record<string, unknown> {
  return JSON.parse(readFileSync(join(ROOT, EDGE_LM, "config.json"), "utf8")) as Record<string, unknown>;
}

/** The shard with its first tensor's dtype rewritten to `dtype` (header length unchanged: padded with spaces). */
function shardWithDtype(shard: string, dtype: string): { bytes: Uint8Array; tensor: string } {
  const bytes = new Uint8Array(readFileSync(shard));
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  const m = /"([^"]+)":\{"dtype":"(F16|F32|BF16)"/.exec(header);
  if (!m) throw new Error(`no float tensor found in the header of ${shard}`);
  const from = `"dtype":"${m[2]}"`;
  const to = `"dtype":"${dtype}"`.padEnd(from.length, " ");
  if (to.length !== from.length) throw new Error("dtype replacement must keep the header length");
  const at = header.indexOf(from, m.index);
  const newHeader = header.slice(0, at) + to + header.slice(at + from.length);
  const out = bytes.slice();
  out.set(new TextEncoder().encode(newHeader), 8);
  return { bytes: out, tensor: m[1]! };
}

describe("edgeinf bad input", () => {
  it("model path that does not exist", async () => {
    const missing = join(tmp(), "no-such-model.bin");
    const r = await runCli(["info", "-m", missing, "--backend", "cpu"]);
    expectOneLineError(r, missing, "does not exist");
  });

  it("llama2.c .bin truncated to half its size (generate)", async () => {
    const dir = join(tmp(), "stories-truncated");
    mkdirSync(dir);
    const full = readFileSync(join(ROOT, STORIES_BIN));
    const bin = join(dir, "stories260K.bin");
    writeFileSync(bin, full.subarray(0, Math.floor(full.length / 2)));
    writeFileSync(join(dir, "tok512.bin"), readFileSync(join(ROOT, STORIES_DIR, "tok512.bin")));
    const r = await runCli(["generate", "-m", bin, "--backend", "cpu", "-p", "Once upon a time"]);
    expectOneLineError(r, bin, "truncated", String(full.length), String(Math.floor(full.length / 2)));
    expect(r.stdout).toBe("");
  });

  it("unknown command and unknown option", async () => {
    const [cmd, opt] = await Promise.all([runCli(["bogus"]), runCli(["info", "-m", STORIES_BIN, "--backend", "cpu", "--bogus"])]);
    expectOneLineError(cmd, "bogus");
    expectOneLineError(opt, "bogus", /unknown/i);
  });

  it("generate without --prompt, with a directory as --prompt-file, with --max-new-tokens that is not a count", async () => {
    const [noPrompt, dirPrompt, badN] = await Promise.all([
      runCli(["generate", "-m", STORIES_BIN, "--backend", "cpu"]),
      runCli(["generate", "-m", STORIES_BIN, "--backend", "cpu", "--prompt-file", tmp()]),
      runCli(["generate", "-m", STORIES_BIN, "--backend", "cpu", "-p", "hi", "--max-new-tokens", "abc"]),
    ]);
    expectOneLineError(noPrompt, "--prompt");
    expectOneLineError(dirPrompt, tmp(), /directory/);
    expectOneLineError(badN, "--max-new-tokens");
  });

  it("ppl with a --context / --max-tokens that cannot hold BOS + one token, and with a directory as --file", async () => {
    const text = join(tmp(), "ppl-context.txt");
    writeFileSync(text, "Once upon a time there was a cat.");
    // 20 s limits: --context 0 used to step windows by -1, i.e. never finish.
    const [ctx1, ctx0, negMax, dir] = await Promise.all([
      runCli(["ppl", "-m", STORIES_BIN, "--backend", "cpu", "-f", text, "--context", "1"], 20_000),
      runCli(["ppl", "-m", STORIES_BIN, "--backend", "cpu", "-f", text, "--context", "0"], 20_000),
      runCli(["ppl", "-m", STORIES_BIN, "--backend", "cpu", "-f", text, "--max-tokens", "-3"], 20_000),
      runCli(["ppl", "-m", STORIES_BIN, "--backend", "cpu", "-f", tmp()], 20_000),
    ]);
    expectOneLineError(ctx1, "--context", "1");
    expectOneLineError(ctx0, "--context", "0");
    expectOneLineError(negMax, "--max-tokens", "-3");
    expectOneLineError(dir, tmp(), /directory/);
  });

  // yargs words an invalid choice over several lines ("Invalid values:\n  Argument: backend, …"); the CLI keeps one.
  it("an invalid --backend choice is one line naming the value and the choices", async () => {
    const r = await runCli(["info", "-m", STORIES_BIN, "--backend", "bogus"]);
    expectOneLineError(r, "backend", "bogus", "wasm");
  });

  describe.skipIf(!HAVE_EDGE_LM)("Hugging Face folder (edge-lm variants in tmp) [skipped when ../shared/models/edge-lm is absent]", () => {
    it("a truncated safetensors shard, an unsupported dtype, an unsupported architecture, a config/header mismatch", async () => {
      const shard1 = "model-00001-of-00002.safetensors";
      const shard2 = "model-00002-of-00002.safetensors";
      const s1 = readFileSync(join(ROOT, EDGE_LM, shard1));
      const truncated = hfVariant("hf-truncated", { [shard1]: s1.subarray(0, Math.floor(s1.length / 2)) });

      const i8 = shardWithDtype(join(ROOT, EDGE_LM, shard2), "I8");
      const badDtype = hfVariant("hf-i8", { [shard2]: i8.bytes });

      const gpt2Config = { ...edgeConfig(), model_type: "gpt2", architectures: ["GPT2LMHeadModel"] };
      const gpt2 = hfVariant("hf-gpt2", { "config.json": JSON.stringify(gpt2Config, null, 2) });
      const { architectures: _drop, ...gpt2TypeOnly } = gpt2Config;
      void _drop;
      const gpt2NoArch = hfVariant("hf-gpt2-model-type", { "config.json": JSON.stringify(gpt2TypeOnly, null, 2) });

      const cfg = edgeConfig();
      const mismatch = hfVariant("hf-mismatch", { "config.json": JSON.stringify({ ...cfg, hidden_size: (cfg.hidden_size as number) + 128 }, null, 2) });

      const text = join(tmp(), "ppl-i8.txt");
      writeFileSync(text, "Once upon a time");
      // One model failure per process, two processes at a time (2 cores).
      const [rTrunc, rI8] = await Promise.all([
        runCli(["info", "-m", truncated, "--backend", "cpu"]),
        runCli(["ppl", "-m", badDtype, "-f", text, "--backend", "cpu"]),
      ]);
      const [rGpt2, rGpt2NoArch, rMismatch] = await Promise.all([
        runCli(["info", "-m", gpt2, "--backend", "cpu"]),
        runCli(["info", "-m", gpt2NoArch, "--backend", "cpu"]),
        runCli(["info", "-m", mismatch, "--backend", "cpu"]),
      ]);

      expectOneLineError(rTrunc, join(truncated, shard1), "truncated");
      expectOneLineError(rI8, join(badDtype, shard2), "I8", /not supported/, i8.tensor);
      expectOneLineError(rGpt2, join(gpt2, "config.json"), "unsupported architecture", "GPT2LMHeadModel");
      expectOneLineError(rGpt2NoArch, join(gpt2NoArch, "config.json"), "unsupported architecture", "gpt2");
      expectOneLineError(rMismatch, join(mismatch, "config.json"), "mismatch", `${(cfg.hidden_size as number) + 128}`, `${cfg.hidden_size as number}`);
      // Nothing was half-printed on stdout before the error.
      for (const r of [rTrunc, rI8, rGpt2, rGpt2NoArch, rMismatch]) expect(r.stdout).toBe("");
    });
  });
});
