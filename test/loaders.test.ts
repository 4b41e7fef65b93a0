import { describe, expect, it, beforeAll } from "vitest";
import { createHash } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { interleavedToHalfSplitRows, readLlama2cModel } from "../src/loaders/llama2c.js";
import { decodeFloats, readSafetensors, readSafetensorsHeader, writeSafetensors } from "../src/loaders/safetensors.js";
import { parseHuggingFaceConfig, parseRopeScaling, readHuggingFaceModel } from "../src/loaders/huggingface.js";
import { loadBackbone } from "../src/loaders/index.js";
import { readLlama2cTokenizer } from "../src/tokenizers/llama2c-tokenizer.js";
import { parameterCount, type LlamaConfig } from "../src/backbone/config.js";
import type { HostWeights } from "../src/backbone/weights.js";
import { EdgeInfError } from "../src/util/errors.js";
import { Rng } from "../src/util/rng.js";

const repoRoot = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
const shared = resolve(repoRoot, "../shared");
const storiesDir = join(shared, "models/stories260K");
const storiesBin = join(storiesDir, "stories260K.bin");
const edgeLm = join(shared, "models/edge-lm");
/** From ../shared/README.md. */
const STORIES_SHA256 = "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696";

function tmp(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `edgeinf-${prefix}-`));
}

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error, none was thrown");
}

function expectOneLineError(fn: () => unknown, ...fragments: string[]): void {
  const err = errorOf(fn);
  expect(err).toBeInstanceOf(EdgeInfError);
  expect(err.message).not.toContain("\n");
  for (const f of fragments) expect(err.message).toContain(f);
}

async function expectOneLineRejection(p: Promise<unknown>, ...fragments: string[]): Promise<void> {
  const err = await p.then(
    () => new Error("expected a rejection"),
    (e: unknown) => e as Error,
  );
  expect(err).toBeInstanceOf(EdgeInfError);
  expect(err.message).not.toContain("\n");
  for (const f of fragments) expect(err.message).toContain(f);
}

// ---------------------------------------------------------------------------------------------
// llama2.c

/** Float64 RoPE, llama2.c style: rotate (2i, 2i+1) by pos·θ^(-2i/hs). */
function ropeInterleaved(v: number[], pos: number, theta = 10000): number[] {
  const out = v.slice();
  for (let i = 0; i < v.length; i += 2) {
    const a = pos * Math.pow(theta, -i / v.length);
    out[i] = v[i]! * Math.cos(a) - v[i + 1]! * Math.sin(a);
    out[i + 1] = v[i]! * Math.sin(a) + v[i + 1]! * Math.cos(a);
  }
  return out;
}

/** Float64 RoPE, Hugging Face rotate_half style: rotate (i, i+hs/2) by pos·θ^(-2i/hs). */
function ropeHalfSplit(v: number[], pos: number, theta = 10000): number[] {
  const h = v.length / 2;
  const out = v.slice();
  for (let i = 0; i < h; i++) {
    const a = pos * Math.pow(theta, (-2 * i) / v.length);
    out[i] = v[i]! * Math.cos(a) - v[i + h]! * Math.sin(a);
    out[i + h] = v[i + h]! * Math.cos(a) + v[i]! * Math.sin(a);
  }
  return out;
}

const dot = (a: number[], b: number[]): number => a.reduce((s, x, i) => s + x * b[i]!, 0);

