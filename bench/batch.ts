// npm run bench:batch [-- --model PATH --backend wasm --tokens 512 --batches 2,4,8 --reps 3
//                        --train-batches 2,4 --train-seq 512 --segment 128 --window 252 --sink 4 --tbptt 2]
// Prefill tokens/s of the frozen backbone on B rows: B = 1 looped (B separate forwards, what every caller did before
// the batch dimension) vs one batched forward (LlamaModel.forwardBatch) of the same B rows, in the same run, with
// the ratio. Each timing covers the forward and reading every row's last-token logits (what a prefill returns).
// Each repetition times looped then batched for every B; the table has the median of --reps.
// With --train-batches: the same comparison for the module's TBPTT gradients of B sequences (B sequenceGradients
// vs one sequenceGradientsBatch; untrained module, as bench:train), one timing each after an untimed batched run of
// that size.
import * as tf from "../src/tf.js";
import { initBackend, type BackendName } from "../src/backend/select.js";
import { loadBackbone } from "../src/loaders/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import { arg, defaultModel, machineLine, oneLineErrors, table } from "./common.js";
import { fail } from "../src/util/errors.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig, validateEdgeInfiniteConfig } from "../src/memory/config.js";
import { sequenceGradients, sequenceGradientsBatch } from "../src/training/tbptt.js";

const log = (l: string) => process.stderr.write(l + "\n");
const positiveInts = (name: string, fallback: string): number[] =>
  oneLineErrors(() => {
    const text = arg(name, fallback);
    const ns = text.split(",").map(Number);
    if (ns.some((n) => !Number.isInteger(n) || n < 1)) fail(`--${name} ${text}: must be integers ≥ 1`, `e.g. --${name} ${fallback}`);
    return ns;
  });

const modelPath = arg("model", defaultModel());
const [T] = positiveInts("tokens", "512");
const batches = positiveInts("batches", "2,4,8");
const [reps] = positiveInts("reps", "3");
const backend = await initBackend(arg("backend", "wasm") as BackendName | "auto", { log });
const backbone = await loadBackbone(modelPath);
const c = backbone.config;
const model = LlamaModel.fromHost(c, backbone.weights);

/** Row r: BOS then T − 1 ids spread over the vocabulary (different for every row). */
const row = (r: number, n: number) => [c.bosTokenId, ...Array.from({ length: n - 1 }, (_, i) => 3 + ((i * 7919 + r * 104729) % (c.vocabSize - 3)))];

/** Forward of `rows` as one batch; resolves once every row's last-token logits are read. */
async function prefill(rows: number[][]): Promise<void> {
  const last = tf.tidy(() => {
    const h = model.forwardBatch(rows);
    const [B, n, D] = h.shape;
    return model.logits(tf.slice(h, [0, n - 1, 0], [B, 1, D]).reshape([B, D]) as tf.Tensor2D);
  });
  try {
    await last.data();
  } finally {
    last.dispose();
  }
}

async function timeMs(f: () => Promise<void>): Promise<number> {
  const start = performance.now();
  await f();
  return performance.now() - start;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// Warm-up: both shapes of kernels (one row, several rows) and the RoPE table.
await prefill([row(0, 64)]);
await prefill([row(0, 64), row(1, 64)]);

const looped = new Map<number, number[]>(batches.map((b) => [b, []]));
const batched = new Map<number, number[]>(batches.map((b) => [b, []]));
for (let rep = 0; rep < reps!; rep++) {
  for (const B of batches) {
    const rows = Array.from({ length: B }, (_, r) => row(r, T!));
    looped.get(B)!.push(
      await timeMs(async () => {
        for (const r of rows) await prefill([r]);
      }),
    );
    batched.get(B)!.push(await timeMs(() => prefill(rows)));
    log(`rep ${rep + 1}/${reps}, B = ${B}: looped ${looped.get(B)!.at(-1)!.toFixed(0)} ms, batched ${batched.get(B)!.at(-1)!.toFixed(0)} ms`);
  }
}

const rowsOut = batches.map((B) => {
  const l = median(looped.get(B)!);
  const b = median(batched.get(B)!);
  const tokS = (ms: number) => (B * T!) / (ms / 1000);
  return [B, Math.round(l), Math.round(tokS(l)), Math.round(b), Math.round(tokS(b)), `${(tokS(b) / tokS(l)).toFixed(2)}x`];
});
console.log(`\nbackbone ${backbone.source.id}; backend ${backend.name}; ${machineLine()}; ${T}-token rows, median of ${reps} repetitions\n`);
console.log(table(["B", "B = 1 looped ms", "looped tok/s", "batched ms", "batched tok/s", "batched/looped tok/s"], rowsOut));

const trainBatches = arg("train-batches", "") === "" ? [] : positiveInts("train-batches", "2,4");
if (trainBatches.length > 0) {
  const [seq] = positiveInts("train-seq", "512");
  const [segment, window, sink, tbptt] = ["segment", "window", "sink", "tbptt"].map((n, i) => positiveInts(n, ["128", "252", "4", "2"][i]!)[0]!);
  const cfg = makeEdgeInfiniteConfig({ sinkTokens: sink!, windowTokens: window!, segmentLength: segment! });
  oneLineErrors(() => validateEdgeInfiniteConfig(cfg, c));
  const module = new MemoryGatingModule(c, cfg);
  const seqs = (B: number) => Array.from({ length: B }, (_, r) => ({ ids: row(r, seq! + 1) }));
  const looped = async (B: number) => {
    for (const q of seqs(B)) tf.dispose([...(await sequenceGradients(model, module, q.ids, tbptt!)).grads.values()]);
  };
  const batched = async (B: number) => tf.dispose([...(await sequenceGradientsBatch(model, module, seqs(B), tbptt!)).grads.values()]);
  await looped(1); // warm-up of both paths
  await batched(2);
  const trainRows = [];
  for (const B of trainBatches) {
    // Untimed first: the first batched backward of a size grows the wasm heap (measured 2.7x its second run at B = 4).
    await batched(B);
    const l = await timeMs(() => looped(B));
    const b = await timeMs(() => batched(B));
    log(`train B = ${B}: looped ${l.toFixed(0)} ms, batched ${b.toFixed(0)} ms`);
    const tokS = (ms: number) => (B * seq!) / (ms / 1000);
    trainRows.push([B, Math.round(l), Math.round(tokS(l)), Math.round(b), Math.round(tokS(b)), `${(tokS(b) / tokS(l)).toFixed(2)}x`]);
  }
  console.log(`\nTBPTT gradients: ${seq}-token sequences, segment ${segment}, sink ${sink}, window ${window}, k = ${tbptt}; one timing each after an untimed batched run\n`);
  console.log(table(["B", "B = 1 looped ms", "looped train tok/s", "batched ms", "batched train tok/s", "batched/looped"], trainRows));
  module.dispose();
}
model.dispose();
