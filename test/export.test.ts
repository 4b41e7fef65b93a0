import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";
import * as ort from "onnxruntime-web";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import type { LlamaConfig } from "../src/backbone/config.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig, type EdgeInfiniteConfig } from "../src/memory/config.js";
import { Rng } from "../src/util/rng.js";
import { randArray, segmentInputs, startMemory, maxAbsDiff, type Host, type LayerIn } from "./fixtures/module-step-inputs.js";
import { oneLineError } from "./fixtures/module-params.js";
import { exportOnnx, irVersionFor } from "../src/export/onnx.js";
import { exportSafetensors } from "../src/export/safetensors.js";
import { moduleStepTfjs } from "../src/export/reference-step.js";
import { decodeModel } from "../src/export/onnx-builder.js";
import { identifyBackbone, loadBackbone } from "../src/loaders/index.js";
import { identifyBackbone as exportIdentifyBackbone } from "../src/export/index.js";
import { LlamaModel } from "../src/backbone/model.js";
import { edgeInfiniteLayer } from "../src/memory/edgeinfinite-attention.js";
import { initialState, type LayerState } from "../src/memory/state.js";

const H = 4;
const HKV = 2;
const D = 8;
const DIMS = { H, HKV, D };
const LAYERS = 2;

/** A fake backbone: the module only reads the head layout from it. */
function fakeBackbone(numLayers = LAYERS): LlamaConfig {
  return {
    architecture: "fake",
    vocabSize: 16,
    hiddenSize: H * D,
    intermediateSize: 64,
    numLayers,
    numHeads: H,
    numKvHeads: HKV,
    headDim: D,
    maxPositions: 512,
    ropeTheta: 10000,
    ropeScaling: null,
    rmsNormEps: 1e-5,
    tieWordEmbeddings: true,
    bosTokenId: 1,
    eosTokenId: 2,
  };
}

/** Non-identity projections (identity + noise) and gates spread around 0.5, so every path changes the output. */
function makeModule(partial: Partial<EdgeInfiniteConfig>, seed: number, numLayers = LAYERS): MemoryGatingModule {
  const module = new MemoryGatingModule(fakeBackbone(numLayers), makeEdgeInfiniteConfig({ windowTokens: 16, segmentLength: 4, sinkTokens: 2, ...partial }));
  const rng = new Rng(seed);
  for (const [name, v] of module.trainableVariables()) {
    const data = randArray(rng, v.size, name.includes("gate") ? 0.5 : 0.3);
    if (name.endsWith("map")) {
      const heads = v.shape[0]!;
      for (let h = 0; h < heads; h++) for (let i = 0; i < D; i++) data[h * D * D + i * D + i]! += 1;
    }
    tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
  }
  return module;
}

async function runOrt(path: string, feeds: Record<string, Host>): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(path);
  try {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, h] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor("float32", h.data, h.dims);
    const out = await session.run(ortFeeds);
    const res: Record<string, Float32Array> = {};
    for (const [name, t] of Object.entries(out)) res[name] = Float32Array.from(t.data as Float32Array);
    return res;
  } finally {
    await session.release();
  }
}

function runReference(module: MemoryGatingModule, layer: number, x: LayerIn, mem: { M: Host; z: Host }) {
  return tf.tidy(() => {
    const t4 = (h: Host) => tf.tensor4d(h.data, h.dims as [number, number, number, number]);
    const r = moduleStepTfjs(module, layer, {
      q: t4(x.q),
      k: t4(x.k),
      v: t4(x.v),
      localAttnOut: t4(x.local),
      M: t4(mem.M),
      z: tf.tensor3d(mem.z.data, mem.z.dims as [number, number, number]),
    });
    return { gatedOut: r.gatedOut.dataSync() as Float32Array, M: r.M.dataSync() as Float32Array, z: r.z.dataSync() as Float32Array };
  });
}

let dir: string;

