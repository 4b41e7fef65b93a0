import type { CommandModule } from "yargs";
import { existsSync, readFileSync, statSync } from "node:fs";
import { windowedNll } from "../../backbone/nll.js";
import { loadCheckpoint } from "../../training/checkpoint.js";
import { MemoryGatingModule } from "../../memory/module.js";
import { makeEdgeInfiniteConfig, validateEdgeInfiniteConfig } from "../../memory/config.js";
import { edgeInfiniteNll } from "../../memory/edgeinfinite.js";
import { perplexityFromNll } from "../../eval/metrics/index.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { EdgeInfError } from "../../util/errors.js";
import { withBackend, withModel, setup, log, type CommonArgs } from "../common.js";

interface PplArgs extends CommonArgs {
  file: string;
  context?: number;
  method: "full" | "edgeinfinite";
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
      .option("method", { choices: ["full", "edgeinfinite"] as const, default: "full" as const })
      .option("checkpoint", { type: "string", describe: "trained EdgeInfinite module (untrained if omitted)" })
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
    if (args.method === "edgeinfinite") {
      const module = args.checkpoint
        ? loadCheckpoint(args.checkpoint, backbone).module
        : new MemoryGatingModule(backbone.config, makeEdgeInfiniteConfig({ sinkTokens: 4, windowTokens: Math.floor(backbone.config.maxPositions / 2), segmentLength: Math.floor(backbone.config.maxPositions / 4) }));
      validateEdgeInfiniteConfig(module.config, backbone.config);
      try {
        nll = await edgeInfiniteNll(model, module, ids);
      } finally {
        module.dispose();
      }
    } else {
      const context = args.context ?? backbone.config.maxPositions;
      nll = await windowedNll(model, ids, context, backbone.tokenizer.addsBos === false ? null : backbone.config.bosTokenId);
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