/** Float64 Llama forward with a KV cache, HF RoPE convention; returns greedy continuation ids. */
function greedyFloat64(c: LlamaConfig, w: HostWeights, prompt: number[], steps: number): number[] {
  const d = c.hiddenSize;
  const hs = c.headDim;
  const kvd = c.numKvHeads * hs;
  const matvec = (W: Float32Array, x: number[], rows: number, cols: number): number[] =>
    Array.from({ length: rows }, (_, r) => {
      let s = 0;
      for (let k = 0; k < cols; k++) s += W[r * cols + k]! * x[k]!;
      return s;
    });
  const rms = (x: number[], g: Float32Array): number[] => {
    const inv = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + c.rmsNormEps);
    return x.map((v, i) => v * inv * g[i]!);
  };
  const ropeHeads = (v: number[], heads: number, pos: number): number[] =>
    Array.from({ length: heads }, (_, h) => ropeHalfSplit(v.slice(h * hs, (h + 1) * hs), pos, c.ropeTheta)).flat();
  const K: number[][][] = w.layers.map(() => []);
  const V: number[][][] = w.layers.map(() => []);
  const out: number[] = [];
  let tok = prompt[0]!;
  for (let pos = 0; pos < prompt.length + steps - 1; pos++) {
    let x = Array.from(w.embed.data.subarray(tok * d, (tok + 1) * d));
    w.layers.forEach((L, li) => {
      const xn = rms(x, L.attnNorm.data);
      const q = ropeHeads(matvec(L.wq.data, xn, c.numHeads * hs, d), c.numHeads, pos);
      K[li]!.push(ropeHeads(matvec(L.wk.data, xn, kvd, d), c.numKvHeads, pos));
      V[li]!.push(matvec(L.wv.data, xn, kvd, d));
      const att = new Array<number>(c.numHeads * hs).fill(0);
      for (let h = 0; h < c.numHeads; h++) {
        const kh = Math.floor(h / (c.numHeads / c.numKvHeads));
        const qh = q.slice(h * hs, (h + 1) * hs);
        const sc = K[li]!.map((k) => dot(qh, k.slice(kh * hs, (kh + 1) * hs)) / Math.sqrt(hs));
        const m = Math.max(...sc);
        const e = sc.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        e.forEach((p, t) => {
          for (let j = 0; j < hs; j++) att[h * hs + j] += (p / z) * V[li]![t]![kh * hs + j]!;
        });
      }
      const o = matvec(L.wo.data, att, d, c.numHeads * hs);
      x = x.map((v, i) => v + o[i]!);
      const xn2 = rms(x, L.ffnNorm.data);
      const g = matvec(L.wGate.data, xn2, c.intermediateSize, d);
      const u = matvec(L.wUp.data, xn2, c.intermediateSize, d);
      const dn = matvec(L.wDown.data, g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]!), d, c.intermediateSize);
      x = x.map((v, i) => v + dn[i]!);
    });
    if (pos + 1 < prompt.length) {
      tok = prompt[pos + 1]!;
      continue;
    }
    const logits = matvec((w.lmHead ?? w.embed).data, rms(x, w.finalNorm.data), c.vocabSize, d);
    tok = logits.indexOf(Math.max(...logits));
    out.push(tok);
  }
  return out;
}

