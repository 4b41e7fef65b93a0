// Held-out language-modelling loss of a trained EdgeInfinite module against the same module with its gate forced
// to 0 (sink + exact cache + window attention only, memory ignored) and against full attention: issue 10's "held-out
// LM loss not worse than the g = 0 module". Windows of --lengths tokens (+1 target) from every held-out book, at
// --windows evenly spaced offsets per book; mean NLL per target token.
//
//   npm run bench:heldout -- --checkpoint modules/edge-lm-retrieval-lm [--sink 32 --exact 152 --window 256 --segment 256] [--spread 0,0] \
//     [--exact-per-layer 39,41,39,136,553,52,258,1250 | none] \
//     [--lengths 2048,4096] [--windows 3] [--corpus ../shared/corpora/gutenberg/heldout] [--backend wasm]
// Without layout flags the module runs at its checkpoint's layout (`edgeinf layout`; else the trained one).
import { initBackend, type BackendName } from "../src/backend/select.js";
import { loadBackbone } from "../src/loaders/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import { windowedNll } from "../src/backbone/nll.js";
import { edgeInfiniteNllBatch } from "../src/memory/edgeinfinite.js";
import { prepareMethod } from "../src/eval/methods.js";
import { loadCorpus } from "../src/datasets/manifest.js";
import { fail } from "../src/util/errors.js";
import { parseExactPerLayer } from "../src/cli/commands/layout.js";
import { arg, defaultModel, machineLine, oneLineErrors, repoRoot, table } from "./common.js";
import { resolve } from "node:path";

const log = (line: string) => process.stderr.write(line + "\n");
const modelPath = arg("model", defaultModel());
const checkpoint = arg("checkpoint", resolve(repoRoot, "modules/edge-lm-retrieval-lm"));
const corpusPath = arg("corpus", resolve(repoRoot, "../shared/corpora/gutenberg/heldout"));
const lengths = arg("lengths", "2048,4096").split(",").map(Number);
const windows = Number(arg("windows", "3"));
const backend = await initBackend(arg("backend", "auto") as BackendName | "auto", { log });
const backbone = await loadBackbone(modelPath);
const model = LlamaModel.fromHost(backbone.config, backbone.weights);
// The module as `edgeinf eval` loads it (checkpoint, backbone check, layout overrides, routing threshold).
const layout = {
  ...(process.argv.includes("--sink") ? { sinkTokens: Number(arg("sink", "")) } : {}),
  ...(process.argv.includes("--window") ? { windowTokens: Number(arg("window", "")) } : {}),
  ...(process.argv.includes("--exact") ? { exactTokens: Number(arg("exact", "")) } : {}),
  ...(process.argv.includes("--segment") ? { segmentLength: Number(arg("segment", "")) } : {}),
  ...(process.argv.includes("--spread") ? { exactSpread: arg("spread", "").split(",").map(Number) } : {}),
  ...(process.argv.includes("--exact-per-layer") ? { exactTokensPerLayer: oneLineErrors(() => parseExactPerLayer(arg("exact-per-layer", ""))) } : {}),
};
const prepared = oneLineErrors(() => prepareMethod({ name: "edgeinfinite", checkpoint, ...layout }, backbone));
const module = prepared.module!;
const cfg = module.config;
const dir = prepared.checkpointDir;

const books = loadCorpus(corpusPath).texts.map((t) => backbone.tokenizer.encode(t, { bos: false }));
const bos = backbone.config.bosTokenId;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const exactText = cfg.exactTokensPerLayer ? `[${cfg.exactTokensPerLayer.join(", ")}] per layer` : String(cfg.exactTokens);
log(`${machineLine()}; backend ${backend.name}; module ${dir} (sink ${cfg.sinkTokens}, exact ${exactText}, spread [${cfg.exactSpread.join(", ")}], window ${cfg.windowTokens}, segment ${cfg.segmentLength})`);

const rows: (string | number)[][] = [];
for (const n of lengths) {
  // every window: BOS + n tokens of a book (n targets), at `windows` evenly spaced offsets
  const texts: number[][] = [];
  for (const ids of books) {
    if (ids.length < n + 1) oneLineErrors(() => fail(`a held-out book has ${ids.length} tokens, fewer than --lengths ${n}`, "use shorter lengths"));
    for (let w = 0; w < windows; w++) {
      const start = Math.floor(((ids.length - n) * w) / windows);
      texts.push([bos, ...ids.slice(start, start + n)]);
    }
  }
  const trained = (await edgeInfiniteNllBatch(model, module, texts)).map(mean);
  const closed = (await edgeInfiniteNllBatch(model, module, texts, { forceGate: 0 })).map(mean);
  // full attention over the whole window (one window of n + 1 tokens), inside the trained context only
  const full = n <= backbone.config.maxPositions ? await Promise.all(texts.map(async (t) => mean(await windowedNll(model, t, t.length, bos)))) : null;
  const diffs = trained.map((t, i) => t - closed[i]!);
  rows.push([n, texts.length, mean(trained).toFixed(4), mean(closed).toFixed(4), `${(100 * (mean(trained) / mean(closed) - 1)).toFixed(2)} %`,
    `${Math.min(...diffs).toFixed(3)} … ${Math.max(...diffs).toFixed(3)}`, diffs.filter((d) => d < 0).length, full ? mean(full).toFixed(4) : "-"]);
  log(`length ${n} done`);
}
console.log(`held-out NLL per token (${books.length} books × ${windows} windows; ${corpusPath})\n`);
console.log(table(["tokens", "windows", "trained", "g = 0", "trained vs g = 0", "per-window diff", "windows better", "full attention"], rows));
prepared.dispose();
model.dispose();
