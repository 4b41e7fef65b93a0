/**
 * A suite on a backbone whose tokenizer_config.json has a chat template: LongBench prompts are
 * wrapped (not samsum's), and run.json records which template (name, SHA-256) and the skipped datasets.
 * The backbone is a copy of edge-lm in tmp (weights symlinked) with a ChatML template added.
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runSuite } from "../src/eval/harness.js";
import { buildPrompt } from "../src/eval/longbench.js";
import { loadHuggingFaceTokenizer } from "../src/tokenizers/hf-tokenizer.js";
import { parseSuite } from "../src/eval/suite.js";

const EDGE_LM = resolve(import.meta.dirname, "..", "..", "shared", "models", "edge-lm");
const work = mkdtempSync(join(tmpdir(), "edgeinf-chat-run-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

describe("chat template in a suite run", () => {
  it("wraps LongBench prompts except no-template datasets and records the template in run.json", async () => {
    const model = join(work, "edge-lm-chat");
    mkdirSync(model, { recursive: true });
    for (const f of readdirSync(EDGE_LM)) if (f !== "tokenizer_config.json") symlinkSync(join(EDGE_LM, f), join(model, f));
    const config = JSON.parse(readFileSync(join(EDGE_LM, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
    writeFileSync(join(model, "tokenizer_config.json"), JSON.stringify({ ...config, chat_template: CHATML }));
    const data = join(work, "data.jsonl");
    const record = { input: "Who?", context: "Ann met Bob.", answers: ["Bob"], all_classes: null, length: 10, _id: "r" };
    writeFileSync(data, JSON.stringify(record) + "\n");
    const suite = parseSuite(
      {
        name: "chat",
        backbone: model,
        lengths: [256],
        tasks: [
          { name: "hotpotqa", source: "longbench", path: data },
          { name: "samsum", source: "longbench", path: data },
        ],
        methods: [{ name: "full" }],
        generation: { maxNewTokens: 1, temperature: 0 },
        warmup: false,
      },
      "<test>",
      work,
    );
    const runDir = join(work, "run");
    const result = await runSuite(suite, { runDir, backend: "wasm", progress: "none", warn: () => {} });
    const run = JSON.parse(readFileSync(join(runDir, "run.json"), "utf8")) as { chatTemplate: unknown };
    expect(run.chatTemplate).toEqual({
      name: "default",
      sha256: createHash("sha256").update(CHATML).digest("hex"),
      skippedDatasets: ["trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"],
    });
    const tokens = (task: string) => result.samples.find((r) => r.task === task)!.promptTokens;
    const tokenizer = await loadHuggingFaceTokenizer(EDGE_LM);
    const wrapped = `<|im_start|>user\n${buildPrompt("hotpotqa", record)}<|im_end|>\n<|im_start|>assistant\n`;
    expect(tokens("hotpotqa")).toBe(tokenizer.encode(wrapped, { bos: true }).length);
    expect(tokens("samsum")).toBe(tokenizer.encode(buildPrompt("samsum", record), { bos: true }).length);
  }, 120_000);
});
