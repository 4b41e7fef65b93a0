/**
 * `edgeinf export onnx|safetensors` end to end: the BUILT CLI (node dist/src/cli/main.js, rebuilt first when older
 * than src/) runs as a child process on checkpoints written by saveCheckpoint; its output files are
 * run in onnxruntime (onnxruntime-web: its CPU kernels compiled to WebAssembly) / read back and compared with the module; bad input must fail with one line and no file.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { spawnSync } from "node:child_process";
import * as ort from "onnxruntime-web";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { loadBackbone, type LoadedBackbone } from "../src/loaders/index.js";
import { readSafetensors, readSafetensorsHeader } from "../src/loaders/safetensors.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig, type EdgeInfiniteConfig } from "../src/memory/config.js";
import { saveCheckpoint, writeCheckpointLayout } from "../src/training/checkpoint.js";
import { moduleStepTfjs } from "../src/export/reference-step.js";
import { decodeModel } from "../src/export/onnx-builder.js";
import { Rng } from "../src/util/rng.js";
import { randArray, segmentInputs, startMemory, maxAbsDiff, type Host, type LayerIn } from "./fixtures/module-step-inputs.js";
import { ROOT, ensureFreshBuild, expectOneLineError, runCli } from "./fixtures/cli.js";

const storiesPath = resolve(ROOT, "../shared/models/stories260K/stories260K.bin");
const edgeLmPath = resolve(ROOT, "../shared/models/edge-lm");

// ---------------------------------------------------------------------------------------------------------------
// fixtures: checkpoints of modules with random non-identity weights for the stories260K backbone

let dir: string;
let stories: LoadedBackbone;
let H: number;
let HKV: number;
let D: number;
const dims = () => ({ H, HKV, D });
let NUM_LAYERS: number;

function makeModule(partial: Partial<EdgeInfiniteConfig>, seed: number): MemoryGatingModule {
  const module = new MemoryGatingModule(stories.config, makeEdgeInfiniteConfig({ sinkTokens: 2, windowTokens: 16, segmentLength: 4, ...partial }));
  const rng = new Rng(seed);
  for (const [name, v] of module.trainableVariables()) {
    const data = randArray(rng, v.size, name.includes("gate") ? 0.5 : 0.3);
    if (name.endsWith("map")) {
      for (let h = 0; h < v.shape[0]!; h++) for (let i = 0; i < D; i++) data[h * D * D + i * D + i]! += 1;
    }
    tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
  }
  return module;
}

/** A training-style checkpoint folder (latest.json + step folder) for `module`, recorded against `backbone`. */
async function writeCheckpoint(name: string, module: MemoryGatingModule, backbone: { id: string; sha256: string; format: string }, recordedPath: string, step = 7): Promise<string> {
  const out = join(dir, "ckpt", name);
  await saveCheckpoint(out, module, { step, backbone, recipe: { name, backbone: recordedPath } });
  return out;
}

interface Fixture {
  module: MemoryGatingModule;
  ckpt: string;
}

let learnedDelta: Fixture;
let scalarLinear: Fixture;
let movedBackbone: string;
let changedBackbone: string;

// ---------------------------------------------------------------------------------------------------------------
// onnxruntime vs moduleStepTfjs

function reference(module: MemoryGatingModule, layer: number, x: LayerIn, mem: { M: Host; z: Host }) {
  return tf.tidy(() => {
    const t4 = (h: Host) => tf.tensor4d(h.data, h.dims as [number, number, number, number]);
    const r = moduleStepTfjs(module, layer, { q: t4(x.q), k: t4(x.k), v: t4(x.v), localAttnOut: t4(x.local), M: t4(mem.M), z: tf.tensor3d(mem.z.data, mem.z.dims as [number, number, number]) });
    return { gatedOut: r.gatedOut.dataSync() as Float32Array, M: r.M.dataSync() as Float32Array, z: r.z.dataSync() as Float32Array };
  });
}

