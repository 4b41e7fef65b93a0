import type { CommandModule } from "yargs";
import { existsSync } from "node:fs";
import { LAYOUT_KEYS, makeEdgeInfiniteConfig, mergeLayout, type Layout } from "../../memory/config.js";
import { readCheckpointMeta, resolveCheckpointDir, runConfig, writeCheckpointLayout } from "../../training/checkpoint.js";
import { fail } from "../../util/errors.js";
import { log } from "../common.js";

interface LayoutArgs {
  checkpoint: string;
  sink?: string;
  window?: string;
  segment?: string;
  exact?: string;
  spread?: string;
  exactPerLayer?: string;
  routing?: string;
  clear?: boolean;
  json?: boolean;
}

/** The flags, each with the layout key it sets and the smallest value it takes. */
const FLAGS = [
  { flag: "sink", key: "sinkTokens", min: 0, describe: "sink tokens per layer" },
  { flag: "window", key: "windowTokens", min: 1, describe: "window tokens per layer" },
  { flag: "segment", key: "segmentLength", min: 1, describe: "tokens per segment (prefill step)" },
  { flag: "exact", key: "exactTokens", min: 0, describe: "exact-cache tokens per layer and KV head" },
  { flag: "routing", key: "routingThreshold", min: 0, describe: "inputs up to this many tokens bypass memory (default sink + window)" },
] as const;

/** A whole number ≥ min from a flag's text, or one error line naming the flag. */
function wholeNumber(flag: string, raw: string, min: number): number {
  const text = String(raw).trim();
  if (!/^\d+$/.test(text) || Number(text) < min) fail(`--${flag} ${text || "(empty)"} is not a whole number ≥ ${min}`, `e.g. --${flag} ${Math.max(min, 16)}`);
  return Number(text);
}

/** --spread "B,A": neighbours before and after each badly reconstructed token. */
export function parseSpread(raw: string): [number, number] {
  const m = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(String(raw));
  if (!m) fail(`--spread ${String(raw)} is not two whole numbers`, "pass before,after, e.g. --spread 1,1 (0,0 for none)");
  return [Number(m[1]), Number(m[2])];
}

/** --exact-per-layer "A,B,…": exact-cache tokens for each layer ("none" clears it: exactTokens in every layer). */
export function parseExactPerLayer(raw: string): number[] | null {
  const text = String(raw).trim();
  if (text === "none") return null;
  const parts = text.split(",").map((p) => p.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) fail(`--exact-per-layer ${text || "(empty)"} is not whole numbers separated by commas`, "pass one number per layer, e.g. --exact-per-layer 40,40,40,160,220,40,170,1650 (or none)");
  return parts.map(Number);
}

/** The layout keys the flags set (only those given). */
export function layoutFromFlags(args: Omit<LayoutArgs, "checkpoint" | "clear" | "json">): Layout {
  const layout: Layout = {};
  for (const f of FLAGS) {
    const raw = args[f.flag];
    if (raw !== undefined) layout[f.key] = wholeNumber(f.flag, raw, f.min);
  }
  if (args.spread !== undefined) layout.exactSpread = parseSpread(args.spread);
  if (args.exactPerLayer !== undefined) layout.exactTokensPerLayer = parseExactPerLayer(args.exactPerLayer);
  return layout;
}

const show = (layout: Partial<Layout>): string =>
  LAYOUT_KEYS.filter((k) => layout[k] !== undefined)
    .map((k) => `${k} ${JSON.stringify(layout[k])}`)
    .join(", ") || "(none)";

export const layoutCommand: CommandModule<object, LayoutArgs> = {
  command: "layout <checkpoint>",
  describe: "Show or set the layout (sink, window, segment, exact cache) a trained module runs at by default",
  builder: (y) =>
    y
      .positional("checkpoint", { type: "string", demandOption: true, describe: "a step folder or a training output folder (its latest step)" })
      .option("sink", { type: "string", describe: FLAGS[0].describe })
      .option("window", { type: "string", describe: FLAGS[1].describe })
      .option("segment", { type: "string", describe: FLAGS[2].describe })
      .option("exact", { type: "string", describe: FLAGS[3].describe })
      .option("spread", { type: "string", describe: "neighbours kept with each badly reconstructed token, before,after (e.g. 1,1)" })
      .option("exact-per-layer", { type: "string", describe: "exact-cache tokens for each layer, A,B,… (over --exact; none: --exact in every layer); edgeinf retrieval-heads suggests a split" })
      .option("routing", { type: "string", describe: FLAGS[4].describe })
      .option("clear", { type: "boolean", describe: "remove the checkpoint's layout: it runs at the one it was trained at" })
      .option("json", { type: "boolean", describe: "print JSON" })
      .usage(
        "$0 layout <checkpoint> [--sink N] [--window N] [--segment N] [--exact N] [--spread B,A] [--exact-per-layer A,B,…] [--routing N] [--clear]\n\n" +
          "A module's trained maps do not depend on where tokens sit, so it can run at another layout than it was trained at " +
          "(docs/edgeinfinite.md, \"Layout\"). The flags given are stored in the checkpoint's checkpoint.json as its `inference` " +
          "block, over any earlier one; eval, generate and ppl then use it, and suite keys or --method-option still override it. " +
          "Training and --resume keep the trained layout. Without flags it prints both.",
      )
      .example("$0 layout modules/edge-lm-retrieval-lm", "the trained layout and the one eval/generate/ppl use")
      .example("$0 layout checkpoints/my-run --sink 16 --window 128 --segment 128 --exact 296 --spread 1,1", "run it at a larger exact cache"),
  handler: (args) => {
    if (!existsSync(args.checkpoint)) fail(`checkpoint ${args.checkpoint} does not exist`, "give a folder written by edgeinf train (or a step folder in it)");
    const given = layoutFromFlags(args);
    if (args.clear && Object.keys(given).length > 0) fail("--clear removes the layout and takes no other flag", "run it alone, then set the layout you want");
    const dir = resolveCheckpointDir(args.checkpoint);
    let meta = readCheckpointMeta(dir);
    if (args.clear || Object.keys(given).length > 0) {
      // --exact alone means that many in every layer: it replaces a stored per-layer split (mergeLayout).
      const layout = args.clear ? null : mergeLayout(meta.inference, given);
      meta = writeCheckpointLayout(dir, layout).meta;
      log(args.clear ? `${dir}: layout removed` : `${dir}: layout set`);
    }
    const pick = (c: Layout): Layout => Object.fromEntries(LAYOUT_KEYS.map((k) => [k, c[k]]));
    const report = { checkpoint: dir, trained: pick(makeEdgeInfiniteConfig(meta.edgeinfinite)), inference: meta.inference ?? null, runsAt: pick(runConfig(meta, dir)) };
    if (args.json) console.log(JSON.stringify(report, null, 2));
    else {
      console.log(`checkpoint  ${dir}`);
      console.log(`trained     ${show(report.trained)}`);
      console.log(`layout      ${meta.inference ? show(meta.inference) : "(none: runs at the trained layout)"}`);
      console.log(`runs at     ${show(report.runsAt)}`);
    }
  },
};
