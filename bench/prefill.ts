// npm run bench:prefill [-- --model PATH --lengths 1024,4096,16384 --backend wasm --sink 64 --window 1024 --segment 256]
// TTFT and peak KV bytes of EdgeInfinite vs full attention on the same backbone in the same run, with ratios.
// Every read is asynchronous, so it also runs on webgpu (--backend webgpu).
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
import { arg, defaultModel, machineLine, table } from "./common.js";

const model = arg("model", defaultModel());
const lengths = arg("lengths", "1024,4096,16384").split(",").map(Number);
const backend = await initBackend(arg("backend", "auto") as BackendName | "auto", { log: (l) => process.stderr.write(l + "\n") });
const backbone = await loadBackbone(model);
const c = backbone.config;
const cfg = makeEdgeInfiniteConfig({
  sinkTokens: Number(arg("sink", "64")),
  windowTokens: Number(arg("window", String(Math.min(1024, c.maxPositions / 2)))),
  segmentLength: Number(arg("segment", String(Math.min(256, c.maxPositions / 4)))),
});
validateEdgeInfiniteConfig(cfg, c);
const m = LlamaModel.fromHost(c, backbone.weights);
const module = new MemoryGatingModule(c, cfg);

async function measure(make: () => InferenceSession, ids: number[]): Promise<{ ttftMs: number; peakKvBytes: number }> {
  const s = make();
  const t0 = performance.now();
  // TTFT includes reading the logits back (as generate does); readLogits also fails on NaN or webgpu errors.
  await readLogits(await s.prefill(ids), `${s.method} prefill logits (${ids.length} tokens)`);
  const ttftMs = performance.now() - t0;
  const peakKvBytes = s.peakKvBytes();
  s.dispose();
  return { ttftMs, peakKvBytes };
}

const ids = (n: number) => [c.bosTokenId, ...Array.from({ length: n - 1 }, (_, i) => 3 + ((i * 7919) % (c.vocabSize - 3)))];
await measure(() => new CachedSession(m, fullPolicy()), ids(64)); // warm-up
await measure(() => new EdgeInfiniteSession(m, module), ids(cfg.routingThreshold + 8));
const rows: (string | number)[][] = [];
const mib = (b: number) => (b / 2 ** 20).toFixed(2);
for (const n of lengths) {
  const full = await measure(() => new CachedSession(m, fullPolicy()), ids(n));
  const edge = await measure(() => new EdgeInfiniteSession(m, module), ids(n));
  rows.push([n, full.ttftMs, mib(full.peakKvBytes), edge.ttftMs, mib(edge.peakKvBytes), `${(full.ttftMs / edge.ttftMs).toFixed(2)}x`, `${(full.peakKvBytes / edge.peakKvBytes).toFixed(1)}x`]);
  process.stderr.write(`${n} tokens done\n`);
}
console.log(`\nbackbone ${backbone.source.id} (trained context ${c.maxPositions}); backend ${backend.name}; ${machineLine()}`);
console.log(`edgeinfinite: sink ${cfg.sinkTokens}, window ${cfg.windowTokens}, segment ${cfg.segmentLength} (untrained module: timing and memory do not depend on its weights)\n`);
console.log(table(["tokens", "full TTFT ms", "full peak KV MiB", "edgeinf TTFT ms", "edgeinf peak KV MiB", "TTFT full/edgeinf", "KV full/edgeinf"], rows));