/**
 * Two consecutive segments through every exported layer of the CLI's file: onnxruntime and the module's tfjs step
 * each carry their own M/z from segment 1 into segment 2.
 */
async function compareTwoSegments(module: MemoryGatingModule, onnxPath: string, layers: number[], seed: number, B: number) {
  const session = await ort.InferenceSession.create(onnxPath);
  try {
    const rng = new Rng(seed);
    const start = layers.map(() => startMemory(rng, dims(), B));
    let ortMem = start;
    let refMem = start;
    let worst = 0;
    let gateEffect = 0;
    let memoryChange = 0;
    for (const [T, n] of [[5, 4], [3, 6]] as const) {
      const xs = layers.map(() => segmentInputs(rng, dims(), B, T, n));
      const feeds: Record<string, ort.Tensor> = {};
      const t = (h: Host) => new ort.Tensor("float32", h.data, h.dims);
      layers.forEach((l, i) => {
        const p = `layer${l}.`;
        Object.assign(feeds, { [`${p}q`]: t(xs[i]!.q), [`${p}k`]: t(xs[i]!.k), [`${p}v`]: t(xs[i]!.v), [`${p}local_attn_out`]: t(xs[i]!.local), [`${p}M`]: t(ortMem[i]!.M), [`${p}z`]: t(ortMem[i]!.z) });
      });
      const out = await session.run(feeds);
      const get = (name: string) => Float32Array.from(out[name]!.data as Float32Array);
      const nextOrt: typeof ortMem = [];
      const nextRef: typeof refMem = [];
      layers.forEach((l, i) => {
        const p = `layer${l}.`;
        const ref = reference(module, l, xs[i]!, refMem[i]!);
        const [gated, M, z] = [get(`${p}gated_out`), get(`${p}M_out`), get(`${p}z_out`)];
        worst = Math.max(worst, maxAbsDiff(gated, ref.gatedOut), maxAbsDiff(M, ref.M), maxAbsDiff(z, ref.z));
        gateEffect = Math.max(gateEffect, maxAbsDiff(ref.gatedOut, xs[i]!.local.data));
        memoryChange = Math.max(memoryChange, maxAbsDiff(ref.M, refMem[i]!.M.data));
        nextOrt.push({ M: { data: M, dims: [B, HKV, D, D] }, z: { data: z, dims: [B, HKV, D] } });
        nextRef.push({ M: { data: ref.M, dims: [B, HKV, D, D] }, z: { data: ref.z, dims: [B, HKV, D] } });
      });
      ortMem = nextOrt;
      refMem = nextRef;
    }
    return { worst, gateEffect, memoryChange };
  } finally {
    await session.release();
  }
}

/** A python3 with the onnx package (Debian's python3-onnx lives in /usr/bin/python3, not in a pyenv). */
const python = ["/usr/bin/python3", "python3"].find((p) => spawnSync(p, ["-c", "import onnx"], { encoding: "utf8" }).status === 0);

function onnxChecker(path: string): { status: number | null; stdout: string; stderr: string } {
  const script = [
    "import sys, onnx",
    "m = onnx.load(sys.argv[1])",
    "onnx.checker.check_model(m, full_check=True)",
    "print('ok', len(m.graph.node), len(m.graph.initializer), m.opset_import[0].version)",
  ].join("\n");
  return spawnSync(python!, ["-c", script, path], { encoding: "utf8" });
}

// ---------------------------------------------------------------------------------------------------------------

beforeAll(async () => {
  ensureFreshBuild();
  await initBackend("cpu", { log: () => {} });
  stories = await loadBackbone(storiesPath);
  ({ numHeads: H, numKvHeads: HKV, headDim: D, numLayers: NUM_LAYERS } = stories.config);
  dir = mkdtempSync(join(tmpdir(), "edgeinf-cli-export-"));
  const id = { id: stories.source.id, sha256: stories.source.sha256, format: stories.source.format };
  const a = makeModule({ gateKind: "learned", memoryRule: "delta" }, 31);
  learnedDelta = { module: a, ckpt: await writeCheckpoint("learned-delta", a, id, storiesPath) };
  const b = makeModule({ gateKind: "scalar", memoryRule: "linear", trainProjections: { q: true, k: false, v: true } }, 32);
  scalarLinear = { module: b, ckpt: await writeCheckpoint("scalar-linear", b, id, storiesPath, 12) };
  movedBackbone = await writeCheckpoint("moved", a, id, join(dir, "gone/stories260K.bin"));
  changedBackbone = await writeCheckpoint("changed", a, { ...id, sha256: "ab".repeat(32) }, storiesPath);
}, 180_000);

