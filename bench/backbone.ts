// npm run bench:backbone [-- --model PATH --prefill 512 --decode 32 --backends wasm,cpu --methods full,h2o --budget 512 --repeats 3]
// Prefill and decode tokens/s of the frozen backbone on each available backend, with PyTorch CPU on the same
// weights in the same run where python3-torch is installed, and a matmul GFLOP/s line as the machine's ceiling.
// Methods: full KV and H2O keeping --budget tokens (evicting after prefill and at every decode step); PyTorch runs
// full KV only, so H2O's ratio is against PyTorch's full-KV decode.
// --repeats R (default 3): each backend's methods and PyTorch run R times, alternated (PyTorch, then ours), and the
// table gives medians; "vs torch" is the median of the R same-repeat ratios, with their range, because this
// machine's speed drifts by ±20 % between runs of a few seconds. --torch-threads 1,2 (default): PyTorch runs at each
// thread count and every ratio is taken against the faster of them in that repeat (on the 2-core machine one
// thread is often faster: its products are too small to split).
// --methods …,edgeinfinite --checkpoint DIR [--method-option KEY=VALUE …]: the EdgeInfinite module too (its layout
// from the checkpoint, or from --method-option as `edgeinf generate` takes it), against PyTorch's full KV as well.
// Every read is asynchronous, so it also runs on webgpu (--backends webgpu,wasm).
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { measureMatmulGflops } from "../src/backend/matmul-gflops.js";
import { loadBackbone } from "../src/loaders/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import { CachedSession } from "../src/cache/cached-session.js";
import { fullPolicy } from "../src/cache/full.js";
import { h2oPolicy } from "../src/cache/h2o.js";
import type { CachePolicy } from "../src/cache/policy.js";
import type { InferenceSession } from "../src/backbone/session.js";
import { prepareMethod, createSession, type PreparedMethod } from "../src/eval/methods.js";
import { methodOptionFlags } from "../src/cli/commands/generate.js";
import { fail } from "../src/util/errors.js";
import { generate } from "../src/backbone/generate.js";
import { median } from "../src/eval/measure.js";
import { arg, backendsToRun, defaultModel, intList, machineLine, oneLineErrors, table, torchBench } from "./common.js";

const model = arg("model", defaultModel());
const prefill = Number(arg("prefill", "512"));
const decode = Number(arg("decode", "32"));
const budgetTokens = Number(arg("budget", "512"));
const repeats = Number(arg("repeats", "3"));
const torchThreads = oneLineErrors(() => intList("torch-threads", "1,2"));
const methods = oneLineErrors(() => {
  const names = arg("methods", "full,h2o").split(",").map((m) => m.trim());
  for (const m of names) if (m !== "full" && m !== "h2o" && m !== "edgeinfinite") fail(`--methods ${m}: bench:backbone runs full, h2o and edgeinfinite`, "e.g. --methods full,h2o");
  if (names.includes("edgeinfinite") && arg("checkpoint", "") === "") fail("--methods edgeinfinite needs --checkpoint DIR (a trained module)", "e.g. --checkpoint modules/edge-lm-retrieval-lm");
  if (!Number.isInteger(repeats) || repeats < 1) fail(`--repeats ${arg("repeats", "3")} is not a count`, "use a whole number ≥ 1, e.g. --repeats 3");
  return names;
});
const policyFor = (method: string): CachePolicy => (method === "h2o" ? h2oPolicy({ budgetTokens }) : fullPolicy());
/** Every value after a --method-option flag (it may be repeated). */
const methodOptions = process.argv.flatMap((a, i) => (a === "--method-option" && process.argv[i + 1] !== undefined ? [process.argv[i + 1]!] : []));
const edgeSpec = oneLineErrors(() => ({ name: "edgeinfinite", checkpoint: arg("checkpoint", ""), ...methodOptionFlags(methodOptions) }));
const backbone = await loadBackbone(model);
const ids = [backbone.config.bosTokenId, ...Array.from({ length: prefill - 1 }, (_, i) => 3 + ((i * 7919) % (backbone.config.vocabSize - 3)))];
const range = (xs: number[]): string => (xs.length > 1 ? `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}x` : "");
const torchArgs = [model, "--task", "backbone", "--prefill", String(prefill), "--decode", String(decode)];
interface Run {
  ttftMs: number;
  prefillTokS: number;
  decodeTokS: number;
}
const rows: (string | number)[][] = [];
const gflops: (string | number)[][] = [];
/** PyTorch's runs per thread count. */
const torchRuns = new Map<number, Run[]>(torchThreads.map((t) => [t, []]));
let torchVersion = "";
/** One PyTorch run per thread count; returns the fastest (by decode tok/s and, separately, prefill tok/s). */
const runTorch = (): { decodeTokS: number; prefillTokS: number } | null => {
  let bestDecode = 0;
  let bestPrefill = 0;
  for (const threads of torchThreads) {
    const t = torchBench([...torchArgs, "--threads", String(threads)]);
    if (t === null) return null;
    torchVersion = String(t.torch);
    const run = { ttftMs: Number(t.ttft_ms), prefillTokS: Number(t.prefill_tok_s), decodeTokS: Number(t.decode_tok_s) };
    torchRuns.get(threads)!.push(run);
    bestDecode = Math.max(bestDecode, run.decodeTokS);
    bestPrefill = Math.max(bestPrefill, run.prefillTokS);
  }
  return { decodeTokS: bestDecode, prefillTokS: bestPrefill };
};
const torchMm = torchThreads
  .map((threads) => torchBench(["-", "--task", "matmul", "--threads", String(threads)]))
  .reduce<Record<string, number | string> | null>((best, r) => (r !== null && (best === null || Number(r.matmul_gflops) > Number(best.matmul_gflops)) ? r : best), null);
