/**
 * Guard for issue #7: tfjs-backend-webgpu cannot read a tensor synchronously in Node (dataSync/arraySync throw
 * "OffscreenCanvas is not defined"), so every runtime path of `generate`, `ppl`, `train` and `eval` must read with
 * `await data()`. Here, on the CPU backend, every synchronous read is made to throw, as on webgpu:
 *   - tf.Tensor.prototype.dataSync / arraySync / bufferSync,
 *   - the running backend's readSync (what engine.readSync, and so dataSync, ends in); the backend's own kernels
 *     (gather's bufferSync, where) and its asynchronous read still reach the original, as they would on webgpu,
 *     where kernels run on the device;
 * and then the CLI's generate and ppl (full and edgeinfinite), one training step through the train command
 * (TBPTT, clipping, AdamW, held-out loss, checkpoint write, backbone checksum) and an eval suite with every
 * method (full, streaming, h2o, snapkv, pyramidkv, tova, random, edgeinfinite from that checkpoint) run on
 * stories260K. Any synchronous read fails the run, and every attempt is also counted, so a swallowed error
 * cannot hide one.
 */
import { describe, it, expect, beforeAll, afterAll, vi } from "vitest";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { generateCommand } from "../src/cli/commands/generate.js";
import { pplCommand } from "../src/cli/commands/ppl.js";
import { trainCommand } from "../src/cli/commands/train.js";
import { parseSuite } from "../src/eval/suite.js";
import { runSuite } from "../src/eval/harness.js";
import { readCheckpointMeta } from "../src/training/checkpoint.js";

const repo = resolve(__dirname, "..");
const shared = resolve(repo, "../shared");
const stories = join(shared, "models/stories260K/stories260K.bin");
const heldout = join(shared, "corpora/gutenberg/heldout");
const STORY = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog Max.";

interface Guard {
  /** Sync reads attempted since install (each also threw). */
  attempts: string[];
  restore(): void;
}

type ReadSync = (dataId: object) => unknown;
interface BackendLike {
  readSync: ReadSync;
  read: (dataId: object) => Promise<unknown>;
  bufferSync?: (t: tf.TensorInfo) => unknown;
  where?: (condition: tf.Tensor) => unknown;
}

/** Makes every synchronous tensor read throw (and records it), as tfjs-backend-webgpu does in Node. */
function forbidSyncReads(): Guard {
  const attempts: string[] = [];
  const refuse = (what: string): never => {
    attempts.push(`${what}\n${new Error().stack?.split("\n").slice(2, 8).join("\n")}`);
    throw new Error(`synchronous read (${what}) on a path that must read asynchronously`);
  };
  const proto = tf.Tensor.prototype as unknown as Record<string, unknown>;
  const saved = { dataSync: proto["dataSync"], arraySync: proto["arraySync"], bufferSync: proto["bufferSync"] };
  proto["dataSync"] = () => refuse("Tensor.dataSync");
  proto["arraySync"] = () => refuse("Tensor.arraySync");
  proto["bufferSync"] = () => refuse("Tensor.bufferSync");

  const backend = tf.backend() as unknown as BackendLike;
  const own = { readSync: backend.readSync, read: backend.read, bufferSync: backend.bufferSync, where: backend.where };
  const original = own.readSync.bind(backend);
  // The backend's own callers of readSync (its async read, and kernels' bufferSync/where) keep the original.
  let inside = 0;
  const permitted = <A extends unknown[], R>(fn: ((...a: A) => R) | undefined) =>
    fn &&
    ((...a: A): R => {
      inside++;
      try {
        return fn.apply(backend, a);
      } finally {
        inside--;
      }
    });
  backend.readSync = (dataId) => (inside > 0 ? original(dataId) : refuse("backend.readSync"));
  backend.read = async (dataId) => original(dataId);
  if (own.bufferSync) backend.bufferSync = permitted(own.bufferSync);
  if (own.where) backend.where = permitted(own.where);
  return {
    attempts,
    restore() {
      Object.assign(proto, saved);
      Object.assign(backend, own);
    },
  };
}

let dir: string;
let guard: Guard | null = null;
const printed: string[] = [];

beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
  dir = mkdtempSync(join(tmpdir(), "edgeinf-async-reads-"));
  // The commands print results (stdout) and progress (stderr): keep them, quietly.
  vi.spyOn(process.stdout, "write").mockImplementation((s) => (printed.push(String(s)), true));
  vi.spyOn(process.stderr, "write").mockImplementation(() => true);
  vi.spyOn(console, "log").mockImplementation((s: unknown) => void printed.push(String(s)));
});

