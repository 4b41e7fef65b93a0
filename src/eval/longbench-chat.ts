import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { fail } from "../util/errors.js";
import { noChatTemplateDatasets } from "./longbench-config.js";

/**
 * A model's chat template from its tokenizer_config.json, rendered with @huggingface/jinja the way
 * transformers' `apply_chat_template(messages, add_generation_prompt=True, tokenize=False)` does:
 * one user message holding the LongBench prompt; `bos_token`/`eos_token` from the config.
 */
export interface ChatTemplate {
  /** Template name: "default" for a plain string, else the entry picked from a named list. */
  name: string;
  source: string;
  bosToken: string;
  eosToken: string;
}

/** tokenizer_config.json token fields are a string or an AddedToken object with `content`. */
function tokenText(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "object" && value !== null && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return "";
}

/** The chat template of the model in `modelDir`, or null when its tokenizer_config.json has none. */
export function readChatTemplate(modelDir: string): ChatTemplate | null {
  const path = join(modelDir, "tokenizer_config.json");
  if (!existsSync(path)) return null;
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (error) {
    fail(`${path}: malformed JSON (${(error as Error).message})`, "fix the tokenizer_config.json or remove it");
  }
  const raw = config.chat_template;
  const tokens = { bosToken: tokenText(config.bos_token), eosToken: tokenText(config.eos_token) };
  if (typeof raw === "string") return { name: "default", source: raw, ...tokens };
  if (Array.isArray(raw)) {
    // transformers: a list of {name, template}; the one named "default" is used for plain chat.
    const entry = raw.find((item: unknown) => (item as { name?: unknown }).name === "default") as { template?: unknown } | undefined;
    if (entry && typeof entry.template === "string") return { name: "default", source: entry.template, ...tokens };
    fail(`${path}: chat_template list has no "default" entry`, "add one, or evaluate without a chat template");
  }
  return null;
}

/** The LongBench prompt wrapped in the chat template (what the model reads, special tokens as text). */
export function applyChatTemplate(template: ChatTemplate, prompt: string): string {
  let compiled: Template;
  try {
    compiled = new Template(template.source);
  } catch (error) {
    fail(`chat template does not parse (${(error as Error).message})`, "fix chat_template in tokenizer_config.json");
  }
  // @huggingface/jinja defines raise_exception itself, as transformers does.
  return compiled.render({
    messages: [{ role: "user", content: prompt }],
    add_generation_prompt: true,
    bos_token: template.bosToken,
    eos_token: template.eosToken,
  });
}

/** pred.py: "chat models are better off without build prompts" on trec, triviaqa, samsum, lsht, lcc, repobench-p. */
export function usesChatTemplate(dataset: string): boolean {
  return !noChatTemplateDatasets.has(dataset);
}