describe("llama2.c loader (stories260K)", () => {
  let model: ReturnType<typeof readLlama2cModel>;
  beforeAll(() => {
    model = readLlama2cModel(storiesBin);
  });

  it("maps the header to the shared README's architecture", () => {
    expect(model.config).toMatchObject({
      architecture: "llama2.c",
      hiddenSize: 64,
      intermediateSize: 172,
      numLayers: 5,
      numHeads: 8,
      numKvHeads: 4,
      headDim: 8,
      vocabSize: 512,
      maxPositions: 512,
      ropeTheta: 10000,
      rmsNormEps: 1e-5,
      tieWordEmbeddings: true,
      bosTokenId: 1,
      eosTokenId: 2,
    });
    expect(model.weights.lmHead).toBeNull();
    expect(model.weights.layers).toHaveLength(5);
    expect(model.weights.layers[0]!.wk.shape).toEqual([32, 64]);
    expect(model.weights.layers[4]!.wDown.shape).toEqual([64, 172]);
  });

  it("places each array at the offset llama2.c's layout gives, with q/k rows permuted per head", () => {
    const raw = readFileSync(storiesBin);
    const f = (index: number): number => raw.readFloatLE(28 + 4 * index);
    const [V, D, L, H, F, KV] = [512, 64, 5, 172, 8, 32];
    const offEmbed = 0;
    const offRmsAtt = offEmbed + V * D;
    const offWq = offRmsAtt + L * D;
    const offWk = offWq + L * D * D;
    const offWv = offWk + L * KV * D;
    const offWo = offWv + L * KV * D;
    const offRmsFfn = offWo + L * D * D;
    const offW1 = offRmsFfn + L * D;
    const offW2 = offW1 + L * H * D;
    const offW3 = offW2 + L * D * H;
    const offFinal = offW3 + L * H * D;
    const w = model.weights;
    const l = 3;
    expect(w.embed.data[100 * D + 7]).toBe(f(offEmbed + 100 * D + 7));
    expect(w.layers[l]!.attnNorm.data[5]).toBe(f(offRmsAtt + l * D + 5));
    expect(w.layers[l]!.wv.data[9 * D + 2]).toBe(f(offWv + l * KV * D + 9 * D + 2));
    expect(w.layers[l]!.wo.data[9 * D + 2]).toBe(f(offWo + l * D * D + 9 * D + 2));
    expect(w.layers[l]!.ffnNorm.data[63]).toBe(f(offRmsFfn + l * D + 63));
    expect(w.layers[l]!.wGate.data[170 * D + 1]).toBe(f(offW1 + l * H * D + 170 * D + 1));
    expect(w.layers[l]!.wDown.data[2 * H + 171]).toBe(f(offW2 + l * D * H + 2 * H + 171));
    expect(w.layers[l]!.wUp.data[170 * D + 1]).toBe(f(offW3 + l * H * D + 170 * D + 1));
    expect(w.finalNorm.data[10]).toBe(f(offFinal + 10));
    // head 2 (head size 8): new row j ← old 2j, new row 4+j ← old 2j+1.
    const headBase = 2 * F;
    for (let j = 0; j < 4; j++) {
      for (const col of [0, 33, 63]) {
        expect(w.layers[l]!.wq.data[(headBase + j) * D + col]).toBe(f(offWq + l * D * D + (headBase + 2 * j) * D + col));
        expect(w.layers[l]!.wq.data[(headBase + 4 + j) * D + col]).toBe(f(offWq + l * D * D + (headBase + 2 * j + 1) * D + col));
        expect(w.layers[l]!.wk.data[(F + 4 + j) * D + col]).toBe(f(offWk + l * KV * D + (F + 2 * j + 1) * D + col));
      }
    }
  });

  it("permutation keeps q·k scores: interleaved RoPE(q,m)·RoPE(k,n) == half-split RoPE(Pq,m)·RoPE(Pk,n)", () => {
    const rng = new Rng(11);
    for (const hs of [8, 64]) {
      for (const [m, n] of [[0, 0], [5, 1], [7, 7], [300, 12], [2047, 1000]] as const) {
        const q = Array.from(Float32Array.from({ length: hs }, () => rng.normal()));
        const k = Array.from(Float32Array.from({ length: hs }, () => rng.normal()));
        // Apply the loader's row permutation to q and k as 1-column weight matrices.
        const P = (v: number[]): number[] => Array.from(interleavedToHalfSplitRows(Float32Array.from(v), 1, hs, 1));
        const expected = dot(ropeInterleaved(q, m), ropeInterleaved(k, n));
        const got = dot(ropeHalfSplit(P(q), m), ropeHalfSplit(P(k), n));
        expect(Math.abs(got - expected)).toBeLessThan(1e-9 * Math.max(1, Math.abs(expected)));
        // Control: without the permutation, half-split RoPE changes the score whenever m ≠ n.
        if (m !== n) expect(Math.abs(dot(ropeHalfSplit(q, m), ropeHalfSplit(k, n)) - expected)).toBeGreaterThan(1e-6);
      }
    }
  });

  it("reproduces the shared README's greedy story with a float64 HF-convention forward pass", () => {
    const tok = readLlama2cTokenizer(join(storiesDir, "tok512.bin"), 512);
    const prompt = tok.encode(" Once upon a time", { bos: true });
    const ids = greedyFloat64(model.config, model.weights, prompt, 40);
    const expected = ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.";
    expect(tok.decode(ids).slice(0, expected.length)).toBe(expected);
  });

  it("rejects missing, truncated, oversized and malformed .bin files with one-line errors", () => {
    const dir = tmp("l2c");
    const raw = readFileSync(storiesBin);
    expectOneLineError(() => readLlama2cModel(join(dir, "missing.bin")), join(dir, "missing.bin"), "does not exist");
    const cut = join(dir, "cut.bin");
    writeFileSync(cut, raw.subarray(0, raw.length - 100));
    expectOneLineError(() => readLlama2cModel(cut), cut, "truncated", `expected ${raw.length} bytes`, `got ${raw.length - 100}`);
    const tiny = join(dir, "tiny.bin");
    writeFileSync(tiny, raw.subarray(0, 10));
    expectOneLineError(() => readLlama2cModel(tiny), tiny, "truncated");
    const long = join(dir, "long.bin");
    writeFileSync(long, Buffer.concat([raw, Buffer.alloc(8)]));
    expectOneLineError(() => readLlama2cModel(long), long, "8 trailing bytes", `expected ${raw.length}`);
    const badHeader = Buffer.from(raw);
    badHeader.writeInt32LE(0, 0);
    const zero = join(dir, "zero.bin");
    writeFileSync(zero, badHeader);
    expectOneLineError(() => readLlama2cModel(zero), zero, "dim = 0");
    const v1 = Buffer.from(raw);
    v1.writeUInt32LE(0x616b3432, 0);
    const v1Path = join(dir, "v1.bin");
    writeFileSync(v1Path, v1);
    expectOneLineError(() => readLlama2cModel(v1Path), v1Path, "--version 0");
  });

  it("reads an untied classifier when vocab_size is negative", () => {
    const dir = tmp("l2c-untied");
    const raw = readFileSync(storiesBin);
    const header = Buffer.from(raw.subarray(0, 28));
    header.writeInt32LE(-512, 20);
    const wcls = new Float32Array(512 * 64).map((_, i) => i * 1e-3);
    const path = join(dir, "untied.bin");
    writeFileSync(path, Buffer.concat([header, raw.subarray(28), Buffer.from(wcls.buffer)]));
    const m = readLlama2cModel(path);
    expect(m.config.tieWordEmbeddings).toBe(false);
    expect(m.weights.lmHead!.shape).toEqual([512, 64]);
    expect(m.weights.lmHead!.data[1234]).toBe(Math.fround(1.234));
  });
});

