/**
 * Keys cached after RoPE (instead of re-rotating the whole cache at every step) keep every method's outputs: logits
 * of prefill + 10 decode steps on stories260K equal those recorded by test/fixtures/method-logits/record.ts with
 * the code before that change — bit for bit where tokens keep their original positions, within float32 rounding
 * (1e-5) for StreamingLLM, whose moved keys are now re-rotated by the distance they moved.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { loadBackbone } from "../src/loaders/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import { CachedSession } from "../src/cache/cached-session.js";
import { createPolicy } from "../src/cache/registry.js";
import { SCENARIO } from "./fixtures/method-logits/scenario.js";

const fixture = JSON.parse(readFileSync(resolve(__dirname, "fixtures/method-logits/logits.json"), "utf8")) as { vocab: number; logits: Record<string, string> };
const BIT_IDENTICAL = ["full", "h2o", "snapkv", "pyramidkv", "tova", "random"];

let model: LlamaModel;
let prompt: number[];
let continuation: number[];

beforeAll(async () => {
  await initBackend("cpu");
  const b = await loadBackbone(resolve(__dirname, "../../shared/models/stories260K/stories260K.bin"));
  model = LlamaModel.fromHost(b.config, b.weights);
  const ids = b.tokenizer.encode(SCENARIO.text, { bos: true });
  prompt = ids.slice(0, SCENARIO.promptTokens);
  continuation = ids.slice(SCENARIO.promptTokens, SCENARIO.promptTokens + SCENARIO.decodeSteps);
});

afterAll(() => model?.dispose());

describe("logits before and after keys are cached after RoPE", () => {
  for (const [name, options] of Object.entries(SCENARIO.methods)) {
    it(`${name}: ${BIT_IDENTICAL.includes(name) ? "bit-identical" : "within 1e-5"}`, async () => {
      const s = new CachedSession(model, createPolicy(name, options));
      const rows: number[] = [];
      const grab = async (t: tf.Tensor1D) => {
        rows.push(...((await t.data()) as Float32Array));
        t.dispose();
      };
      await grab(await s.prefill(prompt));
      for (const id of continuation) await grab(await s.step(id));
      s.dispose();
      const want = new Float32Array(new Uint8Array(Buffer.from(fixture.logits[name]!, "base64")).buffer);
      expect(rows.length).toBe(want.length);
      let maxErr = 0;
      for (let i = 0; i < want.length; i++) maxErr = Math.max(maxErr, Math.abs(rows[i]! - want[i]!));
      if (BIT_IDENTICAL.includes(name)) expect(maxErr).toBe(0);
      else expect(maxErr).toBeLessThan(1e-5);
      console.log(`${name}: max |Δlogit| = ${maxErr}`);
    });
  }
});
