// npm run bench:backbone [-- --model PATH --prefill 512 --decode 32 --backends wasm,cpu --methods full,h2o --budget 512]
// Prefill and decode tokens/s of the frozen backbone on each available backend, with PyTorch CPU on the same
// weights in the same run where python3-torch is installed, and a matmul GFLOP/s line as the machine's ceiling.
// Methods: full KV and H2O keeping --budget tokens (evicting after prefill and at every decode step); PyTorch runs
// full KV only, so H2O's ratio is against PyTorch's full-KV decode.
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
import { fail } from "../src/util/errors.js";
import { generate } from "../src/backbone/generate.js";
import { arg, backendsToRun, defaultModel, machineLine, oneLineErrors, ratio, table, torchBench } from "./common.js";

const model = arg("model", defaultModel());
const prefill = Number(arg("prefill", "512"));
const decode = Number(arg("decode", "32"));
const budgetTokens = Number(arg("budget", "512"));
const methods = oneLineErrors(() => {
  const names = arg("methods", "full,h2o").split(",").map((m) => m.trim());
  for (const m of names) if (m !== "full" && m !== "h2o") fail(`--methods ${m}: bench:backbone runs full and h2o`, "e.g. --methods full,h2o");
  return names;
});
const policyFor = (method: string): CachePolicy => (method === "h2o" ? h2oPolicy({ budgetTokens }) : fullPolicy());
const backbone = await loadBackbone(model);
const ids = [backbone.config.bosTokenId, ...Array.from({ length: prefill - 1 }, (_, i) => 3 + ((i * 7919) % (backbone.config.vocabSize - 3)))];
const rows: (string | number)[][] = [];
const gflops: (string | number)[][] = [];
const torch = torchBench([model, "--task", "backbone", "--prefill", String(prefill), "--decode", String(decode)]);
const torchMm = torchBench(["-", "--task", "matmul"]);
for (const b of await backendsToRun()) {
  await initBackend(b, { log: () => {} });
  const m = LlamaModel.fromHost(backbone.config, backbone.weights);
  // warm-up (kernel compilation, allocation)
  const w = new CachedSession(m, fullPolicy());
  await generate(w, ids.slice(0, 16), { maxNewTokens: 2, temperature: 0 });
  w.dispose();
  for (const method of methods) {
    const s = new CachedSession(m, policyFor(method));
    const r = await generate(s, ids, { maxNewTokens: decode + 1, temperature: 0 });
    s.dispose();
    const label = method === "h2o" ? `h2o ${budgetTokens}` : "full";
    rows.push([b, label, prefill, r.ttftMs, r.prefillTokensPerSecond, r.decodeTokensPerSecond, ratio(r.prefillTokensPerSecond, Number(torch?.prefill_tok_s)), ratio(r.decodeTokensPerSecond, Number(torch?.decode_tok_s))]);
  }
  m.dispose();
  gflops.push([b, await measureMatmulGflops(512, 5)]);
  tf.disposeVariables();
}
if (torch) rows.push([`torch ${torch.torch} (${torch.threads} threads)`, "full", prefill, Number(torch.ttft_ms), Number(torch.prefill_tok_s), Number(torch.decode_tok_s), "1.00x", "1.00x"]);
if (torchMm) gflops.push([`torch ${torchMm.torch}`, Number(torchMm.matmul_gflops)]);
console.log(`\nbackbone ${backbone.source.id} (${model}); ${machineLine()}\n`);
console.log(table(["backend", "method", "prompt tokens", "TTFT ms", "prefill tok/s", "decode tok/s", "prefill vs torch full", "decode vs torch full"], rows));
console.log("\n" + table(["backend", "512³ matmul GFLOP/s"], gflops));
if (!torch) console.log("\n(python3-torch not installed: apt-get install python3-torch libopenblas0-pthread for the PyTorch column)");
