/**
 * The batched backbone forward (LlamaModel.forwardBatch, groupedAttentionBatch): B = 1 gives the unbatched forward's
 * values to the bit, B rows equal B separate forwards (exactly, here), and no tensor is left behind.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { loadBackbone } from "../src/loaders/index.js";
import { LlamaModel, equalRowLength } from "../src/backbone/model.js";
import { groupedAttention, groupedAttentionBatch } from "../src/backbone/attention.js";
import { equalLengthBatches, nllWindows, windowedNll, windowedNllBatch } from "../src/backbone/nll.js";
import { tinyConfig, randomWeights } from "./reference/llama64.js";
import { writeFamilyCheckpoint } from "./fixtures/family-checkpoints.js";

const stories = resolve(__dirname, "../../shared/models/stories260K/stories260K.bin");
const root = mkdtempSync(join(tmpdir(), "edgeinf-batch-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Logits [T·vocab] of one sequence through the unbatched forward. */
function single(model: LlamaModel, ids: readonly number[], budget?: number): Float32Array {
  const l = tf.tidy(() => model.logits(model.forward(ids, budget)));
  const out = l.dataSync() as Float32Array;
  l.dispose();
  return out;
}

/** Logits [B·T·vocab] of equal-length rows through the batched forward. */
function batched(model: LlamaModel, rows: number[][], budget?: number): Float32Array {
  const l = tf.tidy(() => {
    const h = model.forwardBatch(rows, budget);
    return model.logits(h.reshape([-1, h.shape[2]]) as tf.Tensor2D);
  });
  const out = l.dataSync() as Float32Array;
  l.dispose();
  return out;
}

/** Three different rows of length T over a vocabulary of `vocab` (the first starts with `bos`). */
function rowsOf(T: number, vocab: number, bos: number): number[][] {
  return [0, 1, 2].map((r) => [bos, ...Array.from({ length: T - 1 }, (_, i) => 3 + ((i * 31 + r * 17 + r * i) % (vocab - 3)))]);
}

interface Case {
  name: string;
  load: () => Promise<LlamaModel>;
  T: number;
}

const CASES: Case[] = [
  {
    name: "stories260K",
    T: 48,
    load: async () => {
      const b = await loadBackbone(stories);
      return LlamaModel.fromHost(b.config, b.weights);
    },
  },
  { name: "tiny GQA fixture", T: 12, load: async () => LlamaModel.fromHost(tinyConfig(), randomWeights(tinyConfig(), 7)) },
  // Families whose attention differs: a sliding window (Mistral), soft-capping + window + extra norms (Gemma 2),
  // per-head q/k norms (Qwen3), dynamic RoPE past its trained length (Llama dynamic NTK).
  ...["mistral-sliding", "gemma2", "qwen3", "llama-dynamic"].map(
    (family): Case => ({
      name: `${family} fixture`,
      T: 20,
      load: async () => {
        const dir = join(root, family);
        writeFamilyCheckpoint(dir, family);
        const b = await loadBackbone(dir);
        return LlamaModel.fromHost(b.config, b.weights);
      },
    }),
  ),
];