beforeAll(async () => {
  await initBackend("cpu");
  dir = mkdtempSync(join(tmpdir(), "edgeinf-export-"));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Two consecutive segments through every exported layer: ONNX (onnxruntime) and the module's tfjs functions each
 * carry their own M/z from segment 1 into segment 2.
 */
async function compareTwoSegments(module: MemoryGatingModule, path: string, layers: number[], seed: number, B = 2) {
  const rng = new Rng(seed);
  const start = layers.map(() => startMemory(rng, DIMS, B));
  let ortMem = start.map((m) => ({ ...m }));
  let refMem = start.map((m) => ({ ...m }));
  let worst = 0;
  let gateEffect = 0;
  let memoryChange = 0;
  for (const [T, n] of [[3, 4], [2, 3]] as const) {
    const xs = layers.map(() => segmentInputs(rng, DIMS, B, T, n));
    const feeds: Record<string, Host> = {};
    layers.forEach((l, i) => {
      const p = `layer${l}.`;
      Object.assign(feeds, { [`${p}q`]: xs[i]!.q, [`${p}k`]: xs[i]!.k, [`${p}v`]: xs[i]!.v, [`${p}local_attn_out`]: xs[i]!.local, [`${p}M`]: ortMem[i]!.M, [`${p}z`]: ortMem[i]!.z });
    });
    const out = await runOrt(path, feeds);
    const nextOrt: typeof ortMem = [];
    const nextRef: typeof refMem = [];
    layers.forEach((l, i) => {
      const p = `layer${l}.`;
      const ref = runReference(module, l, xs[i]!, refMem[i]!);
      worst = Math.max(worst, maxAbsDiff(out[`${p}gated_out`]!, ref.gatedOut), maxAbsDiff(out[`${p}M_out`]!, ref.M), maxAbsDiff(out[`${p}z_out`]!, ref.z));
      gateEffect = Math.max(gateEffect, maxAbsDiff(ref.gatedOut, xs[i]!.local.data));
      memoryChange = Math.max(memoryChange, maxAbsDiff(ref.M, refMem[i]!.M.data));
      nextOrt.push({ M: { data: out[`${p}M_out`]!, dims: [B, HKV, D, D] }, z: { data: out[`${p}z_out`]!, dims: [B, HKV, D] } });
      nextRef.push({ M: { data: ref.M, dims: [B, HKV, D, D] }, z: { data: ref.z, dims: [B, HKV, D] } });
    });
    ortMem = nextOrt;
    refMem = nextRef;
  }
  return { worst, gateEffect, memoryChange };
}

describe("exportOnnx vs the tfjs module in onnxruntime", () => {
  for (const gateKind of ["scalar", "learned"] as const) {
    for (const memoryRule of ["linear", "delta"] as const) {
      it(`${gateKind} gate, ${memoryRule} rule, GQA 4/2, two segments, two layers: max abs error < 1e-5`, async () => {
        const module = makeModule({ gateKind, memoryRule }, 11);
        try {
          const path = join(dir, `${gateKind}-${memoryRule}.onnx`);
          const res = exportOnnx(module, { layers: "all", outPath: path });
          expect(res.bytes).toBe(readFileSync(path).length);
          const r = await compareTwoSegments(module, path, [0, 1], 5);
          expect(r.worst).toBeLessThan(1e-5);
          // the comparison is only meaningful if the gate and the memory write both move the numbers
          expect(r.gateEffect).toBeGreaterThan(1e-2);
          expect(r.memoryChange).toBeGreaterThan(1e-2);
          console.log(`${gateKind}/${memoryRule}: max abs error ${r.worst.toExponential(2)}`);
        } finally {
          module.dispose();
        }
      });
    }
  }
  it("the two memory rules give different memories in onnxruntime (the rule is really in the graph)", async () => {
    const memories: Float32Array[] = [];
    for (const memoryRule of ["linear", "delta"] as const) {
      const module = makeModule({ memoryRule }, 21, 1); // same seed: same weights
      try {
        const path = join(dir, `rule-${memoryRule}.onnx`);
        exportOnnx(module, { layers: "all", outPath: path });
        const rng = new Rng(8); // same inputs
        const x = segmentInputs(rng, DIMS, 1, 2, 3);
        const mem = startMemory(rng, DIMS, 1);
        const out = await runOrt(path, { "layer0.q": x.q, "layer0.k": x.k, "layer0.v": x.v, "layer0.local_attn_out": x.local, "layer0.M": mem.M, "layer0.z": mem.z });
        memories.push(out["layer0.M_out"]!);
      } finally {
        module.dispose();
      }
    }
    expect(maxAbsDiff(memories[0]!, memories[1]!)).toBeGreaterThan(1e-2);
  });

  it("frozen (identity) projections, a layer subset, opset 13 and batch 1 also match", async () => {
    const module = makeModule({ gateKind: "learned", memoryRule: "delta", trainProjections: { q: true, k: false, v: true } }, 12, 3);
    try {
      const path = join(dir, "subset.onnx");
      const res = exportOnnx(module, { layers: [2], outPath: path, opset: 13 });
      expect(res.graphInputs).toEqual(["layer2.q", "layer2.k", "layer2.v", "layer2.local_attn_out", "layer2.M", "layer2.z"]);
      expect(res.graphOutputs).toEqual(["layer2.gated_out", "layer2.M_out", "layer2.z_out"]);
      const r = await compareTwoSegments(module, path, [2], 6, 1);
      expect(r.worst).toBeLessThan(1e-5);
    } finally {
      module.dispose();
    }
  });

  it("no evicted tokens (n = 0) leaves M and z unchanged", async () => {
    const module = makeModule({ gateKind: "scalar", memoryRule: "delta" }, 13, 1);
    try {
      const path = join(dir, "n0.onnx");
      exportOnnx(module, { layers: "all", outPath: path });
      const rng = new Rng(3);
      const x = segmentInputs(rng, DIMS, 1, 2, 0);
      const mem = startMemory(rng, DIMS, 1);
      const out = await runOrt(path, { "layer0.q": x.q, "layer0.k": x.k, "layer0.v": x.v, "layer0.local_attn_out": x.local, "layer0.M": mem.M, "layer0.z": mem.z });
      expect(maxAbsDiff(out["layer0.M_out"]!, mem.M.data)).toBe(0);
      expect(maxAbsDiff(out["layer0.z_out"]!, mem.z.data)).toBe(0);
      const ref = runReference(module, 0, x, mem);
      expect(maxAbsDiff(out["layer0.gated_out"]!, ref.gatedOut)).toBeLessThan(1e-5);
    } finally {
      module.dispose();
    }
  });
});

describe("exported ONNX file contents", () => {
  it("names weights as the module does, documents everything, and declares the dynamic axes", () => {
    const module = makeModule({ gateKind: "learned", memoryRule: "linear" }, 14);
    try {
      const path = join(dir, "contents.onnx");
      exportOnnx(module, { layers: "all", outPath: path, metadata: { run: "test-run-7" } });
      const model = decodeModel(readFileSync(path));
      expect(model.opsetImport.map((o) => Number(o.version))).toEqual([17]);
      expect(Number(model.irVersion)).toBe(8);
      const g = model.graph!;
      expect(g.docString!.length).toBeGreaterThan(20);
      const inits = new Map(g.initializer!.map((t) => [t.name, t]));
      for (let l = 0; l < LAYERS; l++) {
        for (const suffix of ["memory.query_map", "memory.key_map", "memory.value_map", "gate.bias", "gate.weight"]) {
          const name = `layers.${l}.${suffix}`;
          expect(inits.has(name), name).toBe(true);
          // the stored bytes are the module's values
          const t = inits.get(name)!;
          const raw = t.rawData!;
          const stored = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
          const want = module.tensors().get(name)!.dataSync() as Float32Array;
          expect(maxAbsDiff(stored, want)).toBe(0);
          expect(t.dims!.map(Number)).toEqual(module.tensors().get(name)!.shape);
        }
      }
      for (const t of g.initializer!) expect(t.docString ?? "", t.name ?? "").not.toBe("");
      for (const vi of [...g.input!, ...g.output!]) expect(vi.docString ?? "", vi.name ?? "").not.toBe("");
      const dimsOf = (name: string) => g.input!.find((i) => i.name === name)!.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue));
      expect(dimsOf("layer1.q")).toEqual(["batch", H, "segment", D]);
      expect(dimsOf("layer1.k")).toEqual(["batch", HKV, "evicted", D]);
      expect(dimsOf("layer1.M")).toEqual(["batch", HKV, D, D]);
      const meta = Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value]));
      expect(meta.run).toBe("test-run-7");
      expect(meta["edgeinfinite.gate_kind"]).toBe("learned");
      expect(meta["edgeinfinite.memory_rule"]).toBe("linear");
    } finally {
      module.dispose();
    }
  });

  it("a scalar-gate export has no gate weight", () => {
    const module = makeModule({ gateKind: "scalar" }, 15, 1);
    try {
      const path = join(dir, "scalar.onnx");
      exportOnnx(module, { layers: "all", outPath: path });
      const names = decodeModel(readFileSync(path)).graph!.initializer!.map((t) => t.name);
      expect(names).toContain("layers.0.gate.bias");
      expect(names).not.toContain("layers.0.gate.weight");
    } finally {
      module.dispose();
    }
  });

  it("passes the ONNX checker (full_check) at every opset the installed checker knows, when python's onnx package is available", (ctx) => {
    const python = ["python3", "/usr/bin/python3"].find((p) => spawnSync(p, ["-c", "import onnx"], { encoding: "utf8" }).status === 0);
    if (!python) {
      console.log("skipping ONNX checker test: no python3 with the onnx package (apt-get install python3-onnx)");
      ctx.skip();
      return;
    }
    // the checker refuses files whose IR version is newer than its own (python3-onnx 1.12: IR 8, opsets ≤ 18 here)
    const checkerIr = Number(spawnSync(python, ["-c", "import onnx; print(onnx.IR_VERSION)"], { encoding: "utf8" }).stdout.trim());
    const opsets = [13, 14, 15, 16, 17, 18, 19, 20, 21].filter((o) => irVersionFor(o) <= checkerIr);
    expect(opsets).toContain(17);
    const module = makeModule({ gateKind: "learned", memoryRule: "delta" }, 16);
    try {
      const script = [
        "import sys, onnx",
        "for path in sys.argv[1:]:",
        "    m = onnx.load(path)",
        "    onnx.checker.check_model(m, full_check=True)",
        "    print(m.opset_import[0].version, m.ir_version, len(m.graph.node), len(m.graph.initializer))",
      ].join("\n");
      const paths = opsets.map((opset) => {
        const path = join(dir, `checker-${opset}.onnx`);
        exportOnnx(module, { layers: "all", outPath: path, opset });
        return path;
      });
      const r = spawnSync(python, ["-c", script, ...paths], { encoding: "utf8" });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      const lines = r.stdout.trim().split("\n");
      expect(lines.map((l) => Number(l.split(" ")[0]))).toEqual(opsets);
      for (const l of lines) expect(l).toMatch(/^\d+ \d+ \d+ \d+$/);
      console.log(`ONNX checker (IR ${checkerIr}) passed opsets ${opsets.join(", ")}`);
    } finally {
      module.dispose();
    }
  });

  it("declares the IR version of the ONNX release that introduced the opset", () => {
    expect([13, 17, 18, 19, 20, 21].map(irVersionFor)).toEqual([8, 8, 8, 9, 9, 10]);
  });
});