afterAll(() => {
  learnedDelta?.module.dispose();
  scalarLinear?.module.dispose();
  if (dir) {
    chmodSync(dir, 0o700);
    rmSync(dir, { recursive: true, force: true });
  }
});

function freshOutDir(name: string): string {
  const out = join(dir, "out", name);
  mkdirSync(out, { recursive: true });
  return out;
}

describe("edgeinf export onnx", () => {
  it("learned gate, delta rule, all layers (backbone from the checkpoint): onnxruntime matches the tfjs module step over two segments, max abs error < 1e-5", async () => {
    const outDir = freshOutDir("onnx-all");
    const path = join(outDir, "memory.onnx");
    const r = await runCli(["export", "onnx", "--checkpoint", learnedDelta.ckpt, "--out", path]);
    expect(r.stderr).toMatch(/^wrote .*memory\.onnx .*opset 17, 5 layer\(s\), step 7/);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout) as { path: string; bytes: number; opset: number; layers: number[]; backbone: { id: string; verifiedFrom: string }; inputs: string[]; outputs: string[] };
    expect(summary).toMatchObject({ path, opset: 17, layers: [0, 1, 2, 3, 4], backbone: { id: "stories260K", verifiedFrom: "recorded" }, gateKind: "learned", memoryRule: "delta" });
    expect(summary.bytes).toBe(statSync(path).size);
    expect(summary.inputs).toHaveLength(6 * NUM_LAYERS);
    expect(readdirSync(outDir)).toEqual(["memory.onnx"]); // no temp or probe file left

    const cmp = await compareTwoSegments(learnedDelta.module, path, [0, 1, 2, 3, 4], 41, 2);
    console.log(`CLI onnx (learned/delta, 5 layers, batch 2, two segments): max abs error ${cmp.worst.toExponential(2)}`);
    expect(cmp.worst).toBeLessThan(1e-5);
    expect(cmp.gateEffect).toBeGreaterThan(1e-2); // the gate and the memory write both move the numbers
    expect(cmp.memoryChange).toBeGreaterThan(1e-2);

    // weights and provenance in the file
    const model = decodeModel(readFileSync(path));
    const meta = Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value]));
    expect(meta).toMatchObject({ "edgeinfinite.backbone_id": "stories260K", "edgeinfinite.backbone_sha256": stories.source.sha256, "edgeinfinite.checkpoint_step": "7", "edgeinfinite.gate_kind": "learned", "edgeinfinite.memory_rule": "delta" });
    const inits = new Map(model.graph!.initializer!.map((t) => [t.name, t]));
    for (const [name, v] of learnedDelta.module.trainableVariables()) {
      const t = inits.get(name)!;
      expect(t, name).toBeDefined();
      expect(t.dims!.map(Number)).toEqual(v.shape);
      expect(t.docString!.length, name).toBeGreaterThan(10);
      const raw = t.rawData!;
      expect(maxAbsDiff(new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)), v.dataSync() as Float32Array)).toBe(0);
    }
  });

  it("scalar gate, linear rule, --layer 3 --opset 13 --model, frozen key map: matches over two segments", async () => {
    const outDir = freshOutDir("onnx-layer3");
    const path = join(outDir, "layer3.onnx");
    const r = await runCli(["export", "onnx", "-c", scalarLinear.ckpt, "-m", storiesPath, "-o", path, "--layer", "3", "--opset", "13"]);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { inputs: string[]; outputs: string[]; backbone: { verifiedFrom: string }; step: number };
    expect(summary.inputs).toEqual(["layer3.q", "layer3.k", "layer3.v", "layer3.local_attn_out", "layer3.M", "layer3.z"]);
    expect(summary.outputs).toEqual(["layer3.gated_out", "layer3.M_out", "layer3.z_out"]);
    expect(summary.backbone.verifiedFrom).toBe("model");
    expect(summary.step).toBe(12);
    expect(decodeModel(readFileSync(path)).opsetImport.map((o) => Number(o.version))).toEqual([13]);
    const cmp = await compareTwoSegments(scalarLinear.module, path, [3], 42, 1);
    console.log(`CLI onnx (scalar/linear, layer 3, opset 13): max abs error ${cmp.worst.toExponential(2)}`);
    expect(cmp.worst).toBeLessThan(1e-5);
    expect(cmp.gateEffect).toBeGreaterThan(1e-2);
    expect(cmp.memoryChange).toBeGreaterThan(1e-2);
  });

  it("the CLI's files pass onnx.checker.check_model(full_check=True)", async (ctx) => {
    if (!python) {
      console.log("skipping the ONNX checker: no python3 with the onnx package (apt-get install python3-onnx)");
      ctx.skip();
      return;
    }
    const outDir = freshOutDir("onnx-checker");
    for (const [ck, extra] of [[learnedDelta.ckpt, []], [scalarLinear.ckpt, ["--layer", "0,4", "--opset", "13"]]] as const) {
      const path = join(outDir, "checked.onnx");
      const r = await runCli(["export", "onnx", "-c", ck, "-o", path, ...extra]);
      expect(r.code, r.stderr).toBe(0);
      const c = onnxChecker(path);
      expect(c.stderr).toBe("");
      expect(c.status).toBe(0);
      expect(c.stdout.trim()).toMatch(/^ok \d+ \d+ (17|13)$/);
    }
  });
});

