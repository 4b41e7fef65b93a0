/**
 * LongBench pred.py behaviour: text truncation (decode both halves, re-tokenise), samsum's single
 * newline stop token, chat templates from tokenizer_config.json (except pred.py's no-template
 * datasets). Expected strings are written out by hand from the templates and pred.py's code.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyChatTemplate, readChatTemplate, usesChatTemplate } from "../src/eval/longbench-chat.js";
import { buildPrompt, samsumNewlineId, truncateMiddleText } from "../src/eval/longbench.js";
import { samplesForTask } from "../src/eval/samples.js";
import { parseSuite } from "../src/eval/suite.js";
import { loadHuggingFaceTokenizer } from "../src/tokenizers/hf-tokenizer.js";
import type { Tokenizer } from "../src/tokenizers/tokenizer.js";
import { charTokenizer } from "./fixtures/char-tokenizer.js";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { generate } from "../src/backbone/generate.js";
import type { InferenceSession } from "../src/backbone/session.js";

const EDGE_LM = join(import.meta.dirname, "..", "..", "shared", "models", "edge-lm");
const work = mkdtempSync(join(tmpdir(), "edgeinf-pred-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));


const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const LLAMA2 =
  "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}{% endfor %}";

describe("truncateMiddleText (pred.py: decode both halves, join, re-tokenise)", () => {
  it("keeps half of max_length from each end, BOS skipped by decode", () => {
    // ids = BOS + "abcdefghij" (11 ids); max 6 → half 3: [BOS,a,b] + [h,i,j] → "ab" + "hij"
    expect(truncateMiddleText(charTokenizer, charTokenizer.encode("abcdefghij", { bos: true }), 6)).toBe("abhij");
    // odd max 7 → half 3 as well (int(7/2))
    expect(truncateMiddleText(charTokenizer, charTokenizer.encode("abcdefghij", { bos: true }), 7)).toBe("abhij");
    expect(truncateMiddleText(charTokenizer, charTokenizer.encode("abc", { bos: true }), 6)).toBeNull();
  });

  it("LongBench v2's ids[:max_len//2] + ids[-max_len//2:] keeps the larger half at the end of an odd length", () => {
    // max 7: Python's -7//2 is -4 → [BOS,a,b] + [g,h,i,j] → "ab" + "ghij" (7 ids, where pred.py v1 keeps 6)
    expect(truncateMiddleText(charTokenizer, charTokenizer.encode("abcdefghij", { bos: true }), 7, Math.ceil(7 / 2))).toBe("abghij");
    expect(truncateMiddleText(charTokenizer, charTokenizer.encode("abcdefghij", { bos: true }), 6, Math.ceil(6 / 2))).toBe("abhij");
  });
});

describe("chat templates (tokenizer_config.json through @huggingface/jinja)", () => {
  it("renders one user message with the generation prompt, as transformers' apply_chat_template", () => {
    const chatml = { name: "default", source: CHATML, bosToken: "<s>", eosToken: "</s>" };
    expect(applyChatTemplate(chatml, "Q?")).toBe("<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n");
    const llama2 = { name: "default", source: LLAMA2, bosToken: "<s>", eosToken: "</s>" };
    expect(applyChatTemplate(llama2, "Q?")).toBe("<s>[INST] Q? [/INST]");
  });

  it("reads chat_template (string, or the 'default' entry of a list) and the BOS/EOS text", () => {
    expect(readChatTemplate(work)).toBeNull(); // no tokenizer_config.json
    writeFileSync(join(work, "tokenizer_config.json"), JSON.stringify({ bos_token: { content: "<s>" }, eos_token: "</s>", chat_template: [{ name: "tool_use", template: "x" }, { name: "default", template: LLAMA2 }] }));
    expect(readChatTemplate(work)).toEqual({ name: "default", source: LLAMA2, bosToken: "<s>", eosToken: "</s>" });
    expect(readChatTemplate(EDGE_LM)).toBeNull(); // edge-lm is a base model: no template
  });

  it("skips pred.py's no-template datasets", () => {
    for (const d of ["trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"]) expect(usesChatTemplate(d)).toBe(false);
    expect(usesChatTemplate("hotpotqa")).toBe(true);
  });
});

describe("LongBench samples as pred.py builds them (edge-lm tokenizer)", () => {
  let tokenizer: Tokenizer;
  beforeAll(async () => {
    tokenizer = await loadHuggingFaceTokenizer(EDGE_LM);
  });

  it("samsum stops on EOS or the single newline token (edge-lm 'Ċ' = 202), not every newline-bearing token", () => {
    expect(samsumNewlineId(tokenizer)).toBe(202); // tokenizer.json vocab: "Ċ": 202
    expect(tokenizer.decode([])).toBe(""); // an answer that stopped at once (the HF library throws on [])
  });

  it("applies the template except on samsum, truncates by text, and records the stop ids", () => {
    const record = { input: "Who?", context: "word ".repeat(400), answers: ["x"], all_classes: null, length: 400, _id: "r1" };
    const data = join(work, "data.jsonl");
    writeFileSync(data, JSON.stringify(record) + "\n");
    const suite = parseSuite(
      {
        name: "pred",
        backbone: EDGE_LM,
        lengths: [128],
        tasks: [
          { name: "hotpotqa", source: "longbench", path: data },
          { name: "samsum", source: "longbench", path: data },
        ],
        methods: [{ name: "full" }],
      },
      "<test>",
      work,
    );
    const chatTemplate = { name: "default", source: CHATML, bosToken: "<s>", eosToken: "</s>" };
    const src = { tokenizer, corpus: () => [], newlineIds: [202, 999], chatTemplate };
    const [hotpot] = samplesForTask(suite, suite.tasks[0]!, src);
    const [samsum] = samplesForTask(suite, suite.tasks[1]!, src);
    // hotpotqa: pred.py text truncation of the full prompt, then ChatML around it, then BOS + tokens.
    const prompt = tokenizer.encode(buildPrompt("hotpotqa", record), { bos: true });
    expect(prompt.length).toBeGreaterThan(128);
    const half = 64;
    const cut = tokenizer.decode(prompt.slice(0, half)) + tokenizer.decode(prompt.slice(prompt.length - half));
    expect(hotpot!.promptIds).toEqual(tokenizer.encode(`<|im_start|>user\n${cut}<|im_end|>\n<|im_start|>assistant\n`, { bos: true }));
    expect(hotpot!.truncated).toBe(true);
    expect(hotpot!.stopIds).toEqual([tokenizer.eosId]);
    // samsum: no template; stop on EOS or "\n"'s id only.
    expect(tokenizer.decode(samsum!.promptIds)).not.toContain("<|im_start|>");
    expect(samsum!.stopIds).toEqual([tokenizer.eosId, 202]);
    // pred.py: min_length = context_length + 1 for samsum only: its first new token is never a stop id.
    expect(samsum!.minNewTokens).toBe(1);
    expect(hotpot!.minNewTokens).toBe(0);
  });
});

describe("generate's minNewTokens (transformers' MinLengthLogitsProcessor, pred.py's samsum min_length)", () => {
  /** A session whose logits put `best[i]` first after the i-th call (prefill, then each step), `runnerUp[i]` second. */
  function scripted(best: number[], runnerUp: number[], vocab = 300): InferenceSession {
    let call = 0;
    const logits = (): tf.Tensor1D => {
      const row = new Float32Array(vocab);
      row[runnerUp[call]!] = 1;
      row[best[call]!] = 2;
      call++;
      return tf.tensor1d(row);
    };
    return { method: "scripted", prefill: async () => logits(), step: async () => logits(), kvBytes: () => 0, peakKvBytes: () => 0, tokensSeen: () => call, dispose: () => {} };
  }

  it("a stop id first is skipped for the runner-up; later it stops; without it the answer is empty", async () => {
    await initBackend("cpu", { log: () => {} });
    // argmax: "\n" (202) at once, then 7, then "\n" again; runner-ups 5, 8, 9.
    const stopIds = [2, 202];
    const withMin = await generate(scripted([202, 7, 202], [5, 8, 9]), [1, 2, 3], { maxNewTokens: 5, temperature: 0, stopIds, minNewTokens: 1 });
    expect(withMin.ids).toEqual([5, 7]);
    const without = await generate(scripted([202, 7, 202], [5, 8, 9]), [1, 2, 3], { maxNewTokens: 5, temperature: 0, stopIds });
    expect(without.ids).toEqual([]);
    // Only the listed stop ids are masked: a newline-bearing token that is not one of them is generated as usual.
    const other = await generate(scripted([203, 202, 0], [5, 8, 9]), [1, 2, 3], { maxNewTokens: 5, temperature: 0, stopIds, minNewTokens: 1 });
    expect(other.ids).toEqual([203]);
  });
});