describe("export errors", () => {
  let module: MemoryGatingModule;
  beforeAll(() => {
    module = makeModule({}, 17);
  });
  afterAll(() => module.dispose());

  it("an unwritable path (under a file) fails with one line and leaves no file", () => {
    const blocker = join(dir, "blocker");
    writeFileSync(blocker, "not a directory");
    const before = readdirSync(dir).sort();
    oneLineError(() => exportOnnx(module, { layers: "all", outPath: join(blocker, "m.onnx") }), /blocker/);
    oneLineError(() => exportSafetensors(module, join(blocker, "m.safetensors")), /blocker/);
    expect(readdirSync(dir).sort()).toEqual(before);
    expect(readFileSync(blocker, "utf8")).toBe("not a directory");
  });

  it("rejects out-of-range, fractional, duplicate or empty layer lists", () => {
    const out = join(dir, "never.onnx");
    oneLineError(() => exportOnnx(module, { layers: [LAYERS], outPath: out }), /layer 2 is out of range.*0 to 1/);
    oneLineError(() => exportOnnx(module, { layers: [-1], outPath: out }), /layer -1 is out of range/);
    oneLineError(() => exportOnnx(module, { layers: [0.5], outPath: out }), /layer 0.5 is out of range/);
    oneLineError(() => exportOnnx(module, { layers: [1, 1], outPath: out }), /duplicates/);
    oneLineError(() => exportOnnx(module, { layers: [], outPath: out }), /no layers/);
    expect(existsSync(out)).toBe(false);
  });

  it("rejects an unsupported opset and post-RoPE memory keys", () => {
    const out = join(dir, "never.onnx");
    oneLineError(() => exportOnnx(module, { layers: "all", outPath: out, opset: 12 }), /opset 12.*13 to 21/);
    const post = makeModule({ memoryKeys: "post-rope" }, 18, 1);
    try {
      oneLineError(() => exportOnnx(post, { layers: "all", outPath: out }), /post-rope.*pre-rope/);
    } finally {
      post.dispose();
    }
    expect(existsSync(out)).toBe(false);
  });

  it("the reference step rejects a bad layer and mismatched shapes", () => {
    const q = tf.zeros([1, H, 2, D]) as tf.Tensor4D;
    const kv = tf.zeros([1, HKV, 1, D]) as tf.Tensor4D;
    const M = tf.zeros([1, HKV, D, D]) as tf.Tensor4D;
    const z = tf.zeros([1, HKV, D]) as tf.Tensor3D;
    oneLineError(() => moduleStepTfjs(module, 9, { q, k: kv, v: kv, localAttnOut: q, M, z }), /layer 9 is out of range/);
    oneLineError(() => moduleStepTfjs(module, 0, { q, k: kv, v: kv, localAttnOut: q, M, z: tf.zeros([1, HKV, D + 1]) as tf.Tensor3D }), /z has shape \[1, 2, 9\]/);
    tf.dispose([q, kv, M, z]);
  });
});

