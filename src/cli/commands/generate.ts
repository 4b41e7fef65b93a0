import type { CommandModule } from "yargs";
import { fail } from "../../util/errors.js";
import { generate } from "../../backbone/generate.js";
import { createSession } from "../../eval/methods.js";
import { methodNames } from "../../cache/registry.js";
import { withBackend, withModel, setup, log, type CommonArgs } from "../common.js";
import { EdgeInfError } from "../../util/errors.js";
import { readTextFile } from "../../util/text-file.js";
import { checkMethodOption, checkSamplingOptions } from "../options.js";
import { endOfTextIds } from "../../tokenizers/tokenizer.js";
import { stopTokenIds } from "../../backbone/config.js";

interface GenerateArgs extends CommonArgs {
  prompt?: string;
  promptFile?: string;
  maxNewTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  seed: number;
  method: string;
  checkpoint?: string;
  budget?: string;
  sinkTokens?: number;
  windowTokens?: number;
  segmentLength?: number;
  methodOption?: string[];
  json?: boolean;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- yargs infers a wider builder type
/** --budget as the registry takes it: a token count ("512") or a share ("25%"); anything else is one line. */
function budgetFlag(budget: string | undefined, method: string): number | string | undefined {
  if (budget === undefined) return undefined;
  if (/^\d+$/.test(budget)) return Number(budget);
  if (/^\d+(\.\d+)?%$/.test(budget)) return budget;
  return fail(`budget ${JSON.stringify(budget)} for method ${method} is neither a token count nor a share`, 'write e.g. --budget 512 or --budget 25%');
}

export const generateCommand: CommandModule<object, any> = {
  command: "generate",
  describe: "Generate text (greedy or sampled) with full KV, an eviction method or EdgeInfinite; prints tokens/s",
  builder: (y) =>
    withModel(withBackend(y))
      .option("prompt", { alias: "p", type: "string", describe: "prompt text" })
      .option("prompt-file", { type: "string", describe: "read the prompt from a file" })
      .option("max-new-tokens", { alias: "n", type: "number", default: 64 })
      .option("temperature", { alias: "t", type: "number", default: 0, describe: "0 = greedy" })
      .option("top-k", { type: "number" })
      .option("top-p", { type: "number" })
      .option("seed", { type: "number", default: 0 })
      .option("method", { type: "string", default: "full", describe: `${methodNames().join(" | ")} (see docs/methods.md)` })
      .option("method-option", { type: "string", array: true, describe: "any other option of the method, KEY=VALUE (e.g. recentTokens=64, kvQuantization.bits=4); repeatable" })
      .option("checkpoint", { type: "string", describe: "trained EdgeInfinite module (folder written by edgeinf train)" })
      .option("budget", { type: "string", describe: "KV budget of an eviction method: tokens (512) or a ratio (25%)" })
      .option("sink-tokens", { type: "number" })
      .option("window-tokens", { type: "number" })
      .option("segment-length", { type: "number" })
      .option("json", { type: "boolean", describe: "print a JSON record instead of streaming text" })
      .check((a) => {
        if (a.prompt === undefined && a.promptFile === undefined) throw new EdgeInfError("give --prompt or --prompt-file");
        if (a.prompt !== undefined && a.promptFile !== undefined) throw new EdgeInfError("--prompt and --prompt-file were both given", "give one of them");
        checkSamplingOptions(a as unknown as GenerateArgs);
        const method = String(a.method);
        const evicting = (m: string): boolean => m !== "full" && m !== "edgeinfinite";
        checkMethodOption("--budget", a.budget !== undefined, method, evicting, "eviction methods (streaming, h2o, snapkv, pyramidkv, tova, random)");
        checkMethodOption("--checkpoint", a.checkpoint !== undefined, method, ["edgeinfinite"], "--method edgeinfinite");
        checkMethodOption("--segment-length", a.segmentLength !== undefined, method, ["edgeinfinite"], "--method edgeinfinite");
        checkMethodOption("--sink-tokens", a.sinkTokens !== undefined, method, (m) => m !== "full", "edgeinfinite and the eviction methods");
        checkMethodOption("--window-tokens", a.windowTokens !== undefined, method, (m) => m !== "full", "edgeinfinite and the eviction methods");
        const n = a.maxNewTokens as number;
        if (!Number.isInteger(n) || n < 0) throw new EdgeInfError(`--max-new-tokens ${String(a.maxNewTokens)} must be a non-negative integer`, "e.g. --max-new-tokens 64");
        return true;
      })
      .example('$0 generate -m ../shared/models/stories260K/stories260K.bin -p "Once upon a time"', "greedy continuation")
      .example('$0 generate -m ../shared/models/edge-lm --prompt-file long.txt --method edgeinfinite --checkpoint checkpoints/edge-lm-passkey', "long prompt through trained memory")
      .example('$0 generate -m ../shared/models/edge-lm --prompt-file long.txt --method snapkv --budget 512', "SnapKV with a 512-token budget"),
  handler: async (raw) => {
    const args = raw as unknown as GenerateArgs;
    const text = args.promptFile !== undefined ? readTextFile(args.promptFile, "prompt file") : args.prompt!;
    const { backend, backbone, model } = await setup(args);
    const ids = backbone.tokenizer.encode(text, { bos: true });
    const positions = ids.length + args.maxNewTokens;
    if (args.method === "full" && positions > backbone.config.maxPositions) {
      log(`warning: prompt + new tokens = ${positions} positions, past ${backbone.source.id}'s trained context of ${backbone.config.maxPositions}: full attention is untrained there (try --method edgeinfinite or an eviction method)`);
    }
    const session = createSession(
      {
        name: args.method,
        budget: budgetFlag(args.budget, args.method),
        checkpoint: args.checkpoint,
        sinkTokens: args.sinkTokens,
        windowTokens: args.windowTokens,
        segmentLength: args.segmentLength,
        ...methodOptionFlags(args.methodOption),
      },
      { model, backbone, promptTokens: ids.length },
    );
    if (!args.json) process.stdout.write(text);
    const out = await generate(session, ids, {
      maxNewTokens: args.maxNewTokens,
      temperature: args.temperature,
      topK: args.topK,
      topP: args.topP,
      seed: args.seed,
      stopIds: endOfTextIds(backbone.tokenizer, stopTokenIds(backbone.config)),
      onToken: args.json ? undefined : (id) => process.stdout.write(backbone.tokenizer.decode([id])),
    });
    const record = {
      method: session.method,
      backend: backend.name,
      promptTokens: ids.length,
      newTokens: out.ids.length,
      text: backbone.tokenizer.decode(out.ids),
      ids: out.ids,
      ttftMs: out.ttftMs,
      prefillTokensPerSecond: out.prefillTokensPerSecond,
      decodeTokensPerSecond: out.decodeTokensPerSecond,
      kvBytesAfterPrefill: out.kvBytesAfterPrefill,
      peakKvBytes: out.peakKvBytes,
      seed: args.seed,
    };
    session.dispose();
    model.dispose();
    if (args.json) console.log(JSON.stringify(record, null, 2));
    else {
      process.stdout.write("\n");
      log(
        `${record.newTokens} tokens | prompt ${ids.length} tokens, TTFT ${out.ttftMs.toFixed(0)} ms (${out.prefillTokensPerSecond.toFixed(0)} tok/s) | decode ${out.decodeTokensPerSecond.toFixed(1)} tok/s | KV ${(out.peakKvBytes / 1024).toFixed(0)} KiB peak | ${session.method} on ${backend.name}`,
      );
    }
  },
};

/** A number where the text is one, a list of numbers where it is one in brackets ("[1, 1]"), else the text. */
function optionValue(text: string): unknown {
  const isNumber = (t: string): boolean => t.trim() !== "" && Number.isFinite(Number(t));
  if (isNumber(text)) return Number(text);
  const list = /^\s*\[(.*)\]\s*$/.exec(text);
  if (list !== null) {
    const items = list[1]!.trim() === "" ? [] : list[1]!.split(",");
    if (items.every(isNumber)) return items.map(Number);
  }
  return text;
}

/**
 * --method-option KEY=VALUE flags as options (numbers where the value is one, number lists written [a, b]; a dotted key such as
 * kvQuantization.bits=4 sets a nested option); the method's schema checks them.
 */
export function methodOptionFlags(flags: readonly string[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const flag of flags ?? []) {
    const eq = flag.indexOf("=");
    if (eq < 1) throw new EdgeInfError(`--method-option ${flag} is not KEY=VALUE`, "e.g. --method-option recentTokens=64");
    const text = flag.slice(eq + 1);
    const value = optionValue(text);
    const path = flag.slice(0, eq).split(".");
    let at = out;
    for (const key of path.slice(0, -1)) at = (at[key] ??= {}) as Record<string, unknown>;
    at[path.at(-1)!] = value;
  }
  return out;
}
