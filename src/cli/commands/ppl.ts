import type { CommandModule } from "yargs";
import { existsSync, readFileSync, statSync } from "node:fs";
import { prepareMethod } from "../../eval/methods.js";
import { METHODS } from "../../cache/registry.js";
import { perplexityFromNll } from "../../eval/metrics/index.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { EdgeInfError } from "../../util/errors.js";
import { withBackend, withModel, setup, log, type CommonArgs } from "../common.js";

/** Registry methods that can score a whole text. */
const NLL_METHODS = METHODS.filter((m) => m.nll).map((m) => m.name);

interface PplArgs extends CommonArgs {
  file: string;
  context?: number;
  method: string;
  checkpoint?: string;
  json?: string;
  maxTokens?: number;
}

export const pplCommand: CommandModule<object, PplArgs> = {
  command: "ppl",
  describe: "Per-token negative log-likelihood and perplexity of a text file (full backbone or EdgeInfinite)",
  builder: (y) =>
    withModel(withBackend(y))
      .option("file", { alias: "f", type: "string", demandOption: true, describe: "text file" })
      .option("context", { type: "number", describe: "full: window size in tokens (default: the backbone's trained context)" })
      .option("method", { choices: NLL_METHODS, default: "full", describe: "methods that score whole texts (the registry's with an nll)" })
      .option("checkpoint", { type: "string", describe: "trained EdgeInfinite module (untrained if omitted: the same defaults as eval and generate)" })
      .option("max-tokens", { type: "number", describe: "score only the first N tokens" })
      .option("json", { type: "string", describe: "write every token's NLL to this JSON file" })
      .example("$0 ppl -m ../shared/models/edge-lm -f ../shared/corpora/gutenberg/heldout/Persuasion.txt --max-tokens 4096", "held-out perplexity, 2048-token windows")
      .example("$0 ppl -m ../shared/models/edge-lm -f book.txt --method edgeinfinite --checkpoint checkpoints/edge-lm-passkey --json nll.json", "through trained memory, per-token NLL to a file"),
  handler: async (args) => {
    if (!existsSync(args.file)) throw new EdgeInfError(`text file ${args.file} does not exist`, "check the path");
    if (statSync(args.file).isDirectory()) throw new EdgeInfError(`text file ${args.file} is a directory`, "pass a text file");
    if (args.context !== undefined && (!Number.isInteger(args.context) || args.context < 2)) {
      throw new EdgeInfError(`--context ${args.context} must be an integer ≥ 2 (BOS + one scored token per window)`, "e.g. --context 2048");
    }
    if (args.maxTokens !== undefined && (!Number.isInteger(args.maxTokens) || args.maxTokens < 2)) {
      throw new EdgeInfError(`--max-tokens ${args.maxTokens} must be an integer ≥ 2 (BOS + one scored token)`, "e.g. --max-tokens 4096");
    }
    const { backend, backbone, model } = await setup(args);
    let ids = backbone.tokenizer.encode(readFileSync(args.file, "utf8"), { bos: true });
    if (args.maxTokens) ids = ids.slice(0, args.maxTokens);
    if (ids.length < 2) throw new EdgeInfError(`text file ${args.file} has fewer than 2 tokens`, "give a longer text");
    const t0 = performance.now();
    let nll: number[];
    const prepared = prepareMethod({ name: args.method, checkpoint: args.checkpoint }, backbone);
    try {
      nll = await prepared.descriptor.nll!(prepared.instance, model, backbone, ids, args.context);
    } finally {
      prepared.dispose();
    }
    const seconds = (performance.now() - t0) / 1000;
    const mean = nll.reduce((a, b) => a + b, 0) / nll.length;
    const result = {
      file: args.file,
      model: backbone.source.id,
      method: args.method,
      backend: backend.name,
      tokens: nll.length,
      meanNll: mean,
      perplexity: perplexityFromNll(nll),
      tokensPerSecond: nll.length / seconds,
    };
    if (args.json) writeFileAtomic(args.json, JSON.stringify({ ...result, ids: ids.slice(1), nll }, null, 0));
    console.log(JSON.stringify(result, null, 2));
    log(`perplexity ${result.perplexity.toFixed(3)} over ${nll.length} tokens (${result.tokensPerSecond.toFixed(0)} tok/s, ${backend.name})`);
    model.dispose();
  },
};