describe("batched backbone forward", () => {
  for (const backend of ["wasm", "cpu"] as const) {
    describe(backend, () => {
      beforeAll(async () => {
        await initBackend(backend);
      });

      for (const c of CASES) {
        it(`${c.name}: B = 1 is bit-identical to the unbatched forward; B = 3 rows equal three forwards exactly; no tensor left`, async () => {
          const model = await c.load();
          const rows = rowsOf(c.T, model.config.vocabSize, model.config.bosTokenId);
          single(model, rows[0]!); // builds the RoPE tables the model keeps (not a leak)
          // Query blocks: a score budget of a few rows per block also splits the batched attention.
          for (const budget of [undefined, 4 * model.config.numHeads * c.T * 3]) {
            const before = tf.memory().numTensors;
            const one = batched(model, [rows[0]!], budget);
            expect(Array.from(one)).toEqual(Array.from(single(model, rows[0]!, budget)));
            // The budget covers a block's scores of every row: B times the bytes gives the same query blocks.
            const all = batched(model, rows, budget && budget * rows.length);
            const per = rows.map((r) => single(model, r, budget));
            const size = per[0]!.length;
            for (let b = 0; b < rows.length; b++) {
              // Exact on cpu and wasm: every product and reduction of a row runs in the same order whatever B.
              expect(Array.from(all.subarray(b * size, (b + 1) * size))).toEqual(Array.from(per[b]!));
            }
            expect(tf.memory().numTensors).toBe(before);
          }
          model.dispose();
        });
      }

      it("groupedAttention is groupedAttentionBatch of one sequence; a batch's sequences never mix", () => {
        const [H, Hkv, T, S, d] = [4, 2, 5, 7, 3];
        const rand = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, "float32", seed);
        tf.tidy(() => {
          const q = rand([2, H, T, d], 1) as tf.Tensor4D;
          const k = rand([2, Hkv, S, d], 2) as tf.Tensor4D;
          const v = rand([2, Hkv, S, d], 3) as tf.Tensor4D;
          const pick = <R extends tf.Rank>(x: tf.Tensor<R>, b: number) => tf.squeeze(tf.slice(x, b, 1), [0]) as tf.Tensor3D;
          const both = groupedAttentionBatch(q, k, v).dataSync();
          for (const b of [0, 1]) {
            const alone = groupedAttention(pick(q, b), pick(k, b), pick(v, b)).dataSync();
            expect(Array.from(both.subarray(b * T * H * d, (b + 1) * T * H * d))).toEqual(Array.from(alone));
          }
        });
      });
    });
  }

  it("rows of different lengths are refused, naming the row", () => {
    expect(() => equalRowLength([[1, 2], [3]])).toThrow(/row 1 has 1 tokens, row 0 has 2/);
    expect(() => equalRowLength([])).toThrow(/no rows/);
  });

  describe("windowed NLL of several texts (edgeinf ppl --method full --batch-size)", () => {
    beforeAll(async () => {
      await initBackend("wasm");
    });

    it("windows and batches: equal lengths only, at most the batch size, input order kept", () => {
      expect(nllWindows([1, 10, 11, 12, 13, 14], 3, 1)).toEqual([
        { ids: [1, 10, 11], first: 1 },
        { ids: [1, 12, 13], first: 3 },
        { ids: [1, 14], first: 5 },
      ]);
      expect(nllWindows([1, 10, 11, 12], 3, null).map((w) => w.ids)).toEqual([[1, 10, 11], [11, 12]]);
      const items = [[1, 2], [3], [4, 5], [6, 7], [8]].map((ids) => ({ ids }));
      expect(equalLengthBatches(items, 2).map((b) => b.map((w) => w.ids[0]))).toEqual([[1, 4], [6], [3, 8]]);
    });

    it("stories260K: each text's NLL at batch sizes 1–4 equals windowedNll of it alone, exactly; no tensor left", async () => {
      const b = await loadBackbone(stories);
      const model = LlamaModel.fromHost(b.config, b.weights);
      const texts = [150, 97, 64, 30].map((n, t) => [b.config.bosTokenId, ...Array.from({ length: n - 1 }, (_, i) => 3 + ((i * 13 + t * 101) % 500))]);
      const alone: number[][] = [];
      for (const ids of texts) alone.push(await windowedNll(model, ids, 40, b.config.bosTokenId));
      const before = tf.memory().numTensors;
      for (const batchSize of [1, 2, 3, 4]) {
        expect(await windowedNllBatch(model, texts, 40, b.config.bosTokenId, batchSize)).toEqual(alone);
      }
      // Tokenizers without BOS start a window with the token before it.
      expect(await windowedNllBatch(model, texts, 40, null, 3)).toEqual(await Promise.all(texts.map((ids) => windowedNll(model, ids, 40, null))));
      expect(tf.memory().numTensors).toBe(before);
      await expect(windowedNllBatch(model, texts, 40, 1, 0)).rejects.toThrow(/batch size 0/);
      model.dispose();
    });
  });
});
