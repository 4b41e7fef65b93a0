// npm run bench:train [-- --model PATH --seq 512 --segment 128 --window 252 --tbptt 2 --backends wasm,cpu --steps 2]
// Tokens/s of one EdgeInfinite training step (forward + backward through k segments + AdamW) on each backend,
// and the same step in PyTorch CPU (bench/torch_llama.py) in the same run where python3-torch is installed.
// Every read is asynchronous, so it also runs on webgpu (--backends webgpu,wasm).
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { loadBackbone } from "../src/loaders/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig, validateEdgeInfiniteConfig } from "../src/memory/config.js";
import { sequenceGradients } from "../src/training/tbptt.js";
import { AdamW } from "../src/training/adamw.js";
import { assertFiniteAsync } from "../src/backend/webgpu-limits.js";
import { arg, backendsToRun, defaultModel, machineLine, ratio, table, torchBench } from "./common.js";

const model = arg("model", defaultModel());
const seq = Number(arg("seq", "512"));
const segment = Number(arg("segment", "128"));
const window = Number(arg("window", "252"));
const sink = Number(arg("sink", "4"));
const tbptt = Number(arg("tbptt", "2"));
const steps = Number(arg("steps", "2"));
const backbone = await loadBackbone(model);
const c = backbone.config;
const cfg = makeEdgeInfiniteConfig({ sinkTokens: sink, windowTokens: window, segmentLength: segment });
validateEdgeInfiniteConfig(cfg, c);
const ids = Array.from({ length: seq + 1 }, (_, i) => (i * 11 + 5) % c.vocabSize);
const torch = torchBench([model, "--task", "train", "--seq", String(seq), "--segment", String(segment), "--sink", String(sink), "--window", String(window), "--tbptt", String(tbptt), "--steps", String(steps)]);
const rows: (string | number)[][] = [];
for (const b of await backendsToRun()) {
  await initBackend(b, { log: () => {} });
  const m = LlamaModel.fromHost(c, backbone.weights);
  const module = new MemoryGatingModule(c, cfg);
  const opt = new AdamW({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
  let loss = NaN;
  const step = async () => {
    const r = await sequenceGradients(m, module, ids, tbptt);
    loss = r.loss;
    opt.apply(module.trainableVariables(), r.grads, 1e-3);
    tf.dispose([...r.grads.values()]);
    // The step is done when the updated variables are (asynchronous backends queue the work): wait for one.
    await [...module.trainableVariables().values()][0]!.data();
    await assertFiniteAsync(loss, `training loss on ${b}`);
  };
  await step(); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await step();
  const stepS = (performance.now() - t0) / 1000 / steps;
  rows.push([b, stepS, seq / stepS, ratio(seq / stepS, Number(torch?.train_tok_s))]);
  opt.dispose();
  module.dispose();
  m.dispose();
  process.stderr.write(`${b}: ${stepS.toFixed(2)} s/step, loss ${loss.toFixed(4)}\n`);
}
if (torch) rows.push([`torch ${torch.torch} (${torch.threads} threads)`, Number(torch.step_s), Number(torch.train_tok_s), "1.00x"]);
console.log(`\nbackbone ${backbone.source.id}; sequence ${seq} tokens, segment ${segment}, sink ${sink}, window ${window}, TBPTT k=${tbptt}; ${machineLine()}\n`);
console.log(table(["backend", "s/step", "train tok/s", "vs torch"], rows));