describe("exportSafetensors", () => {
  it("writes every trainable tensor as F32 under its module name with metadata, and loads back", () => {
    const module = makeModule({ gateKind: "learned" }, 19);
    const fresh = new MemoryGatingModule(fakeBackbone(), module.config);
    try {
      const path = join(dir, "module.safetensors");
      const res = exportSafetensors(module, path, { run: "r1" });
      const bytes = readFileSync(path);
      expect(res.bytes).toBe(bytes.length);
      // parse the file by the format's definition: u64 LE header length, JSON header, raw data
      const headerLen = Number(bytes.readBigUInt64LE(0));
      const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString("utf8")) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> & { __metadata__: Record<string, string> };
      expect(header.__metadata__.run).toBe("r1");
      expect(header.__metadata__["edgeinfinite.gate_kind"]).toBe("learned");
      const names = Object.keys(header).filter((k) => k !== "__metadata__").sort();
      expect(names).toEqual([...module.trainableVariables().keys()].sort());
      expect(res.tensors).toEqual(names);
      for (const name of names) {
        const e = header[name]!;
        expect(e.dtype).toBe("F32");
        const v = module.trainableVariables().get(name)!;
        expect(e.shape).toEqual(v.shape);
        const start = 8 + headerLen + e.data_offsets[0];
        const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset + start, bytes.byteOffset + 8 + headerLen + e.data_offsets[1]));
        expect(maxAbsDiff(data, v.dataSync() as Float32Array)).toBe(0);
      }
      // the names are the ones module.load understands
      const loaded = new Map(names.map((name) => {
        const e = header[name]!;
        const start = bytes.byteOffset + 8 + headerLen + e.data_offsets[0];
        return [name, { shape: e.shape, data: new Float32Array(bytes.buffer.slice(start, start + (e.data_offsets[1] - e.data_offsets[0]))) }];
      }));
      fresh.load(loaded);
      for (const name of names) expect(maxAbsDiff(fresh.tensors().get(name)!.dataSync() as Float32Array, module.tensors().get(name)!.dataSync() as Float32Array)).toBe(0);
    } finally {
      module.dispose();
      fresh.dispose();
    }
  });
});

