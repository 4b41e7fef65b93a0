import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { loadBackbone } from "../src/loaders/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import { CachedSession } from "../src/cache/cached-session.js";
import { fullPolicy } from "../src/cache/full.js";
import { generate } from "../src/backbone/generate.js";
import { stopTokenIds } from "../src/backbone/config.js";
import { FAMILY_CONFIGS, writeFamilyCheckpoint } from "./fixtures/family-checkpoints.js";
import { familyForward64, nll64 } from "./reference/families64.js";

const root = mkdtempSync(join(tmpdir(), "edgeinf-families-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function argmax(v: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

// Short: past every sliding window (4). Long: past llama-dynamic's 8, yarn's 16 and phi3's original 32 positions.
const SHORT = [256, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 10];
const LONG = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % 256);

describe("model families against an independent float64 forward (written from transformers' modeling files)", () => {
  beforeAll(async () => {
    await initBackend("cpu");
  });

  for (const name of Object.keys(FAMILY_CONFIGS)) {
    it(`${name}: logits of every position within 1e-4, NLL within 1e-4, cached greedy = full re-forward greedy`, async () => {
      const dir = join(root, name);
      const { config, tensors } = writeFamilyCheckpoint(dir, name);
      const b = await loadBackbone(dir);
      const model = LlamaModel.fromHost(b.config, b.weights);
      for (const ids of [SHORT, LONG]) {
        const ref = familyForward64(config, tensors, ids);
        const got = tf.tidy(() => model.logits(model.forward(ids))).arraySync() as number[][];
        expect(maxAbsDiff(got.flat(), ref.flat())).toBeLessThan(1e-4);
        const gotNll = nll64(got, ids);
        expect(maxAbsDiff(gotNll, nll64(ref, ids))).toBeLessThan(1e-4);
      }
      const before = tf.memory().numTensors; // RoPE tables now exist; nothing else may stay
      // Greedy through the KV cache (the generate path) equals greedy by full float64 re-forward.
      const prompt = SHORT.slice(0, 6);
      const want: number[] = [];
      const seq = [...prompt];
      for (let i = 0; i < 8; i++) {
        const next = argmax(familyForward64(config, tensors, seq).at(-1)!);
        want.push(next);
        seq.push(next);
      }
      const s = new CachedSession(model, fullPolicy());
      const r = await generate(s, prompt, { maxNewTokens: 8, temperature: 0, stopIds: [] });
      s.dispose();
      expect(r.ids).toEqual(want);
      expect(tf.memory().numTensors).toBe(before);
      model.dispose();
    });
  }

  it("reads several EOS ids (config.json list, generation_config.json) and the tokenizer's BOS convention", async () => {
    const b = await loadBackbone(join(root, "llama3"));
    expect(stopTokenIds(b.config)).toEqual([257, 258]);
    expect(b.tokenizer.eosIds).toEqual([257, 258]);
    expect(b.tokenizer.encode("hi", { bos: true })).toEqual([256, 104, 105]);
    const q = await loadBackbone(join(root, "qwen2"));
    // Qwen's tokenizer adds no BOS (as transformers encodes it); EOS is <eot> then generation_config's ids.
    expect(q.tokenizer.encode("hi", { bos: true })).toEqual([104, 105]);
    expect(q.tokenizer.eosId).toBe(258);
    expect(q.tokenizer.eosIds).toEqual([258, 257]);
  });
});
