import type { CommandModule } from "yargs";
import { prepareMethod } from "../../eval/methods.js";
import { METHODS } from "../../cache/registry.js";
import { perplexityFromNll } from "../../eval/metrics/index.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { EdgeInfError } from "../../util/errors.js";
import { readTextFile, readTextPrefix } from "../../util/text-file.js";
import { withBackend, withModel, setup, log, type CommonArgs } from "../common.js";
import { checkOutputPath } from "../output-path.js";
import { checkMethodOption } from "../options.js";

/** Registry methods that can score a whole text. */
const NLL_METHODS = METHODS.filter((m) => m.nll).map((m) => m.name);

interface PplArgs extends CommonArgs {
  /** One file, or several (`-f a.txt b.txt`): the handler is also called directly with one string. */
  file: string | string[];
  batchSize?: number;
  context?: number;
  method: string;
  checkpoint?: string;
  json?: string;
  maxTokens?: number;
}

/** Bytes read per wanted token at first (tokens average ~4 bytes of English; the read doubles until enough). */
const BYTES_PER_TOKEN_GUESS = 8;
/** Tokens past --max-tokens that must be in the read prefix: the last few tokens of a cut text may differ from the file's. */
const CUT_MARGIN_TOKENS = 16;

/**
 * The file's tokens (BOS first), the first `maxTokens` of them when given. With --max-tokens only as much of the
 * file is read as those tokens need (a prefix cut at whitespace, grown until it holds enough), so a huge file costs
 * nothing; without it the file is read whole, up to MAX_TEXT_BYTES.
 */
function readTokens(file: string, maxTokens: number | undefined, encode: (text: string) => number[]): number[] {
  if (maxTokens === undefined) {
    return encode(readTextFile(file, "text file", { fix: "score its start with --max-tokens N (read as a stream), or split the file" }));
  }
  for (let bytes = Math.max(65536, (maxTokens + CUT_MARGIN_TOKENS) * BYTES_PER_TOKEN_GUESS); ; bytes *= 2) {
    const { text, whole } = readTextPrefix(file, "text file", bytes);
    const ids = encode(text);
    if (whole || ids.length >= maxTokens + CUT_MARGIN_TOKENS) return ids.slice(0, maxTokens);
  }
}