describe("the exported graph is the module's inference step inside edgeInfiniteLayer", () => {
  it("four segments of stories260K layer 1 (sink 2, window 8, segment 5): gated output and memory match edgeInfiniteLayer, max abs error < 1e-5", async () => {
    const storiesPath = join(dirname(fileURLToPath(import.meta.url)), "../../shared/models/stories260K/stories260K.bin");
    const backbone = await loadBackbone(storiesPath);
    const model = LlamaModel.fromHost(backbone.config, backbone.weights);
    const { numHeads: h, numKvHeads: hkv, headDim: d } = backbone.config;
    const module = new MemoryGatingModule(backbone.config, makeEdgeInfiniteConfig({ sinkTokens: 2, windowTokens: 8, segmentLength: 5, gateKind: "learned", memoryRule: "delta" }));
    const rng = new Rng(51);
    for (const [name, v] of module.trainableVariables()) {
      const data = randArray(rng, v.size, name.includes("gate") ? 0.5 : 0.3);
      if (name.endsWith("map")) for (let i = 0; i < v.shape[0]! * d; i++) data[i * d + (i % d)]! += 1;
      tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
    }
    const layer = 1;
    const path = join(dir, "in-layer.onnx");
    exportOnnx(module, { layers: [layer], outPath: path });
    const session = await ort.InferenceSession.create(path);
    tf.engine().startScope();
    try {
      let st: LayerState = initialState(backbone.config).layers[layer]!;
      let worst = 0;
      let evictedTotal = 0;
      let gateEffect = 0;
      for (let s = 0; s < 4; s++) {
        const T = 5;
        const p = { q: tf.tensor3d(randArray(rng, h * T * d, 1), [h, T, d]), k: tf.tensor3d(randArray(rng, hkv * T * d, 1), [hkv, T, d]), v: tf.tensor3d(randArray(rng, hkv * T * d, 1), [hkv, T, d]) };
        // gate 0 gives exactly the local attention output; the real gate gives the gated output and the next state
        const local = (await edgeInfiniteLayer(model, module, layer, p, st, { forceGate: 0 })).out;
        const real = await edgeInfiniteLayer(model, module, layer, p, st);
        // the tokens that left the window this segment: the oldest of [window | segment after the sink fill]
        const toSink = real.next.sinkLength - st.sinkLength;
        const n = st.windowLength + (T - toSink) - real.next.windowLength;
        evictedTotal += n;
        const tail = (x: tf.Tensor3D) => tf.slice(x, [0, toSink, 0], [hkv, T - toSink, d]) as tf.Tensor3D;
        const joined = (w: tf.Tensor3D | null, x: tf.Tensor3D) => (w ? tf.concat([w, tail(x)], 1) : tail(x));
        const evK = tf.slice(joined(st.windowK, p.k), [0, 0, 0], [hkv, n, d]);
        const evV = tf.slice(joined(st.windowV, p.v), [0, 0, 0], [hkv, n, d]);
        const t = (x: tf.Tensor, dims: number[]) => new ort.Tensor("float32", Float32Array.from(x.dataSync()), dims);
        const out = await session.run({
          [`layer${layer}.q`]: t(p.q, [1, h, T, d]),
          [`layer${layer}.k`]: t(evK, [1, hkv, n, d]),
          [`layer${layer}.v`]: t(evV, [1, hkv, n, d]),
          [`layer${layer}.local_attn_out`]: t(tf.transpose(local.reshape([T, h, d]), [1, 0, 2]), [1, h, T, d]),
          [`layer${layer}.M`]: t(st.memory.M, [1, hkv, d, d]),
          [`layer${layer}.z`]: t(st.memory.z, [1, hkv, d]),
        });
        const gated = tf.transpose(tf.tensor3d(out[`layer${layer}.gated_out`]!.data as Float32Array, [h, T, d]), [1, 0, 2]).reshape([T, h * d]);
        worst = Math.max(
          worst,
          maxAbsDiff(gated.dataSync() as Float32Array, real.out.dataSync() as Float32Array),
          maxAbsDiff(out[`layer${layer}.M_out`]!.data as Float32Array, real.next.memory.M.dataSync() as Float32Array),
          maxAbsDiff(out[`layer${layer}.z_out`]!.data as Float32Array, real.next.memory.z.dataSync() as Float32Array),
        );
        gateEffect = Math.max(gateEffect, maxAbsDiff(real.out.dataSync() as Float32Array, local.dataSync() as Float32Array));
        st = real.next;
      }
      console.log(`in-layer: ${evictedTotal} tokens compressed over 4 segments, max abs error ${worst.toExponential(2)}`);
      expect(evictedTotal).toBe(4 * 5 - 2 - 8); // every token beyond sink + window went through the graph's memory write
      expect(worst).toBeLessThan(1e-5);
      expect(gateEffect).toBeGreaterThan(1e-2);
    } finally {
      tf.engine().endScope();
      await session.release();
      module.dispose();
      model.dispose();
    }
  });
});

describe("identifyBackbone (loaders/index.ts)", () => {
  const models = join(dirname(fileURLToPath(import.meta.url)), "../../shared/models");
  for (const spec of ["stories260K/stories260K.bin", "edge-lm"]) {
    it(`gives ${spec} the config, path, id and sha256 loadBackbone records, without reading the weights`, async () => {
      const path = join(models, spec);
      const id = await identifyBackbone(path);
      const loaded = await loadBackbone(path);
      expect(id.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(id.sha256).toBe(loaded.source.sha256);
      expect({ format: id.format, path: id.path, id: id.id }).toEqual({ format: loaded.source.format, path: loaded.source.path, id: loaded.source.id });
      expect(id.config).toEqual(loaded.config);
      expect(exportIdentifyBackbone).toBe(identifyBackbone); // the export uses the same one
    });
  }

  it("refuses a truncated llama2.c file from its size, as the loader does", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ei-ident-"));
    const bin = readFileSync(join(models, "stories260K/stories260K.bin"));
    writeFileSync(join(dir, "cut.bin"), bin.subarray(0, bin.length - 8));
    await expect(identifyBackbone(join(dir, "cut.bin"))).rejects.toThrow(/is truncated: expected \d+ bytes from its header, got \d+/);
  });
});