for (const b of await backendsToRun()) {
  await initBackend(b, { log: () => {} });
  const m = LlamaModel.fromHost(backbone.config, backbone.weights);
  // warm-up (kernel compilation, allocation)
  const w = new CachedSession(m, fullPolicy());
  await generate(w, ids.slice(0, 16), { maxNewTokens: 2, temperature: 0 });
  w.dispose();
  const ours = new Map<string, { runs: Run[]; decodeRatios: number[]; prefillRatios: number[] }>(methods.map((x) => [x, { runs: [], decodeRatios: [], prefillRatios: [] }]));
  const edge: PreparedMethod | null = methods.includes("edgeinfinite") ? oneLineErrors(() => prepareMethod(edgeSpec, backbone)) : null;
  const sessionFor = (method: string): InferenceSession =>
    method === "edgeinfinite" ? createSession(edge!, { model: m, backbone, promptTokens: ids.length }) : new CachedSession(m, policyFor(method));
  for (let r = 0; r < repeats; r++) {
    const torch = runTorch();
    for (const method of methods) {
      const s = sessionFor(method);
      const g = await generate(s, ids, { maxNewTokens: decode + 1, temperature: 0 });
      s.dispose();
      const entry = ours.get(method)!;
      entry.runs.push({ ttftMs: g.ttftMs, prefillTokS: g.prefillTokensPerSecond, decodeTokS: g.decodeTokensPerSecond });
      if (torch !== null) {
        entry.decodeRatios.push(g.decodeTokensPerSecond / torch.decodeTokS);
        entry.prefillRatios.push(g.prefillTokensPerSecond / torch.prefillTokS);
      }
    }
  }
  for (const [method, e] of ours) {
    const label = method === "h2o" ? `h2o ${budgetTokens}` : method === "edgeinfinite" ? `edgeinfinite (${edge!.edgeinfinite!.sinkTokens}+${edge!.edgeinfinite!.exactTokens}+${edge!.edgeinfinite!.windowTokens})` : "full";
    const ratioCell = (xs: number[]): string => (xs.length === 0 ? "n/a" : `${median(xs).toFixed(2)}x${xs.length > 1 ? ` (${range(xs)})` : ""}`);
    rows.push([b, label, prefill, median(e.runs.map((x) => x.ttftMs)), median(e.runs.map((x) => x.prefillTokS)), median(e.runs.map((x) => x.decodeTokS)), ratioCell(e.prefillRatios), ratioCell(e.decodeRatios)]);
  }
  edge?.dispose();
  m.dispose();
  gflops.push([b, await measureMatmulGflops(512, 5)]);
  tf.disposeVariables();
}
for (const [threads, runs] of torchRuns) {
  if (runs.length === 0) continue;
  rows.push([`torch ${torchVersion} (${threads} thread${threads === 1 ? "" : "s"})`, "full", prefill, median(runs.map((x) => x.ttftMs)), median(runs.map((x) => x.prefillTokS)), median(runs.map((x) => x.decodeTokS)), "", ""]);
}
if (torchMm) gflops.push([`torch ${torchMm.torch} (${torchMm.threads} thread${Number(torchMm.threads) === 1 ? "" : "s"}, the faster)`, Number(torchMm.matmul_gflops)]);
console.log(`\nbackbone ${backbone.source.id} (${model}); ${machineLine()}; medians of ${repeats} alternated runs\n`);
console.log(table(["backend", "method", "prompt tokens", "TTFT ms", "prefill tok/s", "decode tok/s", "prefill vs best torch full (range)", "decode vs best torch full (range)"], rows));
console.log("\n" + table(["backend", "512³ matmul GFLOP/s"], gflops));
if ([...torchRuns.values()].every((r) => r.length === 0)) console.log("\n(python3-torch not installed: apt-get install python3-torch libopenblas0-pthread for the PyTorch column)");