describe("edgeinf export safetensors", () => {
  it("writes the checkpoint's trainable tensors (names, shapes, values) with backbone and settings metadata", async () => {
    const outDir = freshOutDir("st");
    const path = join(outDir, "module.safetensors");
    const r = await runCli(["export", "safetensors", "--checkpoint", learnedDelta.ckpt, "--out", path]);
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(outDir)).toEqual(["module.safetensors"]);
    const written = readSafetensors(path);
    const source = readSafetensors(join(learnedDelta.ckpt, "step-000007", "module.safetensors"));
    expect([...written.keys()].sort()).toEqual([...source.keys()].sort());
    expect([...written.keys()].sort()).toEqual([...learnedDelta.module.trainableVariables().keys()].sort());
    for (const [name, t] of source) {
      const w = written.get(name)!;
      expect(w.dtype, name).toBe("F32");
      expect(w.shape, name).toEqual(t.shape);
      expect(maxAbsDiff(w.data, t.data), name).toBe(0);
    }
    const meta = readSafetensorsHeader(path).metadata;
    expect(meta).toMatchObject({ "edgeinfinite.backbone_sha256": stories.source.sha256, "edgeinfinite.gate_kind": "learned", "edgeinfinite.checkpoint_step": "7" });
    expect((JSON.parse(r.stdout) as { tensors: string[] }).tensors).toEqual([...source.keys()].sort());
    // a checkpoint with a layout (edgeinf layout) exports the settings it runs at, the trained tensors unchanged
    const cfg = learnedDelta.module.config;
    expect(meta["edgeinfinite.window_tokens"]).toBe(String(cfg.windowTokens));
    const layers = stories.config.numLayers;
    expect(meta).toMatchObject({
      "edgeinfinite.read_mode": cfg.readMode,
      "edgeinfinite.feature_map": cfg.featureMap,
      "edgeinfinite.exact_tokens_per_layer": new Array(layers).fill(String(cfg.exactTokens)).join(","),
      "edgeinfinite.exact_spread": cfg.exactSpread.join(","),
    });
    const withLayout = join(freshOutDir("st-layout-ckpt"), "ckpt");
    cpSync(learnedDelta.ckpt, withLayout, { recursive: true });
    const window = cfg.windowTokens + cfg.segmentLength;
    const perLayer = Array.from({ length: layers }, (_, l) => l + 1);
    writeCheckpointLayout(withLayout, { windowTokens: window, exactTokens: 2, exactSpread: [1, 0], exactTokensPerLayer: perLayer });
    const path2 = join(freshOutDir("st-layout"), "module.safetensors");
    const r2 = await runCli(["export", "safetensors", "--checkpoint", withLayout, "--out", path2]);
    expect(r2.code, r2.stderr).toBe(0);
    expect(readSafetensorsHeader(path2).metadata).toMatchObject({
      "edgeinfinite.window_tokens": String(window),
      "edgeinfinite.routing_threshold": String(cfg.sinkTokens + window),
      "edgeinfinite.segment_length": String(cfg.segmentLength),
      "edgeinfinite.exact_tokens_per_layer": perLayer.join(","),
      "edgeinfinite.exact_spread": "1,0",
    });
    const written2 = readSafetensors(path2);
    for (const [name, t] of source) expect(maxAbsDiff(written2.get(name)!.data, t.data), name).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// bad input: exit 1, one stderr line naming the problem and the fix, no output (nor temp/probe) file

interface BadCase {
  name: string;
  /** Builds the argument list; `out` is a fresh empty directory for the case. */
  args: (out: string) => string[];
  error: RegExp;
  /** Where no file may appear (default: the case's out directory stays empty). */
  noFile?: (out: string) => string;
}

const isRoot = process.getuid?.() === 0;

const badCases: BadCase[] = [
  {
    name: "checkpoint directory missing",
    args: (out) => ["export", "onnx", "-c", join(dir, "ckpt/nope"), "-o", join(out, "m.onnx")],
    error: /^error: checkpoint .*ckpt\/nope does not exist — pass a folder written by edgeinf train/,
  },
  {
    name: "checkpoint directory missing (safetensors)",
    args: (out) => ["export", "safetensors", "-c", join(dir, "ckpt/nope"), "-o", join(out, "m.safetensors")],
    error: /^error: checkpoint .*ckpt\/nope does not exist/,
  },
  {
    name: "checkpoint for another backbone (--model edge-lm)",
    args: (out) => ["export", "onnx", "-c", learnedDelta.ckpt, "-m", edgeLmPath, "-o", join(out, "m.onnx")],
    error: /^error: checkpoint .* was trained on backbone "stories260K" \(sha256 [0-9a-f]{12}…\), not on --model .*edge-lm = "edge-lm" \(sha256 [0-9a-f]{12}…\) — pass --model with the backbone it was trained on/,
  },
  {
    name: "checkpoint for another backbone (safetensors, --model edge-lm)",
    args: (out) => ["export", "safetensors", "-c", learnedDelta.ckpt, "-m", edgeLmPath, "-o", join(out, "m.safetensors")],
    error: /^error: checkpoint .* was trained on backbone "stories260K" .* not on --model .*edge-lm/,
  },
  {
    name: "recorded backbone path gone, no --model",
    args: (out) => ["export", "onnx", "-c", movedBackbone, "-o", join(out, "m.onnx")],
    error: /^error: checkpoint .* was trained on backbone "stories260K" .* at .*gone\/stories260K\.bin, which does not exist here — pass --model with the backbone/,
  },
  {
    name: "recorded backbone path now holds other weights, no --model",
    args: (out) => ["export", "onnx", "-c", changedBackbone, "-o", join(out, "m.onnx")],
    error: /^error: checkpoint .* was trained on backbone "stories260K" \(sha256 abababababab…\), but .*stories260K\.bin \(the path it recorded\) now holds sha256 [0-9a-f]{12}… — pass --model/,
  },
  {
    name: "output directory does not exist",
    args: (out) => ["export", "onnx", "-c", learnedDelta.ckpt, "-o", join(out, "missing/m.onnx")],
    error: /^error: output directory .*missing does not exist — create it first \(mkdir -p .*missing\) or choose another --out/,
  },
  {
    name: "output directory is a file",
    args: (out) => {
      writeFileSync(join(out, "file"), "x");
      return ["export", "safetensors", "-c", learnedDelta.ckpt, "-o", join(out, "file/m.safetensors")];
    },
    error: /^error: output directory .*file is not a directory — choose another --out/,
    noFile: (out) => join(out, "file/m.safetensors"),
  },
  {
    // root writes through permission bits, so as root the unwritable directory is /proc
    name: `unwritable output directory (${isRoot ? "/proc, running as root" : "mode 0555"})`,
    args: (out) => {
      if (!isRoot) chmodSync(out, 0o555);
      return ["export", "onnx", "-c", learnedDelta.ckpt, "-o", isRoot ? "/proc/edgeinf-test.onnx" : join(out, "m.onnx")];
    },
    error: /^error: cannot write to output directory .* \(E[A-Z]+\) — choose a writable --out/,
    noFile: (out) => (isRoot ? "/proc/edgeinf-test.onnx" : join(out, "m.onnx")),
  },
  {
    name: "--out is a directory",
    args: (out) => ["export", "onnx", "-c", learnedDelta.ckpt, "-o", out],
    error: /^error: --out .* is a directory — give a file path/,
  },
  {
    name: "--opset 12 (too old)",
    args: (out) => ["export", "onnx", "-c", learnedDelta.ckpt, "-o", join(out, "m.onnx"), "--opset", "12"],
    error: /^error: --opset 12 is not a supported ONNX opset — use an integer from 13 to 21 \(default 17\)$/,
  },
  {
    name: "--opset abc",
    args: (out) => ["export", "onnx", "-c", learnedDelta.ckpt, "-o", join(out, "m.onnx"), "--opset", "abc"],
    error: /^error: --opset abc is not a supported ONNX opset/,
  },
  {
    name: "--layer out of range",
    args: (out) => ["export", "onnx", "-c", learnedDelta.ckpt, "-o", join(out, "m.onnx"), "--layer", "9"],
    error: /^error: export: layer 9 is out of range \(the module has 5 layers\) — use layer indices from 0 to 4$/,
  },
  {
    name: "--layer not a number",
    args: (out) => ["export", "onnx", "-c", learnedDelta.ckpt, "-o", join(out, "m.onnx"), "--layer", "first"],
    error: /^error: --layer first is not a layer selection — pass all, a layer index/,
  },
  {
    name: "no format",
    args: () => ["export"],
    error: /^error: name a format: edgeinf export onnx \| safetensors/,
  },
];

describe.concurrent("edgeinf export: bad input fails with one line and leaves no file", () => {
  badCases.forEach((c, i) => {
    it(c.name, async () => {
      const out = freshOutDir(`bad-${i}`);
      const args = c.args(out);
      const before = readdirSync(out);
      const r = await runCli(args);
      try {
        expectOneLineError(r, { noNoise: true }, c.error);
        if (c.noFile) expect(existsSync(c.noFile(out))).toBe(false);
        if (!isRoot) chmodSync(out, 0o755);
        expect(readdirSync(out)).toEqual(before); // nothing written, no temp or probe file
      } finally {
        if (!isRoot) chmodSync(out, 0o755);
      }
    });
  });

  it("a failed export leaves an existing output file as it was", async () => {
    const out = freshOutDir("keep-old");
    const path = join(out, "memory.onnx");
    writeFileSync(path, "previous export");
    const r = await runCli(["export", "onnx", "-c", learnedDelta.ckpt, "-o", path, "--layer", "7"]);
    expectOneLineError(r, { noNoise: true }, /^error: export: layer 7 is out of range/);
    expect(readFileSync(path, "utf8")).toBe("previous export");
    expect(readdirSync(out)).toEqual(["memory.onnx"]);
  });
});