// ---------------------------------------------------------------------------------------------
// safetensors

/** Hand-builds a safetensors file: JSON header + raw bytes (no padding, as the spec allows). */
function buildSafetensors(header: Record<string, unknown>, data: Uint8Array): Buffer {
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, Buffer.from(data)]);
}

function u16Bytes(bits: number[]): Uint8Array {
  const b = Buffer.alloc(bits.length * 2);
  bits.forEach((v, i) => b.writeUInt16LE(v, i * 2));
  return b;
}

describe("safetensors", () => {
  it("converts F16 bit patterns by the IEEE 754 definition", () => {
    const cases: Array<[number, number]> = [
      [0x3c00, 1],
      [0xc000, -2],
      [0x7bff, 65504],
      [0x0001, 2 ** -24], // smallest subnormal
      [0x03ff, 1023 * 2 ** -24], // largest subnormal
      [0x0400, 2 ** -14], // smallest normal
      [0x3555, Math.fround(0.333251953125)],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
      [0x0000, 0],
    ];
    const out = decodeFloats(u16Bytes(cases.map(([b]) => b)), "F16");
    cases.forEach(([, v], i) => expect(out[i]).toBe(Math.fround(v)));
    const negZeroNan = decodeFloats(u16Bytes([0x8000, 0x7e00]), "F16");
    expect(Object.is(negZeroNan[0], -0)).toBe(true);
    expect(Number.isNaN(negZeroNan[1])).toBe(true);
  });

  it("converts BF16 (top half of float32) and F64", () => {
    const bf = decodeFloats(u16Bytes([0x3f80, 0xc040, 0x4049, 0x0001, 0x7f80]), "BF16");
    expect(Array.from(bf)).toEqual([1, -3, 3.140625, Math.fround(2 ** -133), Infinity]);
    const f64 = new Float64Array([0.1, -1e300, 2.5]);
    expect(Array.from(decodeFloats(new Uint8Array(f64.buffer), "F64"))).toEqual([Math.fround(0.1), -Infinity, 2.5]);
  });

  it("reads hand-built F16/BF16/F64/F32 files with shapes and metadata", () => {
    const dir = tmp("st");
    const f32 = new Float32Array([1.5, -2.25]);
    const f64 = new Float64Array([3.5]);
    const data = Buffer.concat([u16Bytes([0x3c00, 0xc000, 0x7bff, 0x0001]), u16Bytes([0x3f80, 0xc040]), Buffer.from(f32.buffer), Buffer.from(f64.buffer)]);
    const path = join(dir, "mixed.safetensors");
    writeFileSync(
      path,
      buildSafetensors(
        {
          __metadata__: { format: "pt" },
          half: { dtype: "F16", shape: [2, 2], data_offsets: [0, 8] },
          brain: { dtype: "BF16", shape: [2], data_offsets: [8, 12] },
          single: { dtype: "F32", shape: [1, 2], data_offsets: [12, 20] },
          double: { dtype: "F64", shape: [], data_offsets: [20, 28] },
        },
        data,
      ),
    );
    const t = readSafetensors(path);
    expect(t.get("half")).toEqual({ dtype: "F16", shape: [2, 2], data: Float32Array.from([1, -2, 65504, 2 ** -24]) });
    expect(t.get("brain")!.data).toEqual(Float32Array.from([1, -3]));
    expect(t.get("single")!.data).toEqual(f32);
    expect(t.get("double")!.shape).toEqual([]);
    expect(t.get("double")!.data).toEqual(Float32Array.from([3.5]));
    expect(readSafetensorsHeader(path).metadata).toEqual({ format: "pt" });
    expect(readSafetensors(path, new Set(["brain"])).size).toBe(1);
  });

  it("writes F32 files that round-trip and follow the spec's layout", () => {
    const dir = tmp("stw");
    const rng = new Rng(3);
    const a = Float32Array.from({ length: 12 }, () => rng.normal());
    const b = Float32Array.from({ length: 5 }, () => rng.normal());
    const path = join(dir, "out.safetensors");
    writeSafetensors(path, { "b.weight": { shape: [5], data: b }, "a.weight": { shape: [3, 4], data: a }, empty: { shape: [0, 4], data: new Float32Array(0) } }, { step: "7" });
    const back = readSafetensors(path);
    expect(back.get("a.weight")).toEqual({ dtype: "F32", shape: [3, 4], data: a });
    expect(back.get("b.weight")!.data).toEqual(b);
    expect(back.get("empty")!.shape).toEqual([0, 4]);
    // Independent layout check: header length is a multiple of 8, offsets are contiguous F32 ranges.
    const raw = readFileSync(path);
    const n = Number(raw.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const header = JSON.parse(raw.subarray(8, 8 + n).toString("utf8")) as Record<string, { dtype: string; data_offsets: [number, number] }>;
    expect(header.__metadata__).toEqual({ step: "7" });
    const off = header["a.weight"]!.data_offsets;
    expect(header["a.weight"]!.dtype).toBe("F32");
    expect(raw.readFloatLE(8 + n + off[0] + 4 * 5)).toBe(a[5]);
    expect(raw.length).toBe(8 + n + 4 * 17);
    expectOneLineError(() => writeSafetensors(path, { bad: { shape: [2, 2], data: new Float32Array(3) } }), "bad", "3 values", "[2, 2]");
  });

  it("rejects each kind of corrupt file with a one-line error naming the file", () => {
    const dir = tmp("stbad");
    const good = buildSafetensors({ x: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8));
    const write = (name: string, bytes: Uint8Array): string => {
      const p = join(dir, name);
      writeFileSync(p, bytes);
      return p;
    };
    expectOneLineError(() => readSafetensors(join(dir, "none.safetensors")), join(dir, "none.safetensors"), "does not exist");
    const short = write("short.safetensors", good.subarray(0, 5));
    expectOneLineError(() => readSafetensors(short), short, "truncated");
    const lenPast = Buffer.from(good);
    lenPast.writeBigUInt64LE(10_000n, 0);
    const past = write("past.safetensors", lenPast);
    expectOneLineError(() => readSafetensors(past), past, "header length 10000 runs past the end");
    const cut = write("cut.safetensors", good.subarray(0, good.length - 3));
    expectOneLineError(() => readSafetensors(cut), cut, "tensor x", "out of range");
    const badJson = Buffer.from(good);
    badJson[8] = "!".charCodeAt(0);
    const bj = write("badjson.safetensors", badJson);
    expectOneLineError(() => readSafetensors(bj), bj, "not valid JSON");
    const wrongSize = write("size.safetensors", buildSafetensors({ x: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)));
    expectOneLineError(() => readSafetensors(wrongSize), wrongSize, "tensor x", "needs 12");
    const ints = write("int.safetensors", buildSafetensors({ ids: { dtype: "I64", shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)));
    expectOneLineError(() => readSafetensors(ints), ints, "dtype I64 not supported");
  });
});

// ---------------------------------------------------------------------------------------------
// Hugging Face

/** Independent fp16 decode of one tensor straight from the shard bytes. */
function rawF16(file: string, name: string, index: number): number {
  const raw = readFileSync(file);
  const n = Number(raw.readBigUInt64LE(0));
  const entry = (JSON.parse(raw.subarray(8, 8 + n).toString("utf8")) as Record<string, { dtype: string; data_offsets: [number, number] }>)[name]!;
  expect(entry.dtype).toBe("F16");
  const h = raw.readUInt16LE(8 + n + entry.data_offsets[0] + 2 * index);
  const sign = h >> 15 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  return e === 0 ? sign * m * Math.pow(2, -24) : sign * (1 + m / 1024) * Math.pow(2, e - 15);
}

const tinyConfig = {
  architectures: ["LlamaForCausalLM"],
  vocab_size: 16,
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-6,
  rope_theta: 500000,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: [2, 5],
};

/** Random tensors for `tinyConfig` (head_dim 4), named like transformers' LlamaForCausalLM. */
function tinyTensors(seed: number): Record<string, { shape: number[]; data: Float32Array }> {
  const rng = new Rng(seed);
  const t = (...shape: number[]) => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()) });
  const out: Record<string, { shape: number[]; data: Float32Array }> = { "model.embed_tokens.weight": t(16, 8), "model.norm.weight": t(8), "lm_head.weight": t(16, 8) };
  for (let i = 0; i < 2; i++) {
    const p = `model.layers.${i}`;
    Object.assign(out, {
      [`${p}.self_attn.q_proj.weight`]: t(8, 8),
      [`${p}.self_attn.k_proj.weight`]: t(4, 8),
      [`${p}.self_attn.v_proj.weight`]: t(4, 8),
      [`${p}.self_attn.o_proj.weight`]: t(8, 8),
      [`${p}.mlp.gate_proj.weight`]: t(12, 8),
      [`${p}.mlp.up_proj.weight`]: t(12, 8),
      [`${p}.mlp.down_proj.weight`]: t(8, 12),
      [`${p}.input_layernorm.weight`]: t(8),
      [`${p}.post_attention_layernorm.weight`]: t(8),
      [`${p}.self_attn.rotary_emb.inv_freq`]: t(2), // extra tensors are ignored
    });
  }
  return out;
}

