// npm run bench:prefill [-- --model PATH --lengths 1024,4096,16384 --backend wasm --sink S --window W --segment L
//                          --budget-s 600]
// TTFT and peak KV bytes of EdgeInfinite vs full attention on the same backbone in the same run, with ratios, as a
// markdown table. Every read is asynchronous, so it also runs on webgpu (--backend webgpu).
//
// Routing: EdgeInfinite sends an input of at most sink + window tokens to the plain backbone (docs/edgeinfinite.md), so
// such a row would time full attention twice. By default sink and window are chosen so that every requested length
// is longer than sink + window (edge-lm at 1k/4k/16k: sink 64, window 512, segment 256); the "edgeinf path" column
// says what each row ran, and a routed row (explicit --window) says "routed (= full)" and gets no ratio.
//
// Time budget: full attention grows quadratically (16k tokens on one wasm core takes minutes). A cell whose estimate
// (quadratic for full, linear for EdgeInfinite, from the last measured length) would end past --budget-s is skipped
// and printed as "skipped (est. N s)"; its peak KV is then the exact size full attention would hold, marked "calc.".
import { initBackend, type BackendName } from "../src/backend/select.js";
import { loadBackbone } from "../src/loaders/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import { CachedSession } from "../src/cache/cached-session.js";
import { fullPolicy } from "../src/cache/full.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig, validateEdgeInfiniteConfig } from "../src/memory/config.js";
import { EdgeInfiniteSession } from "../src/memory/edgeinfinite.js";
import type { InferenceSession } from "../src/backbone/session.js";
import { readLogits } from "../src/backbone/generate.js";
import { arg, defaultModel, machineLine, oneLineErrors, table } from "./common.js";
import { fail } from "../src/util/errors.js";

const t0 = performance.now();
const elapsedS = () => (performance.now() - t0) / 1000;
const log = (l: string) => process.stderr.write(l + "\n");

const modelPath = arg("model", defaultModel());
const lengths = oneLineErrors(() => {
  const text = arg("lengths", "1024,4096,16384");
  const ns = text.split(",").map(Number);
  if (ns.some((n) => !Number.isInteger(n) || n < 2)) fail(`--lengths ${text}: token counts must be integers ≥ 2`, "e.g. --lengths 1024,4096,16384");
  return ns;
});
const budgetS = Number(arg("budget-s", "600"));
const backend = await initBackend(arg("backend", "auto") as BackendName | "auto", { log });
const backbone = await loadBackbone(modelPath);
const c = backbone.config;

/** Largest power of two ≤ x (x ≥ 1). */
const pow2Below = (x: number) => 2 ** Math.floor(Math.log2(Math.max(1, x)));
const shortest = Math.min(...lengths);
// Defaults keep sink + window below the shortest length, so no row is routed to the plain backbone.
const sink = Number(arg("sink", String(Math.min(64, pow2Below(shortest / 16)))));
const window = Number(arg("window", String(pow2Below(Math.min(1024, c.maxPositions / 2, shortest - sink - 1)))));
const segment = Number(arg("segment", String(Math.min(256, c.maxPositions / 4, window))));
const cfg = makeEdgeInfiniteConfig({ sinkTokens: sink, windowTokens: window, segmentLength: segment });
validateEdgeInfiniteConfig(cfg, c);
const m = LlamaModel.fromHost(c, backbone.weights);
const module = new MemoryGatingModule(c, cfg);
const kvPerToken = c.numLayers * 2 * c.numKvHeads * c.headDim * 4;

interface Measured {
  ttftMs: number;
  peakKvBytes: number;
  /** EdgeInfinite: "long" = memory path, "short" = routed to the plain backbone. */
  mode: string;
}

async function measure(make: () => InferenceSession, ids: number[]): Promise<Measured> {
  const s = make();
  try {
    const start = performance.now();
    // TTFT includes reading the logits back (as generate does); readLogits also fails on NaN or webgpu errors.
    await readLogits(await s.prefill(ids), `${s.method} prefill logits (${ids.length} tokens)`);
    const ttftMs = performance.now() - start;
    return { ttftMs, peakKvBytes: s.peakKvBytes(), mode: s instanceof EdgeInfiniteSession ? s.mode() : "full" };
  } finally {
    s.dispose();
  }
}

