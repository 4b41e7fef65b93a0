import type { CommandModule } from "yargs";
import { existsSync, readFileSync } from "node:fs";
import * as tf from "../../tf.js";
import { tokenNll } from "../../backbone/nll.js";
import { loadCheckpoint } from "../../training/checkpoint.js";
import { MemoryGatingModule } from "../../memory/module.js";
import { makeEdgeInfiniteConfig, validateEdgeInfiniteConfig } from "../../memory/config.js";
import { forwardSegment, segmentsOf } from "../../memory/edgeinfinite.js";
import { initialState, keepState, disposeReplaced, disposeState } from "../../memory/state.js";
import { perplexityFromNll } from "../../eval/metrics/index.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { EdgeInfError } from "../../util/errors.js";
import { withBackend, withModel, setup, log, type CommonArgs } from "../common.js";
import type { LlamaModel } from "../../backbone/model.js";

interface PplArgs extends CommonArgs {
  file: string;
  context?: number;
  method: "full" | "edgeinfinite";
  checkpoint?: string;
  json?: string;
  maxTokens?: number;
}

/** NLL of each token with the plain backbone, in independent windows of `context` tokens (each starting with BOS). */
function fullNll(model: LlamaModel, ids: number[], context: number, bos: number): number[] {
  const out: number[] = [];
  for (let s = 1; s < ids.length; s += context - 1) {
    const win = [bos, ...ids.slice(s, s + context - 1)];
    const h = model.forward(win.slice(0, -1));
    out.push(...tokenNll(model, h, win.slice(1)));
    h.dispose();
  }
  return out;
}

/** NLL of each token through EdgeInfinite segments over the whole text. */
function edgeNll(model: LlamaModel, module: MemoryGatingModule, ids: number[]): number[] {
  const inputs = ids.slice(0, -1);
  const out: number[] = [];
  let state = initialState(model.config);
  segmentsOf(inputs, module.config.segmentLength).forEach((seg, i) => {
    const prev = state;
    const r = tf.scoped(() => {
      const f = forwardSegment(model, module, prev, seg);
      keepState(f.state);
      const off = i * module.config.segmentLength;
      return { nll: tokenNll(model, f.hidden, ids.slice(off + 1, off + 1 + seg.length)), state: f.state };
    });
    out.push(...r.nll);
    disposeReplaced(prev, r.state);
    state = r.state;
  });
  disposeState(state);
  return out;
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
      nll = edgeNll(model, module, ids);
      module.dispose();
    } else {
      const context = args.context ?? backbone.config.maxPositions;
      nll = fullNll(model, ids, context, backbone.config.bosTokenId);
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