afterAll(() => {
  guard?.restore();
  vi.restoreAllMocks();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs fn with sync reads forbidden; fails when any was attempted, even if the error was caught on the way. */
async function withoutSyncReads<T>(fn: () => Promise<T>): Promise<T> {
  guard = forbidSyncReads();
  try {
    const out = await fn();
    expect(guard.attempts, guard.attempts.join("\n\n")).toEqual([]);
    return out;
  } finally {
    guard.restore();
    guard = null;
  }
}

/** The last JSON object the command printed. */
function lastJson(): Record<string, unknown> {
  for (let i = printed.length - 1; i >= 0; i--) {
    const s = printed[i]!.trim();
    if (s.startsWith("{")) return JSON.parse(s) as Record<string, unknown>;
  }
  throw new Error("the command printed no JSON");
}

describe("no synchronous tensor read on the generate, ppl, train and eval paths", () => {
  it("the guard works: sync reads throw, async reads and the CPU backend's own kernels still work", async () => {
    await withoutSyncReads(async () => {
      const x = tf.tensor1d([3, 1, 2]);
      expect(() => x.dataSync()).toThrow(/synchronous read/);
      expect(() => x.arraySync()).toThrow(/synchronous read/);
      expect(() => tf.engine().readSync(x.dataId)).toThrow(/synchronous read/);
      expect(Array.from(await x.data())).toEqual([3, 1, 2]);
      const g = tf.gather(x, tf.tensor1d([2, 0], "int32")); // the CPU kernel reads its inputs through bufferSync
      expect(await g.array()).toEqual([2, 3]);
      guard!.attempts.length = 0; // the three refusals above were on purpose
      tf.dispose([x, g]);
    });
    expect(tf.tensor1d([1]).dataSync()[0]).toBe(1); // restored
  });

  it("generate (CLI, full KV and h2o) and ppl (CLI, full and edgeinfinite) read asynchronously", async () => {
    await withoutSyncReads(async () => {
      const before = tf.memory().numTensors;
      const base = { model: stories, backend: "cpu", prompt: STORY, maxNewTokens: 6, temperature: 0, seed: 0, json: true };
      await generateCommand.handler!({ ...base, method: "full" } as never);
      const full = lastJson();
      expect(full["newTokens"]).toBeGreaterThan(0);
      await generateCommand.handler!({ ...base, method: "h2o", budget: "50%" } as never);
      expect(lastJson()["method"]).toBe("h2o");
      const text = join(heldout, "Treasure_Island.txt");
      await pplCommand.handler!({ model: stories, backend: "cpu", file: text, method: "full", context: 128, maxTokens: 300 } as never);
      const ppl = lastJson();
      expect(ppl["tokens"]).toBe(299);
      expect(Number.isFinite(ppl["perplexity"])).toBe(true);
      await pplCommand.handler!({ model: stories, backend: "cpu", file: text, method: "edgeinfinite", maxTokens: 300 } as never);
      expect(Number.isFinite(lastJson()["perplexity"])).toBe(true);
      expect(tf.memory().numTensors).toBe(before); // the commands dispose what they made
    });
  });

  it("one training step (TBPTT, clip, AdamW, held-out loss, checkpoint) and an eval of every method read asynchronously", async () => {
    const recipe = join(dir, "recipe.yaml");
    writeFileSync(
      recipe,
      `name: async-reads
seed: 3
backend: cpu
backbone: ${stories}
data:
  sequenceLength: 128
  mixture:
    - { source: text, path: ${shared}/corpora/gutenberg/train/Peter_Pan.txt, weight: 1 }
  heldout: { path: ${heldout}/Treasure_Island.txt, sequences: 1 }
edgeinfinite: { sinkTokens: 4, windowTokens: 60, segmentLength: 32 }
training:
  steps: 1
  tbpttSegments: 2
  gradAccumulation: 1
  gradClip: 1.0
  optimizer: { lr: 0.01 }
  evalInterval: 1
  checkpointInterval: 1
output: ${dir}/out
`,
    );
    await withoutSyncReads(async () => {
      await trainCommand.handler!({ recipe } as never);
      const result = lastJson();
      expect(result["steps"]).toBe(1);
      expect(Number.isFinite(result["finalLoss"])).toBe(true);
      expect(readCheckpointMeta(join(dir, "out")).step).toBe(1);
      expect(existsSync(join(dir, "out/step-000001/optimizer.safetensors"))).toBe(true);

      const suite = parseSuite(
        {
          name: "async-reads",
          backbone: stories,
          corpus: heldout,
          seed: 7,
          lengths: [128],
          tasks: [{ name: "passkey", source: "synthetic", count: 1, depths: [0.5], intro: false }],
          methods: [
            { name: "full" },
            { name: "streaming", budget: 40, sinkTokens: 4 },
            { name: "h2o", budget: 40 },
            { name: "snapkv", budget: 40 },
            { name: "pyramidkv", budget: 40 },
            { name: "tova", budget: 40 },
            { name: "random", budget: 40 },
            // The trained checkpoint under another window: its variables are copied into a new module.
            { name: "edgeinfinite", checkpoint: join(dir, "out"), windowTokens: 40 },
          ],
          generation: { maxNewTokens: 4, temperature: 0 },
          warmup: true,
        },
        "<async-reads suite>",
        repo,
      );
      const run = await runSuite(suite, { runDir: join(dir, "run"), progress: "none", warn: () => {} });
      expect(run.complete).toBe(true);
      expect(run.samples.map((r) => r.methodName).sort()).toEqual(["edgeinfinite", "full", "h2o", "pyramidkv", "random", "snapkv", "streaming", "tova"]);
      for (const row of run.samples) {
        expect(row.newTokens, row.method).toBeGreaterThan(0);
        expect(row.leakedTensors, row.method).toBe(0);
        // Every eviction method evicted (KV after prefill below the full prompt's), EdgeInfinite used its memory.
        if (row.methodName !== "full") expect(row.kvBytesAfterPrefill, row.method).toBeLessThan(row.kvBytesFull);
      }
      expect(readFileSync(join(dir, "run/samples.jsonl"), "utf8").trim().split("\n")).toHaveLength(8);
    });
  });
});
