import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { fail } from "../util/errors.js";
import type { Tokenizer } from "./tokenizer.js";

/**
 * Hugging Face `tokenizer.json` + `tokenizer_config.json` through the npm package @huggingface/tokenizers.
 * Text is always encoded without the post-processor's special tokens and BOS is prepended here, so BOS
 * appears exactly once with `bos: true` and never with `bos: false`, whatever the post-processor does —
 * for tokenizers that start documents with BOS (add_bos_token, or a post-processor that adds it). Qwen-style
 * tokenizers add none, and `bos: true` adds nothing, as transformers does.
 * EOS: the tokenizer's eos_token first, then every eos_token_id of generation_config.json and config.json.
 */

type JsonObject = Record<string, unknown>;

function readJson(path: string, what: string): JsonObject {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    fail(`cannot read ${what} ${path}: ${(e as Error).message}`, "check the model directory");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    fail(`${what} ${path} is not valid JSON (${(e as Error).message.split("\n")[0]})`, "re-download the file");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) fail(`${what} ${path} is not a JSON object`, "re-download the file");
  return parsed as JsonObject;
}

/** tokenizer_config.json stores special tokens either as a string or as an AddedToken object. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && typeof (value as JsonObject).content === "string") return (value as JsonObject).content as string;
  return undefined;
}

function ids(value: unknown): number[] {
  if (typeof value === "number" && Number.isInteger(value)) return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === "number" && Number.isInteger(v));
  return [];
}

function firstId(value: unknown): number | undefined {
  return ids(value)[0];
}

function specialId(hf: HfTokenizer, tokConfig: JsonObject, modelConfig: JsonObject | null, key: "bos" | "eos"): number | undefined {
  const content = tokenContent(tokConfig[`${key}_token`]);
  if (content !== undefined) {
    const id = hf.token_to_id(content);
    if (id !== undefined) return id;
  }
  return modelConfig ? firstId(modelConfig[`${key}_token_id`]) : undefined;
}

export class HuggingFaceTokenizer implements Tokenizer {
  constructor(
    private readonly hf: HfTokenizer,
    readonly vocabSize: number,
    readonly bosId: number,
    readonly eosId: number,
    /** Whether a document starts with BOS (false for Qwen-style tokenizers). */
    readonly addsBos = true,
    readonly eosIds: readonly number[] = [eosId],
  ) {}

  encode(text: string, options?: { bos?: boolean }): number[] {
    const ids = this.hf.encode(text, { add_special_tokens: false }).ids;
    return options?.bos && this.addsBos ? [this.bosId, ...ids] : ids;
  }

  decode(ids: readonly number[]): string {
    // @huggingface/tokenizers throws on an empty list; an answer that stopped at once is "".
    if (ids.length === 0) return "";
    return this.hf.decode([...ids], { skip_special_tokens: true });
  }

  /** Token string of an id (for diagnostics). */
  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }
}

/** Loads `DIR/tokenizer.json` (+ `DIR/tokenizer_config.json` when present) as a Tokenizer. */
export async function loadHuggingFaceTokenizer(dir: string): Promise<Tokenizer> {
  const tokenizerPath = join(dir, "tokenizer.json");
  if (!existsSync(tokenizerPath)) fail(`tokenizer file ${tokenizerPath} does not exist`, "a Hugging Face model directory needs tokenizer.json (fast tokenizer); convert it with transformers' AutoTokenizer.save_pretrained");
  const tokenizerJson = readJson(tokenizerPath, "tokenizer file");
  const configPath = join(dir, "tokenizer_config.json");
  const tokConfig = existsSync(configPath) ? readJson(configPath, "tokenizer config") : {};
  const modelConfigPath = join(dir, "config.json");
  const modelConfig = existsSync(modelConfigPath) ? readJson(modelConfigPath, "model config") : null;
  const generationPath = join(dir, "generation_config.json");
  const generation = existsSync(generationPath) ? readJson(generationPath, "generation config") : null;
  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(tokenizerJson, tokConfig);
  } catch (e) {
    fail(`cannot build a tokenizer from ${tokenizerPath}: ${(e as Error).message.split("\n")[0]}`, "check that tokenizer.json is a Hugging Face fast-tokenizer file");
  }
  const eosId = specialId(hf, tokConfig, modelConfig, "eos") ?? firstId(generation?.eos_token_id);
  if (eosId === undefined) fail(`no EOS token found for ${dir} (eos_token in tokenizer_config.json or eos_token_id in config.json)`, "add eos_token to tokenizer_config.json");
  const bosToken = specialId(hf, tokConfig, modelConfig, "bos") ?? firstId(generation?.bos_token_id);
  const addsBos = startsWithBos(hf, tokConfig, bosToken);
  if (bosToken === undefined && addsBos) fail(`no BOS token found for ${dir} (bos_token in tokenizer_config.json or bos_token_id in config.json)`, "add bos_token to tokenizer_config.json");
  // A tokenizer without BOS (Qwen) still needs an id to separate packed documents: its EOS.
  const bosId = bosToken ?? eosId;
  const eosIds = [...new Set([eosId, ...ids(generation?.eos_token_id), ...ids(modelConfig?.eos_token_id)])];
  let maxId = -1;
  for (const id of hf.get_vocab(true).values()) maxId = Math.max(maxId, id);
  return new HuggingFaceTokenizer(hf, maxId + 1, bosId, eosId, addsBos, eosIds);
}

/**
 * Whether transformers' tokenizer starts a document with BOS: add_bos_token when tokenizer_config.json says,
 * else whether tokenizer.json's post-processor puts BOS first (Llama 3), else no (Qwen, Phi-3, SmolLM3).
 */
function startsWithBos(hf: HfTokenizer, tokConfig: JsonObject, bosId: number | undefined): boolean {
  if (typeof tokConfig.add_bos_token === "boolean") return tokConfig.add_bos_token;
  if (bosId === undefined) return false;
  return hf.encode("a", { add_special_tokens: true }).ids[0] === bosId;
}