export const pplCommand: CommandModule<object, PplArgs> = {
  command: "ppl",
  describe: "Per-token negative log-likelihood and perplexity of a text file (full backbone or EdgeInfinite)",
  builder: (y) =>
    withModel(withBackend(y))
      .option("file", { alias: "f", type: "string", array: true, demandOption: true, describe: "text file(s): several are scored together (see --batch-size)" })
      .option("batch-size", { type: "number", describe: "windows (full) or equal-length files (edgeinfinite) per forward (default 1; each file's NLL is the same for any value)" })
      .option("context", { type: "number", describe: "full: window size in tokens (default: the backbone's trained context)" })
      .option("method", { choices: NLL_METHODS, default: "full", describe: "methods that score whole texts (the registry's with an nll)" })
      .option("checkpoint", { type: "string", describe: "trained EdgeInfinite module (untrained if omitted: the same defaults as eval and generate)" })
      .option("max-tokens", { type: "number", describe: "score only the first N tokens" })
      .option("json", { type: "string", describe: "write every token's NLL to this JSON file" })
      .example("$0 ppl -m ../shared/models/edge-lm -f ../shared/corpora/gutenberg/heldout/Persuasion.txt --max-tokens 4096", "held-out perplexity, 2048-token windows")
      .example("$0 ppl -m ../shared/models/edge-lm -f a.txt b.txt c.txt --batch-size 4", "three files, four 2048-token windows per forward")
      .example("$0 ppl -m ../shared/models/edge-lm -f book.txt --method edgeinfinite --checkpoint checkpoints/edge-lm-passkey --json nll.json", "through trained memory, per-token NLL to a file"),
  handler: async (args) => {
    const files = [args.file].flat();
    checkMethodOption("--checkpoint", args.checkpoint !== undefined, args.method, ["edgeinfinite"], "--method edgeinfinite");
    checkMethodOption("--context", args.context !== undefined, args.method, ["full"], "--method full (edgeinfinite reads the whole text through its memory)");
    checkMethodOption("--batch-size", args.batchSize !== undefined, args.method, (m) => METHODS.some((d) => d.name === m && d.nllBatch), "methods that batch whole texts (full, edgeinfinite)");
    for (const file of files) readTextPrefix(file, "text file", 1); // exists, is a file, can be read: before the model loads
    if (args.context !== undefined && (!Number.isInteger(args.context) || args.context < 2)) {
      throw new EdgeInfError(`--context ${args.context} must be an integer ≥ 2 (BOS + one scored token per window)`, "e.g. --context 2048");
    }
    if (args.maxTokens !== undefined && (!Number.isInteger(args.maxTokens) || args.maxTokens < 2)) {
      throw new EdgeInfError(`--max-tokens ${args.maxTokens} must be an integer ≥ 2 (BOS + one scored token)`, "e.g. --max-tokens 4096");
    }
    const batchSize = args.batchSize ?? 1;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new EdgeInfError(`--batch-size ${args.batchSize} must be an integer ≥ 1`, "e.g. --batch-size 4");
    if (args.json !== undefined) checkOutputPath(args.json, "--json"); // before the work, not after it
    const { backend, backbone, model } = await setup(args);
    const texts = files.map((file) => {
      const ids = readTokens(file, args.maxTokens, (text) => backbone.tokenizer.encode(text, { bos: true }));
      if (ids.length < 2) throw new EdgeInfError(`text file ${file} has fewer than 2 tokens`, "give a longer text");
      return ids;
    });
    const t0 = performance.now();
    if (args.method === "full") {
      const context = args.context ?? backbone.config.maxPositions;
      if (context > backbone.config.maxPositions) {
        log(`warning: --context ${context} is past ${backbone.source.id}'s trained context of ${backbone.config.maxPositions} tokens: positions beyond it were never trained, so the perplexity is not meaningful there`);
      }
    }
    const prepared = prepareMethod({ name: args.method, ...(args.checkpoint !== undefined ? { checkpoint: args.checkpoint } : {}) }, backbone);
    let nlls: number[][];
    try {
      const d = prepared.descriptor;
      if (d.nllBatch) nlls = await d.nllBatch(prepared.instance, model, backbone, texts, args.context, batchSize);
      else {
        nlls = [];
        for (const ids of texts) nlls.push(await d.nll!(prepared.instance, model, backbone, ids, args.context));
      }
    } finally {
      prepared.dispose();
    }
    const seconds = (performance.now() - t0) / 1000;
    const all = nlls.flat();
    const scores = (nll: readonly number[]) => ({ tokens: nll.length, meanNll: nll.reduce((a, b) => a + b, 0) / nll.length, perplexity: perplexityFromNll(nll) });
    const common = { model: backbone.source.id, method: args.method, backend: backend.name };
    const perFile = files.map((file, i) => ({ file, ...scores(nlls[i]!) }));
    const totals = { ...scores(all), tokensPerSecond: all.length / seconds };
    // One file: the object `ppl` has always printed. Several: the totals over all tokens and each file's scores.
    const result = files.length === 1 ? { file: files[0]!, ...common, ...totals } : { ...common, batchSize, ...totals, files: perFile };
    if (args.json) {
      const tokens = (i: number) => ({ ids: texts[i]!.slice(1), nll: nlls[i]! });
      const perToken = files.length === 1 ? { ...result, ...tokens(0) } : { ...result, files: perFile.map((f, i) => ({ ...f, ...tokens(i) })) };
      writeFileAtomic(args.json, JSON.stringify(perToken, null, 0));
    }
    console.log(JSON.stringify(result, null, 2));
    const where = files.length === 1 ? "" : ` in ${files.length} files`;
    log(`perplexity ${result.perplexity.toFixed(3)} over ${all.length} tokens${where} (${result.tokensPerSecond.toFixed(0)} tok/s, ${backend.name}, batch size ${batchSize})`);
    model.dispose();
  },
};
