// npm run bench:train [-- --model PATH --seq 1024,2048 --batch 1,4,16 --workers 1,2 --backends wasm,cpu
//                        --segment 128 --window 252 --sink 4 --tbptt 2 --steps 1]
// Module training tokens/s: one optimiser step = `batch` sequences (micro-batches, gradients summed in order) +
// AdamW, for each sequence length, batch and worker count on each backend. 1 worker is the in-process loop
// (stepGradients, what train() runs); more workers run parallelGradients on a WorkerPool (src/parallel), each worker
// with its own backend. The pure-JS cpu backend is slow: it gets one short row (first sequence length, batch 1,
// 1 worker). PyTorch CPU (bench/torch_llama.py, Debian's python3-torch) runs the same step for every sequence length
// and batch in the same run, where it is installed. Every read is asynchronous, so it also runs on webgpu.
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { loadBackbone } from "../src/loaders/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig, validateEdgeInfiniteConfig } from "../src/memory/config.js";
import { AdamW } from "../src/training/adamw.js";
import { assertFiniteAsync } from "../src/util/finite.js";
import { defaultWorkerCount, checkWorkerCount, WorkerPool } from "../src/parallel/pool.js";
import { parallelGradients, stepGradients, type StepGradients } from "../src/parallel/gradients.js";
import type { WireSequence } from "../src/parallel/protocol.js";
import { fail } from "../src/util/errors.js";
import { arg, backendsToRun, defaultModel, machineLine, oneLineErrors, ratio, table, torchBench } from "./common.js";

/** `--name 1,4,16` → [1, 4, 16], each a positive integer (one-line error otherwise). */
function intList(name: string, fallback: string): number[] {
  const values = arg(name, fallback).split(",").map((v) => Number(v.trim()));
  for (const v of values) if (!Number.isInteger(v) || v < 1) fail(`--${name} ${arg(name, fallback)}: every entry must be a positive integer`, `e.g. --${name} ${fallback}`);
  return values;
}

const cores = defaultWorkerCount();
const settings = oneLineErrors(() => {
  const workers = intList("workers", cores > 1 ? `1,${cores}` : "1");
  for (const w of workers) checkWorkerCount(w, "--workers");
  return { seqs: intList("seq", "1024,2048"), batches: intList("batch", "1,4,16"), workers, steps: intList("steps", "1")[0]! };
});
const model = arg("model", defaultModel());
const segment = Number(arg("segment", "128"));
const window = Number(arg("window", "252"));
const sink = Number(arg("sink", "4"));
const tbptt = Number(arg("tbptt", "2"));
const backbone = await loadBackbone(model);
const c = backbone.config;
const cfg = makeEdgeInfiniteConfig({ sinkTokens: sink, windowTokens: window, segmentLength: segment });
oneLineErrors(() => validateEdgeInfiniteConfig(cfg, c));

/** Micro-batch b of a step: the same ids bench/torch_llama.py trains on. */
const sequencesOf = (seq: number, batch: number): WireSequence[] =>
  Array.from({ length: batch }, (_, b) => ({ ids: Array.from({ length: seq + 1 }, (_, i) => (i * 11 + 5 + 97 * b) % c.vocabSize) }));

interface Row {
  backend: string;
  workers: number;
  seq: number;
  batch: number;
  stepS: number;
  tokS: number;
}

const torch = new Map<string, Record<string, number | string>>();
for (const seq of settings.seqs) {
  for (const batch of settings.batches) {
    const common = ["--seq", String(seq), "--segment", String(segment), "--sink", String(sink), "--window", String(window), "--tbptt", String(tbptt)];
    const r = torchBench([model, "--task", "train", ...common, "--steps", String(settings.steps), "--batch", String(batch)]);
    if (r) torch.set(`${seq}/${batch}`, r);
  }
}

const rows: Row[] = [];
for (const b of await backendsToRun()) {
  await initBackend(b, { log: () => {} });
  const m = LlamaModel.fromHost(c, backbone.weights);
  // The cpu backend is pure JS (minutes per step at these sizes): one short row.
  const plan = b === "cpu" ? [{ workers: 1, seq: settings.seqs[0]!, batch: 1 }] : settings.workers.flatMap((workers) => settings.seqs.flatMap((seq) => settings.batches.map((batch) => ({ workers, seq, batch }))));
  const pools = new Map<number, WorkerPool>();
  try {
    for (const { workers, seq, batch } of plan) {
      let pool = pools.get(workers);
      if (workers > 1 && pool === undefined) {
        pool = new WorkerPool({ workers, backend: b, backbone: model });
        pools.set(workers, pool);
        await pool.ready();
      }
      const module = new MemoryGatingModule(c, cfg);
      const opt = new AdamW({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
      const gradients = (seqs: WireSequence[]): Promise<StepGradients> =>
        pool !== undefined ? parallelGradients(pool, module, seqs, { tbpttSegments: tbptt }) : stepGradients(m, module, seqs, { tbpttSegments: tbptt });
      const step = async (seqs: WireSequence[]): Promise<number> => {
        const r = await gradients(seqs);
        opt.apply(module.trainableVariables(), r.grads, 1e-3);
        tf.dispose([...r.grads.values()]);
        // The step is done when the updated variables are (asynchronous backends queue the work): wait for one.
        await [...module.trainableVariables().values()][0]!.data();
        await assertFiniteAsync(r.loss, `training loss on ${b}`);
        return r.loss;
      };
      try {
        // Warm-up: one sequence per worker (every worker compiles its kernels), untimed.
        await step(sequencesOf(seq, Math.min(batch, workers)));
        const t0 = performance.now();
        let loss = NaN;
        for (let i = 0; i < settings.steps; i++) loss = await step(sequencesOf(seq, batch));
        const stepS = (performance.now() - t0) / 1000 / settings.steps;
        rows.push({ backend: b, workers, seq, batch, stepS, tokS: (seq * batch) / stepS });
        process.stderr.write(`${b} ×${workers} seq ${seq} batch ${batch}: ${stepS.toFixed(2)} s/step, loss ${loss.toFixed(4)}\n`);
      } finally {
        opt.dispose();
        module.dispose();
      }
    }
  } finally {
    for (const p of pools.values()) await p.close();
    m.dispose();
  }
}

const oneWorker = (r: Row) => rows.find((x) => x.backend === r.backend && x.workers === 1 && x.seq === r.seq && x.batch === r.batch)?.tokS;
const table1 = rows.map((r) => {
  const t = torch.get(`${r.seq}/${r.batch}`);
  return [r.backend, r.workers, r.seq, r.batch, r.stepS, r.tokS, ratio(r.tokS, oneWorker(r)), ratio(r.tokS, Number(t?.train_tok_s))];
});
for (const [key, t] of torch) {
  const [seq, batch] = key.split("/").map(Number);
  table1.push([`torch ${t.torch} (${t.threads} threads)`, "-", seq!, batch!, Number(t.step_s), Number(t.train_tok_s), "-", "1.00x"]);
}
console.log(
  `\nbackbone ${backbone.source.id}; segment ${segment}, sink ${sink}, window ${window}, TBPTT k=${tbptt}; ${settings.steps} timed step(s) after a warm-up; batch = sequences per optimiser step; ${machineLine()}\n`,
);
console.log(table(["backend", "workers", "seq", "batch", "s/step", "train tok/s", "vs 1 worker", "vs torch"], table1));