const ids = (n: number) => [c.bosTokenId, ...Array.from({ length: n - 1 }, (_, i) => 3 + ((i * 7919) % (c.vocabSize - 3)))];
const full = () => new CachedSession(m, fullPolicy());
const edge = () => new EdgeInfiniteSession(m, module);
// Warm-up of both paths (kernel compilation, allocation); the EdgeInfinite one goes through memory.
await measure(full, ids(64));
await measure(edge, ids(cfg.routingThreshold + cfg.segmentLength));

const mib = (b: number) => (b / 2 ** 20).toFixed(2);
const secs = (s: number) => s.toFixed(s < 10 ? 1 : 0);
/** Why a cell was skipped: its estimate, or no estimate (nothing measured yet) with the budget already spent. */
const skipped = (est: number | null) => (est === null ? "skipped (budget spent)" : `skipped (est. ${secs(est)} s)`);
const rows: (string | number)[][] = [];
let lastFull: { n: number; ms: number } | null = null;
let lastEdge: { n: number; ms: number } | null = null;
for (const n of lengths) {
  const routed = n <= cfg.routingThreshold;
  const edgeEst = lastEdge ? (lastEdge.ms / 1000) * (n / lastEdge.n) : null;
  let e: Measured | null = null;
  let edgeSkip = "";
  if (elapsedS() + (edgeEst ?? 0) > budgetS) edgeSkip = skipped(edgeEst);
  else {
    e = await measure(edge, ids(n));
    lastEdge = { n, ms: e.ttftMs };
    log(`${n} tokens: edgeinfinite ${e.ttftMs.toFixed(0)} ms (${e.mode === "long" ? "memory" : "routed"})`);
  }
  const fullEst = lastFull ? (lastFull.ms / 1000) * (n / lastFull.n) ** 2 : null;
  let f: Measured | null = null;
  let fullSkip = "";
  if (elapsedS() + (fullEst ?? 0) > budgetS) {
    fullSkip = skipped(fullEst);
    log(`${n} tokens: full attention ${fullSkip}, ${secs(elapsedS())} s of --budget-s ${budgetS} used`);
  } else {
    f = await measure(full, ids(n));
    lastFull = { n, ms: f.ttftMs };
    log(`${n} tokens: full ${f.ttftMs.toFixed(0)} ms`);
  }
  // Routed rows ran the plain backbone in both columns: no ratio.
  const path = e ? (e.mode === "long" ? "memory" : "routed (= full)") : routed ? "routed (= full)" : "memory";
  const sameComputation = path !== "memory";
  const fullKv = f ? mib(f.peakKvBytes) : `${mib(n * kvPerToken)} calc.`;
  rows.push([
    n,
    path,
    f ? f.ttftMs : fullSkip,
    fullKv,
    e ? e.ttftMs : edgeSkip,
    e ? mib(e.peakKvBytes) : "–",
    sameComputation || !e || !f ? "–" : `${(f.ttftMs / e.ttftMs).toFixed(2)}x`,
    sameComputation || !e ? "–" : `${((f?.peakKvBytes ?? n * kvPerToken) / e.peakKvBytes).toFixed(1)}x`,
  ]);
}
console.log(`\nbackbone ${backbone.source.id} (trained context ${c.maxPositions}); backend ${backend.name}; ${machineLine()}; budget ${budgetS} s, took ${secs(elapsedS())} s`);
console.log(
  `edgeinfinite: sink ${cfg.sinkTokens}, window ${cfg.windowTokens}, segment ${cfg.segmentLength}, routing threshold ${cfg.routingThreshold} ` +
    `(untrained module: timing and memory do not depend on its weights)`,
);
console.log(
  `peak KV: float32 keys + values (+ EdgeInfinite's memory) at the worst moment of prefill (session.peakKvBytes()); full attention past ` +
    `${c.maxPositions} tokens is out of the trained context and measures time only\n`,
);
console.log(
  table(["tokens", "edgeinf path", "full TTFT ms", "full peak KV MiB", "edgeinf TTFT ms", "edgeinf peak KV MiB", "TTFT full/edgeinf", "KV full/edgeinf"], rows),
);
module.dispose();
m.dispose();
