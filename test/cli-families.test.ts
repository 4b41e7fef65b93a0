/**
 * edgeinf info / generate / ppl on a tiny checkpoint of each model family, checked against the independent float64
 * forward (test/reference/families64.ts): greedy ids equal, per-token NLL within 1e-4.
 */
import { describe, it, expect } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli, useCliTestDir, type CliResult } from "./fixtures/cli.js";
import { writeFamilyCheckpoint, FAMILY_CONFIGS } from "./fixtures/family-checkpoints.js";
import { familyForward64, nll64 } from "./reference/families64.js";

const tmp = useCliTestDir("edgeinf-cli-families-");

function expectOk(r: CliResult): void {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.code, `stderr:\n${r.stderr}`).toBe(0);
}

function argmax(v: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

// Two families cover what the CLI path adds (a tokenizer without BOS; per-layer RoPE, windows, Gemma's extra norms);
// test/families.test.ts runs the same forward, the cached generate path and every method in-process on all of them
// (each CLI run costs seconds of process start on CI).
const FAMILIES = ["qwen2", "gemma3"];
const TEXT = "Hello world! A tiny test.";

describe("edgeinf info, generate and ppl on every family", () => {
  for (const name of FAMILIES) {
    it(`${name}`, async () => {
      const dir = join(tmp(), name);
      const { config, tensors } = writeFamilyCheckpoint(dir, name);
      const info = await runCli(["info", "-m", dir, "--backend", "cpu", "--json"]);
      expectOk(info);
      const i = JSON.parse(info.stdout) as { family: string; architecture: string; slidingWindowLayers: { layer: number; window: number }[]; parameters: number };
      expect(i.architecture).toBe((config.architectures as string[])[0]);
      expect(i.parameters).toBe([...tensors.values()].reduce((a, t) => a + t.data.length, 0));
      if (config.sliding_window === 4) expect(i.slidingWindowLayers.length).toBeGreaterThan(0);

      const bos = FAMILY_CONFIGS[name]!.addsBos ? [256] : [];
      const ids = [...bos, ...Buffer.from(TEXT, "utf8")];
      const promptText = TEXT.slice(0, 8);
      const prompt = [...bos, ...Buffer.from(promptText, "utf8")];
      const want: number[] = [];
      const seq = [...prompt];
      for (let k = 0; k < 5; k++) {
        want.push(argmax(familyForward64(config, tensors, seq).at(-1)!));
        seq.push(want.at(-1)!);
      }
      const gen = await runCli(["generate", "-m", dir, "--backend", "cpu", "-p", promptText, "-n", "5", "--json"]);
      expectOk(gen);
      const got = JSON.parse(gen.stdout) as { ids: number[]; promptTokens: number };
      expect(got.promptTokens).toBe(prompt.length);
      // Generation stops early only at an EOS id, which the reference continuation must then contain at that step.
      expect(got.ids).toEqual(want.slice(0, got.ids.length));
      if (got.ids.length < want.length) expect([257, 258]).toContain(got.ids.at(-1));

      const textFile = join(dir, "text.txt");
      const nllFile = join(dir, "nll.json");
      writeFileSync(textFile, TEXT);
      const ppl = await runCli(["ppl", "-m", dir, "--backend", "cpu", "-f", textFile, "--json", nllFile]);
      expectOk(ppl);
      const perToken = JSON.parse(readFileSync(nllFile, "utf8")) as { nll: number[] };
      const ref = nll64(familyForward64(config, tensors, ids), ids);
      expect(perToken.nll).toHaveLength(ref.length);
      for (let t = 0; t < ref.length; t++) expect(Math.abs(perToken.nll[t]! - ref[t]!)).toBeLessThan(1e-4);
    }, 120_000);
  }
});