function tinyModelDir(config: Record<string, unknown> = tinyConfig, drop: string[] = []): { dir: string; tensors: ReturnType<typeof tinyTensors> } {
  const dir = tmp("hf");
  const tensors = tinyTensors(5);
  for (const d of drop) delete tensors[d];
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  writeSafetensors(join(dir, "model.safetensors"), tensors);
  return { dir, tensors };
}

/** A directory whose config.json is edited but whose weights are edge-lm's (symlinked, never copied). */
function edgeLmWithConfig(edit: (c: Record<string, unknown>) => void): string {
  const dir = tmp("edge");
  const config = JSON.parse(readFileSync(join(edgeLm, "config.json"), "utf8")) as Record<string, unknown>;
  edit(config);
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  for (const f of ["model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]) symlinkSync(join(edgeLm, f), join(dir, f));
  return dir;
}

describe("Hugging Face loader", () => {
  it("loads edge-lm with the README's architecture and 15,145,344 parameters", () => {
    const { config, weights } = readHuggingFaceModel(edgeLm);
    expect(config).toMatchObject({
      architecture: "LlamaForCausalLM",
      vocabSize: 8192,
      hiddenSize: 384,
      intermediateSize: 960,
      numLayers: 8,
      numHeads: 6,
      numKvHeads: 2,
      headDim: 64,
      maxPositions: 2048,
      ropeTheta: 10000,
      ropeScaling: null,
      rmsNormEps: 1e-5,
      tieWordEmbeddings: true,
      bosTokenId: 0,
      eosTokenId: 1,
    });
    expect(parameterCount(config)).toBe(15_145_344);
    expect(weights.lmHead).toBeNull();
    expect(weights.layers[7]!.wk.shape).toEqual([128, 384]);
    const shard1 = join(edgeLm, "model-00001-of-00002.safetensors");
    const index = JSON.parse(readFileSync(join(edgeLm, "model.safetensors.index.json"), "utf8")) as { weight_map: Record<string, string> };
    expect(weights.embed.data[5 * 384 + 17]).toBe(Math.fround(rawF16(shard1, "model.embed_tokens.weight", 5 * 384 + 17)));
    const normFile = join(edgeLm, index.weight_map["model.norm.weight"]!);
    expect(weights.finalNorm.data[100]).toBe(Math.fround(rawF16(normFile, "model.norm.weight", 100)));
    const l7 = join(edgeLm, index.weight_map["model.layers.7.mlp.down_proj.weight"]!);
    expect(weights.layers[7]!.wDown.data[383 * 960 + 959]).toBe(Math.fround(rawF16(l7, "model.layers.7.mlp.down_proj.weight", 383 * 960 + 959)));
  });

  it("loads a single-file untied model exactly as written", () => {
    const { dir, tensors } = tinyModelDir();
    const { config, weights } = readHuggingFaceModel(dir);
    expect(config).toMatchObject({ headDim: 4, numKvHeads: 1, ropeTheta: 500000, tieWordEmbeddings: false, eosTokenId: 2, rmsNormEps: 1e-6 });
    expect(weights.lmHead!.data).toEqual(tensors["lm_head.weight"]!.data);
    expect(weights.layers[1]!.wGate).toEqual(tensors["model.layers.1.mlp.gate_proj.weight"]);
    expect(weights.layers[1]!.ffnNorm).toEqual(tensors["model.layers.1.post_attention_layernorm.weight"]);
    expect(weights.layers[0]!.wDown).toEqual(tensors["model.layers.0.mlp.down_proj.weight"]);
  });

  it("parses rope scaling (linear, llama3, rope_parameters) and rejects unknown types", () => {
    expect(parseRopeScaling({ type: "linear", factor: 4 }, "c", 64)).toEqual({ type: "linear", factor: 4 });
    expect(parseRopeScaling({ rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 }, "c", 131072)).toEqual({
      type: "llama3",
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositions: 8192,
    });
    expect(parseRopeScaling(null, "c", 64)).toBeNull();
    const viaParams = parseHuggingFaceConfig({ ...tinyConfig, rope_theta: undefined, rope_parameters: { rope_type: "linear", factor: 2, rope_theta: 1234 } }, "cfg.json");
    expect(viaParams.ropeTheta).toBe(1234);
    expect(viaParams.ropeScaling).toEqual({ type: "linear", factor: 2 });
    expectOneLineError(() => parseRopeScaling({ rope_type: "ntk-by-parts", factor: 4 }, "x/config.json", 64), "x/config.json", "ntk-by-parts", "not supported");
    expectOneLineError(() => parseRopeScaling({ rope_type: "yarn", factor: 4, beta_medium: 3 }, "x/config.json", 64), "rope_scaling.beta_medium", "x/config.json");
    expectOneLineError(() => parseRopeScaling({ type: "linear" }, "x/config.json", 64), "factor");
  });

  it("reads Mistral's sliding window, rejects other architectures, and asks for the biases attention_bias declares", () => {
    expect(parseHuggingFaceConfig({ ...tinyConfig, architectures: ["MistralForCausalLM"], sliding_window: null }, "m.json").family!.layers.map((l) => l.window)).toEqual([null, null]);
    expect(parseHuggingFaceConfig({ ...tinyConfig, architectures: ["MistralForCausalLM"], sliding_window: 16 }, "m.json").family!.layers.map((l) => l.window)).toEqual([16, 16]);
    const gpt2 = edgeLmWithConfig((c) => (c.architectures = ["GPT2LMHeadModel"]));
    expectOneLineError(() => readHuggingFaceModel(gpt2), `unsupported architecture GPT2LMHeadModel in ${join(gpt2, "config.json")}`, "supported: LlamaForCausalLM, MistralForCausalLM");
    const bias = edgeLmWithConfig((c) => (c.attention_bias = true));
    expectOneLineError(() => readHuggingFaceModel(bias), "attention_bias", join(bias, "config.json"));
    const mlpBias = edgeLmWithConfig((c) => (c.mlp_bias = true));
    expectOneLineError(() => readHuggingFaceModel(mlpBias), "mlp_bias", join(mlpBias, "config.json"));
  });

  it("names tensor, file and both shapes on a header/config mismatch", () => {
    const dir = edgeLmWithConfig((c) => (c.intermediate_size = 1024));
    const err = errorOf(() => readHuggingFaceModel(dir));
    expect(err).toBeInstanceOf(EdgeInfError);
    expect(err.message).not.toContain("\n");
    const m = /header\/config mismatch: tensor model\.layers\.\d\.mlp\.(gate|up|down)_proj\.weight in \S*model-0000[12]-of-00002\.safetensors/.exec(err.message);
    expect(m).not.toBeNull();
    const isDown = m![1] === "down";
    expect(err.message).toContain(isDown ? "has shape [384, 960]" : "has shape [960, 384]");
    expect(err.message).toContain(isDown ? "implies [384, 1024]" : "implies [1024, 384]");
    expect(err.message).toContain(join(dir, "config.json"));
  });

  it("names missing tensors, missing weights and truncated shards", () => {
    const { dir } = tinyModelDir(tinyConfig, ["model.layers.1.mlp.up_proj.weight"]);
    expectOneLineError(() => readHuggingFaceModel(dir), "missing tensors", "model.layers.1.mlp.up_proj.weight");
    const untiedWithoutHead = tinyModelDir(tinyConfig, ["lm_head.weight"]).dir;
    expectOneLineError(() => readHuggingFaceModel(untiedWithoutHead), "lm_head.weight");
    const empty = tmp("hf-empty");
    writeFileSync(join(empty, "config.json"), JSON.stringify(tinyConfig));
    expectOneLineError(() => readHuggingFaceModel(empty), empty, "model.safetensors");
    expectOneLineError(() => readHuggingFaceModel(tmp("hf-none")), "config.json", "does not exist");
    const { dir: cutDir } = tinyModelDir();
    const file = join(cutDir, "model.safetensors");
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, bytes.length - 40));
    expectOneLineError(() => readHuggingFaceModel(cutDir), file, "out of range");
  });
});

