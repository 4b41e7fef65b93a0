import type { CommandModule } from "yargs";
import { existsSync } from "node:fs";
import { loadCorpus } from "../../datasets/manifest.js";
import { localSpanTokens, makeEdgeInfiniteConfig, mergeLayout, type EdgeInfiniteConfig } from "../../memory/config.js";
import { allocateExactTokens, retrievalProbes, retrievalScores } from "../../memory/retrieval-heads.js";
import { checkBackbone, readCheckpointMeta, resolveCheckpointDir, runConfig, writeCheckpointLayout } from "../../training/checkpoint.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { EdgeInfError, fail } from "../../util/errors.js";
import { progressReporter } from "../../eval/progress.js";
import { withBackend, withModel, setup, log, shellQuote, type CommonArgs } from "../common.js";
import { checkOutputPath } from "../output-path.js";

interface RetrievalHeadsArgs extends CommonArgs {
  corpus: string;
  checkpoint?: string;
  exact?: number;
  floor?: number;
  probes: number;
  length?: number;
  seed: number;
  write?: boolean;
  json?: string;
}

const wholeAtLeast = (flag: string, v: number | undefined, min: number): void => {
  if (v !== undefined && (!Number.isInteger(v) || v < min)) fail(`--${flag} ${v} must be a whole number ≥ ${min}`, `e.g. --${flag} ${Math.max(min, 16)}`);
};