// ---------------------------------------------------------------------------------------------
// loadBackbone

describe("loadBackbone", () => {
  it("detects a llama2.c .bin, finds tok512.bin beside it and hashes it to the README's sha256", async () => {
    const b = await loadBackbone(storiesBin);
    expect(b.source).toEqual({ format: "llama2c", path: storiesBin, id: "stories260K", sha256: STORIES_SHA256 });
    expect(b.config.vocabSize).toBe(512);
    expect(b.tokenizer.decode(b.tokenizer.encode("The cat sat.", { bos: true }))).toBe("The cat sat.");
  });

  it("detects a directory holding one model .bin and a tokenizer .bin", async () => {
    const dir = tmp("l2cdir");
    copyFileSync(storiesBin, join(dir, "model.bin"));
    copyFileSync(join(storiesDir, "tok512.bin"), join(dir, "tok512.bin"));
    const b = await loadBackbone(dir);
    expect(b.source.format).toBe("llama2c");
    expect(b.source.id).toBe("model");
    expect(b.source.sha256).toBe(STORIES_SHA256);
  });

  it("detects edge-lm as Hugging Face and hashes its shards in name order", async () => {
    const b = await loadBackbone(edgeLm);
    const hash = createHash("sha256");
    for (const f of ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]) hash.update(readFileSync(join(edgeLm, f)));
    expect(b.source).toEqual({ format: "huggingface", path: edgeLm, id: "edge-lm", sha256: hash.digest("hex") });
    expect(b.tokenizer.bosId).toBe(0);
    expect(b.config.numLayers).toBe(8);
  });

  it("rejects a missing path, an unknown layout and a .bin without tokenizer", async () => {
    const missing = join(tmp("bb"), "nowhere");
    await expectOneLineRejection(loadBackbone(missing), `model path ${missing} does not exist`, "config.json");
    const empty = tmp("bb-empty");
    await expectOneLineRejection(loadBackbone(empty), empty, "expected a directory with config.json");
    const lone = tmp("bb-lone");
    copyFileSync(storiesBin, join(lone, "m.bin"));
    await expectOneLineRejection(loadBackbone(join(lone, "m.bin")), "no llama2.c tokenizer", join(lone, "m.bin"));
    const txt = join(empty, "weights.txt");
    writeFileSync(txt, "x");
    await expectOneLineRejection(loadBackbone(txt), txt, "cannot tell the model format");
  });
});