export const retrievalHeadsCommand: CommandModule<object, RetrievalHeadsArgs> = {
  command: "retrieval-heads",
  describe: "Find the backbone's retrieval heads and split an exact-cache budget over layers by them (exactTokensPerLayer)",
  builder: (y) =>
    withModel(withBackend(y))
      .option("corpus", { type: "string", demandOption: true, describe: "prose (a .txt file or a folder) to hide calibration needles in; not your evaluation text" })
      .option("checkpoint", { type: "string", describe: "a trained module: its layout gives the budget (exactTokens per layer) and the cap (without it: the default layout's); with --write the split is stored in it" })
      .option("exact", { type: "number", describe: "exact-cache tokens per layer on average (the budget is this × layers; default: the checkpoint's exactTokens)" })
      .option("floor", { type: "number", describe: "tokens every layer keeps (default: an eighth of --exact)" })
      .option("probes", { type: "number", default: 16, describe: "calibration sequences (passkey and key-value needles, alternating)" })
      .option("length", { type: "number", describe: "tokens per calibration sequence (default: the backbone's trained context, at most 2048)" })
      .option("seed", { type: "number", default: 2026, describe: "seed of the calibration needles and haystacks" })
      .option("write", { type: "boolean", describe: "store the split in the checkpoint's layout (edgeinf layout shows it)" })
      .option("json", { type: "string", describe: "write scores and split to this JSON file" })
      .usage(
        "$0 retrieval-heads -m MODEL --corpus DIR [--checkpoint CKPT [--write]] [--exact N] [--floor N]\n\n" +
          "Hides passkey and key-value needles in --corpus text (within the trained context), runs the backbone's full attention, " +
          "and scores every head by the attention its copying rows put on the needle's value (retrieval heads, arXiv 2404.15574). " +
          "An EdgeInfinite layer's exact cache serves only that layer, so the budget goes to layers in proportion to their best " +
          "head's score, each keeping --floor (docs/edgeinfinite.md, \"Exact cache per layer\").",
      )
      .example("$0 retrieval-heads -m ../shared/models/edge-lm --corpus ../shared/corpora/gutenberg/train --exact 296", "scores and a split of 296 × 8 tokens")
      .example("$0 retrieval-heads -m ../shared/models/edge-lm --corpus ../shared/corpora/gutenberg/train --checkpoint modules/my-module --write", "store the split in a module's layout"),
  handler: async (args) => {
    wholeAtLeast("probes", args.probes, 1);
    wholeAtLeast("length", args.length, 32);
    wholeAtLeast("exact", args.exact, 0);
    wholeAtLeast("floor", args.floor, 0);
    if (!existsSync(args.corpus)) fail(`corpus ${args.corpus} does not exist`, "give a .txt file or a folder of them (e.g. ../shared/corpora/gutenberg/train)");
    if (args.write && args.checkpoint === undefined) fail("--write stores the split in a checkpoint and needs --checkpoint", "add --checkpoint DIR, or drop --write");
    if (args.json !== undefined) checkOutputPath(args.json, "--json");
    const dir = args.checkpoint !== undefined ? resolveCheckpointDir(args.checkpoint) : null; // one line if it does not exist
    const meta = dir ? readCheckpointMeta(dir) : null;
    const layout: EdgeInfiniteConfig = meta && dir ? runConfig(meta, dir) : makeEdgeInfiniteConfig();
    const exact = args.exact ?? (meta ? layout.exactTokens : undefined);
    if (args.write && !(exact !== undefined && exact > 0)) fail("the checkpoint runs without an exact cache, so there is no budget to split", "pass --exact N (tokens per layer on average)");
    const corpus = loadCorpus(args.corpus).texts;

    const { backbone, model } = await setup(args);
    if (meta) checkBackbone(meta, backbone, `checkpoint ${dir}`);
    const c = backbone.config;
    const length = args.length ?? Math.min(c.maxPositions, 2048);
    if (length > c.maxPositions) log(`warning: --length ${length} is past the trained context (${c.maxPositions}): the backbone does not retrieve there, so the scores mean little`);
    const probes = retrievalProbes({ tokenizer: backbone.tokenizer, corpus, length, count: args.probes, seed: args.seed });
    if (probes.length === 0) throw new EdgeInfError("no calibration sequence kept its needle's value tokens verbatim", "try another --seed or a longer --length");
    const progress = progressReporter("auto", probes.length, 0, process.stderr, { name: "retrieval-heads", unit: "probes" });
    const scores = retrievalScores(model, probes, (i) => progress.tick(`probe ${i + 1}`));
    progress.stop();
    model.dispose();

    const best = scores.map((heads) => Math.max(...heads));
    // A layer's exact span must leave RoPE inside the trained context (validateEdgeInfiniteConfig).
    const cap = c.maxPositions - localSpanTokens(layout, 0);
    const floor = args.floor ?? (exact !== undefined ? Math.floor(exact / 8) : 0);
    const total = exact !== undefined ? exact * c.numLayers : 0;
    const split = total > 0 ? allocateExactTokens(best, total, floor, cap) : null;

    console.log(`retrieval score per layer (attention of the copying rows on the needle's value; ${probes.length} probes of ${length} tokens, seed ${args.seed})`);
    console.log("| layer | best head | score | all heads |" + (split ? " exact tokens |" : ""));
    console.log("| ---: | ---: | ---: | --- |" + (split ? " ---: |" : ""));
    scores.forEach((heads, l) => {
      const h = heads.indexOf(best[l]!);
      console.log(`| ${l} | ${h} | ${best[l]!.toFixed(3)} | ${heads.map((s) => s.toFixed(3)).join(" ")} |` + (split ? ` ${split[l]} |` : ""));
    });
    if (split) {
      log(`exactTokensPerLayer: [${split.join(", ")}] (${exact} × ${c.numLayers} = ${total} tokens, floor ${floor}, cap ${cap})`);
      if (dir && args.write) {
        writeCheckpointLayout(dir, mergeLayout(meta!.inference, { exactTokensPerLayer: split }));
        log(`${dir}: layout set (exactTokensPerLayer); edgeinf layout ${shellQuote(dir)} shows it`);
      } else log(`to use it: edgeinf layout ${dir ? shellQuote(dir) : "CHECKPOINT"} --exact-per-layer ${split.join(",")}`);
    }
    if (args.json) {
      const out = { model: backbone.source.id, corpus: args.corpus, seed: args.seed, length, probes: probes.length, scores, layerScores: best, exactTokensPerLayer: split, floor, cap, exactTokens: exact ?? null };
      writeFileAtomic(args.json, JSON.stringify(out, null, 2) + "\n");
    }
  },
};

