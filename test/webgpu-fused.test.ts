/**
 * The fused WebGPU kernels (src/backend/webgpu-fused.ts) against float64 references: RMSNorm, the gated activation,
 * RoPE, the memory read and write (elu and Hedgehog maps), the Hedgehog map itself and the gate blend, forward and
 * backward; then a whole model's logits, and module training steps (the default module and the shipped recipes')
 * against tfjs' own kernels.
 *
 * Needs a WebGPU adapter: on a machine without a GPU, Mesa's lavapipe (software Vulkan) serves; `scripts/lavapipe.sh`
 * fetches it from Debian and prints the environment to run with (.ci/run does this). Skipped, and says so, without one.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as tf from "../src/tf.js";
import { initBackend } from "../src/backend/select.js";
import { fusedGatedActivation, installWebGpuFused, webgpuFusedActive, webgpuFusedFromEnv } from "../src/backend/webgpu-fused.js";
import { rmsNorm } from "../src/backbone/rmsnorm.js";
import { swiglu } from "../src/backbone/swiglu.js";
import { RopeTable, inverseFrequencies } from "../src/backbone/rope.js";
import { causalMask } from "../src/backbone/attention.js";
import { readMemory } from "../src/memory/read-memory.js";
import { mixGate } from "../src/memory/gate.js";
import { writeMemory } from "../src/memory/write-memory.js";
import { featureMap } from "../src/memory/feature-map.js";
import { LlamaModel } from "../src/backbone/model.js";
import { MemoryGatingModule } from "../src/memory/module.js";
import { makeEdgeInfiniteConfig } from "../src/memory/config.js";
import { objectiveByName } from "../src/training/objectives/index.js";
import { batchesGradientsInto } from "../src/training/step.js";
import { equalLengthBatches } from "../src/backbone/nll.js";
import { EdgeInfError } from "../src/util/errors.js";
import { constantOperand } from "../src/backend/device-scalar.js";
import { tinyConfig, randomWeights, forward64 } from "./reference/llama64.js";
import { maxRelError as relError } from "./reference/rel-error.js";

/** Deterministic values in (−1, 1) (a small LCG), so every run checks the same numbers. */
function values(n: number, seed: number, scale = 1): Float64Array {
  const out = new Float64Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

async function fusedAvailable(): Promise<string | null> {
  try {
    await initBackend("webgpu", { log: () => {} });
    return null;
  } catch (e) {
    return e instanceof Error ? e.message.split("\n")[0]! : String(e);
  }
}

const why = await fusedAvailable();
if (why !== null) console.log(`webgpu-fused tests skipped: no WebGPU adapter (${why}); run scripts/lavapipe.sh for a software one`);

describe("EDGEINF_WEBGPU_FUSED", () => {
  it("is on by default, off on request, and refuses anything else with the fix", () => {
    expect(webgpuFusedFromEnv(undefined)).toBe(true);
    expect(webgpuFusedFromEnv("on")).toBe(true);
    expect(webgpuFusedFromEnv("off")).toBe(false);
    expect(() => webgpuFusedFromEnv("yes")).toThrow(EdgeInfError);
    expect(() => webgpuFusedFromEnv("yes")).toThrow(/EDGEINF_WEBGPU_FUSED=yes is not a setting.*on \(default\) or off/);
  });
});

describe.skipIf(why !== null)("fused WebGPU kernels against float64 [skipped without a WebGPU adapter]", () => {
  beforeAll(() => installWebGpuFused(true));
  afterAll(() => installWebGpuFused(true));

  /** fn's value and its gradient at x for the loss sum(fn(x) · dy), with the fused kernels on or off. */
  async function valueAndGrad(fused: boolean, x: tf.Tensor, dy: tf.Tensor, fn: (x: tf.Tensor) => tf.Tensor): Promise<{ value: Float32Array; grad: Float32Array }> {
    installWebGpuFused(fused);
    const [v, g] = tf.tidy(() => [fn(x), tf.grad((a: tf.Tensor) => tf.sum(tf.mul(fn(a), dy)))(x)]);
    const out = { value: (await v!.data()) as Float32Array, grad: (await g!.data()) as Float32Array };
    tf.dispose([v!, g!]);
    return out;
  }

  it("runs as fused kernels on webgpu: one kernel each way where tfjs runs chains", async () => {
    expect(tf.getBackend()).toBe("webgpu");
    expect(webgpuFusedActive()).toBe(true);
    const x = tf.tensor2d(Float32Array.from(values(8 * 32, 1)), [8, 32]);
    const w = tf.tensor1d(Float32Array.from(values(32, 2)));
    const names = async (fused: boolean) => {
      installWebGpuFused(fused);
      const info = await tf.profile(() => tf.grad((a: tf.Tensor) => tf.sum(rmsNorm(a as tf.Tensor2D, w, 1e-5)))(x));
      tf.dispose(info.result as tf.Tensor);
      return info.kernels.map((k) => k.name).filter((n) => n !== "Identity" && n !== "Reshape");
    };
    const fused = await names(true);
    const composed = await names(false);
    expect(fused.filter((n) => n.startsWith("Edgeinf"))).toEqual(["EdgeinfRmsNorm", "EdgeinfRmsNormGrad"]);
    expect(composed.length - fused.length).toBeGreaterThanOrEqual(8);
    tf.dispose([x, w]);
  });

  it("RMSNorm: value and gradient within 1e-6 of float64 (rows past one workgroup's width too)", async () => {
    const before = tf.memory().numTensors;
    for (const [n, d] of [[5, 384], [300, 64], [3, 1000]] as const) {
      const xs = values(n * d, 3 + d, 2);
      const ws = values(d, 4 + d);
      const dys = values(n * d, 5 + d);
      const eps = 1e-5;
      const refValue = new Float64Array(n * d);
      const refGrad = new Float64Array(n * d);
      for (let r = 0; r < n; r++) {
        let ss = 0;
        let wdx = 0;
        for (let c = 0; c < d; c++) {
          ss += xs[r * d + c]! ** 2;
          wdx += ws[c]! * dys[r * d + c]! * xs[r * d + c]!;
        }
        const inv = 1 / Math.sqrt(ss / d + eps);
        for (let c = 0; c < d; c++) {
          refValue[r * d + c] = xs[r * d + c]! * inv * ws[c]!;
          refGrad[r * d + c] = inv * ws[c]! * dys[r * d + c]! - xs[r * d + c]! * inv ** 3 * (wdx / d);
        }
      }
      const x = tf.tensor2d(Float32Array.from(xs), [n, d]);
      const w = tf.tensor1d(Float32Array.from(ws));
      const dy = tf.tensor2d(Float32Array.from(dys), [n, d]);
      const { value, grad } = await valueAndGrad(true, x, dy, (a) => rmsNorm(a as tf.Tensor2D, w, eps));
      expect(relError(value, refValue)).toBeLessThan(1e-6);
      expect(relError(grad, refGrad)).toBeLessThan(1e-6);
      tf.dispose([x, w, dy]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it("past 65 535 workgroups in one dimension (tfjs splits the dispatch): RMSNorm over 70 000 rows, the gate over 4.4M outputs", async () => {
    const before = tf.memory().numTensors;
    const [rows, d] = [70_000, 8];
    const xs = values(rows * d, 41);
    const x = tf.tensor2d(Float32Array.from(xs), [rows, d]);
    const w = tf.ones([d]) as tf.Tensor1D;
    const y = rmsNorm(x, w, 1e-5);
    const got = await y.data();
    const ref = new Float64Array(rows * d);
    for (let r = 0; r < rows; r++) {
      let ss = 0;
      for (let c = 0; c < d; c++) ss += xs[r * d + c]! ** 2;
      for (let c = 0; c < d; c++) ref[r * d + c] = xs[r * d + c]! / Math.sqrt(ss / d + 1e-5);
    }
    expect(relError(got, ref)).toBeLessThan(1e-6);
    const [n, f] = [4400, 1000];
    const gus = values(n * 2 * f, 42, 3);
    const gu = tf.tensor2d(Float32Array.from(gus), [n, 2 * f]);
    const h = fusedGatedActivation(gu, "silu");
    const hv = await h.data();
    const href = new Float64Array(n * f);
    for (let r = 0; r < n; r++) {
      for (let j = 0; j < f; j++) {
        const g = gus[r * 2 * f + j]!;
        href[r * f + j] = (g / (1 + Math.exp(-g))) * gus[r * 2 * f + f + j]!;
      }
    }
    expect(relError(hv, href)).toBeLessThan(1e-6);
    tf.dispose([x, w, y, gu, h]);
    expect(tf.memory().numTensors).toBe(before);
  });

  // The gate activations in float64: silu (Llama, Qwen, Phi-3) and tanh-approximated gelu (Gemma), with derivatives.
  const C = Math.sqrt(2 / Math.PI);
  const activations64 = {
    silu: { f: (g: number) => g / (1 + Math.exp(-g)), df: (g: number) => { const s = 1 / (1 + Math.exp(-g)); return s * (1 + g * (1 - s)); } },
    gelu_tanh: {
      f: (g: number) => 0.5 * g * (1 + Math.tanh(C * (g + 0.044715 * g ** 3))),
      df: (g: number) => { const t = Math.tanh(C * (g + 0.044715 * g ** 3)); return 0.5 * (1 + t) + 0.5 * g * (1 - t * t) * C * (1 + 3 * 0.044715 * g * g); },
    },
  } as const;

  it.each(["silu", "gelu_tanh"] as const)("gated feed-forward with %s: act(g)·u and its gradient within 1e-6 of float64, through the whole feed-forward", async (act) => {
    const before = tf.memory().numTensors;
    const { f: actF, df: actDf } = activations64[act];
    const [n, d, f] = [7, 24, 40];
    const xs = values(n * d, 11);
    const wgu = values(d * 2 * f, 12, 0.5);
    const wd = values(f * d, 13, 0.5);
    const dys = values(n * d, 14);
    // float64: h = act(x·Wg) ⊙ (x·Wu), y = h·Wd; dx = ((dy·Wdᵀ) ⊙ dh/d[g,u]) · Wguᵀ
    const refValue = new Float64Array(n * d);
    const refGrad = new Float64Array(n * d);
    for (let r = 0; r < n; r++) {
      const g = new Float64Array(f);
      const u = new Float64Array(f);
      for (let j = 0; j < f; j++) {
        for (let k = 0; k < d; k++) {
          g[j] += xs[r * d + k]! * wgu[k * 2 * f + j]!;
          u[j] += xs[r * d + k]! * wgu[k * 2 * f + f + j]!;
        }
      }
      const dh = new Float64Array(f);
      for (let j = 0; j < f; j++) for (let c = 0; c < d; c++) dh[j] += dys[r * d + c]! * wd[j * d + c]!;
      for (let c = 0; c < d; c++) {
        let y = 0;
        for (let j = 0; j < f; j++) y += actF(g[j]!) * u[j]! * wd[j * d + c]!;
        refValue[r * d + c] = y;
      }
      for (let k = 0; k < d; k++) {
        let s = 0;
        for (let j = 0; j < f; j++) s += dh[j]! * u[j]! * actDf(g[j]!) * wgu[k * 2 * f + j]! + dh[j]! * actF(g[j]!) * wgu[k * 2 * f + f + j]!;
        refGrad[r * d + k] = s;
      }
    }
    const x = tf.tensor2d(Float32Array.from(xs), [n, d]);
    const wGateUp = tf.tensor2d(Float32Array.from(wgu), [d, 2 * f]);
    const wDown = tf.tensor2d(Float32Array.from(wd), [f, d]);
    const dy = tf.tensor2d(Float32Array.from(dys), [n, d]);
    const { value, grad } = await valueAndGrad(true, x, dy, (a) => swiglu(a as tf.Tensor2D, wGateUp, wDown, act));
    expect(relError(value, refValue)).toBeLessThan(1e-6);
    expect(relError(grad, refGrad)).toBeLessThan(1e-6);
    tf.dispose([x, wGateUp, wDown, dy]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("the gelu gate stays finite where tanh's argument is large (|g| up to 60)", async () => {
    const n = 4;
    const gs = [-60, -20, 20, 60];
    const gu = tf.tensor2d([...gs, 1, 1, 1, 1], [1, 2 * n]);
    const h = fusedGatedActivation(gu, "gelu_tanh");
    const got = await h.data();
    expect(Array.from(got)).toEqual(gs.map((g) => Math.fround(activations64.gelu_tanh.f(g))));
    tf.dispose([gu, h]);
  });

  it("RoPE at consecutive, arbitrary and per-head positions: value and gradient within 1e-6 of a float64 rotation", async () => {
    const before = tf.memory().numTensors;
    const [heads, T, d] = [3, 20, 64];
    const theta = 10000;
    const table = new RopeTable(d, theta, null);
    const inv = inverseFrequencies(d, theta, null);
    const xs = values(heads * T * d, 21);
    const dys = values(heads * T * d, 22);
    const cases: [string, Int32Array][] = [
      ["consecutive", Int32Array.from({ length: T }, (_, t) => t + 7)],
      ["arbitrary", Int32Array.from({ length: T }, (_, t) => (t * 37) % 500)],
      // past the table's first 1024 rows: it grows between calls
      ["per head", Int32Array.from({ length: heads * T }, (_, i) => (i * 53) % 3000)],
    ];
    for (const [, positions] of cases) {
      const perHead = positions.length === heads * T;
      const refValue = new Float64Array(heads * T * d);
      const refGrad = new Float64Array(heads * T * d);
      const half = d / 2;
      for (let h = 0; h < heads; h++) {
        for (let t = 0; t < T; t++) {
          const p = positions[perHead ? h * T + t : t]!;
          const o = (h * T + t) * d;
          for (let i = 0; i < half; i++) {
            const [c, s] = [Math.cos(p * inv[i]!), Math.sin(p * inv[i]!)];
            const [x1, x2] = [xs[o + i]!, xs[o + half + i]!];
            const [g1, g2] = [dys[o + i]!, dys[o + half + i]!];
            refValue[o + i] = x1 * c - x2 * s;
            refValue[o + half + i] = x2 * c + x1 * s;
            // the transpose of the rotation: rotate dy back
            refGrad[o + i] = g1 * c + g2 * s;
            refGrad[o + half + i] = g2 * c - g1 * s;
          }
        }
      }
      const x = tf.tensor3d(Float32Array.from(xs), [heads, T, d]);
      const dy = tf.tensor3d(Float32Array.from(dys), [heads, T, d]);
      const { value, grad } = await valueAndGrad(true, x, dy, (a) => table.apply(a as tf.Tensor3D, positions));
      expect(relError(value, refValue)).toBeLessThan(1e-6);
      expect(relError(grad, refGrad)).toBeLessThan(1e-6);
      tf.dispose([x, dy]);
    }
    table.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  /**
   * Float64 memory read of feature rows F (row h·n + r, dk features each): out = F·M / (F·z + ε) and mass = F·z, and
   * for the loss Σ dOut·out + Σ dMass·mass the gradients of F, M and z.
   */
  function read64(F: Float64Array[], Ms: Float64Array, zs: Float64Array, dOut: Float64Array, dMass: Float64Array, dims: { Hkv: number; n: number; dk: number; dv: number; eps: number }) {
    const { Hkv, n, dk, dv, eps } = dims;
    const out = new Float64Array(Hkv * n * dv);
    const mass = new Float64Array(Hkv * n);
    const dF: Float64Array[] = [];
    const dM = new Float64Array(Hkv * dk * dv);
    const dz = new Float64Array(Hkv * dk);
    for (let h = 0; h < Hkv; h++) {
      for (let r = 0; r < n; r++) {
        const row = h * n + r;
        const f = F[row]!;
        let m = 0;
        for (let i = 0; i < dk; i++) m += f[i]! * zs[h * dk + i]!;
        mass[row] = m;
        const den = m + eps;
        let go = 0;
        for (let j = 0; j < dv; j++) {
          let num = 0;
          for (let i = 0; i < dk; i++) num += f[i]! * Ms[(h * dk + i) * dv + j]!;
          out[row * dv + j] = num / den;
          go += dOut[row * dv + j]! * (num / den);
        }
        const dden = -go / den + dMass[row]!; // ∂loss/∂mass
        const g = new Float64Array(dk);
        for (let i = 0; i < dk; i++) {
          let gm = 0;
          for (let j = 0; j < dv; j++) {
            gm += dOut[row * dv + j]! * Ms[(h * dk + i) * dv + j]!;
            dM[(h * dk + i) * dv + j]! += (f[i]! * dOut[row * dv + j]!) / den;
          }
          g[i] = gm / den + dden * zs[h * dk + i]!;
          dz[h * dk + i]! += f[i]! * dden;
        }
        dF.push(g);
      }
    }
    return { out, mass, dF, dM, dz };
  }

  /** Float64 linear write of feature rows F: M' = M + Fᵀv, z' = z + Σ F, and for the loss Σ gM·M' + Σ gz·z' the gradients of F and v. */
  function write64(F: Float64Array[], vs: Float64Array, Ms: Float64Array, zs: Float64Array, gM: Float64Array, gz: Float64Array, dims: { Hkv: number; n: number; dk: number; dv: number }) {
    const { Hkv, n, dk, dv } = dims;
    const M = Float64Array.from(Ms);
    const z = Float64Array.from(zs);
    const dF: Float64Array[] = [];
    const dV = new Float64Array(Hkv * n * dv);
    for (let h = 0; h < Hkv; h++) {
      for (let r = 0; r < n; r++) {
        const row = h * n + r;
        const f = F[row]!;
        const g = new Float64Array(dk);
        for (let i = 0; i < dk; i++) {
          z[h * dk + i]! += f[i]!;
          g[i] = gz[h * dk + i]!;
          for (let j = 0; j < dv; j++) {
            M[(h * dk + i) * dv + j]! += f[i]! * vs[row * dv + j]!;
            g[i]! += vs[row * dv + j]! * gM[(h * dk + i) * dv + j]!;
            dV[row * dv + j]! += f[i]! * gM[(h * dk + i) * dv + j]!;
          }
        }
        dF.push(g);
      }
    }
    return { M, z, dF, dV };
  }

  /** readMemory's out and mass, and the gradients of q, M and z for the loss Σ dy·out + Σ dm·mass (one tidy). */
  const readWithGrads = (q: tf.Tensor3D, M: tf.Tensor3D, z: tf.Tensor2D, dy: tf.Tensor, dm: tf.Tensor, eps: number, phi: "elu" | "hedgehog") =>
    tf.tidy(() => {
      const read = readMemory({ M, z }, q, eps, phi);
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => {
        const r = readMemory({ M: b as tf.Tensor3D, z: c as tf.Tensor2D }, a as tf.Tensor3D, eps, phi);
        return tf.add(tf.sum(tf.mul(r.out, dy)), tf.sum(tf.mul(r.mass, dm)));
      })([q, M, z]);
      return [read.out, read.mass, ...grads];
    });

  /** Rows of width w of xs, and rows joined back. */
  const rowsOf = (xs: Float64Array, w: number) => Array.from({ length: xs.length / w }, (_, r) => xs.subarray(r * w, (r + 1) * w));
  const joined = (rows: Float64Array[]) => Float64Array.from(rows.flatMap((r) => Array.from(r)));
  /** The "elu" map φ(x) = ELU(x) + 1 of a row, and the gradient through it of the features' gradient g. */
  const elu64 = (x: Float64Array) => x.map((v) => (v > 0 ? v + 1 : Math.exp(v)));
  const eluVjp64 = (x: Float64Array, g: Float64Array) => x.map((v, i) => (v > 0 ? 1 : Math.exp(v)) * g[i]!);

  it("memory read (elu): A_mem, the mass and the gradients of q, M and z within 1e-5 of float64", async () => {
    const before = tf.memory().numTensors;
    const [Hkv, n, dk, dv] = [2, 37, 16, 12];
    const eps = 1e-6;
    const qs = values(Hkv * n * dk, 31);
    const Ms = values(Hkv * dk * dv, 32);
    // z as a written memory has it: positive sums of φ(k) (here of 20 rows each)
    const zs = Float64Array.from(values(Hkv * dk, 33), (v) => 20 * (1.2 + v));
    const dOut = values(Hkv * n * dv, 34);
    const dMass = values(Hkv * n, 35);
    // loss = Σ dOut·out + Σ dMass·mass, in float64
    const qRows = rowsOf(qs, dk);
    const ref = read64(qRows.map(elu64), Ms, zs, dOut, dMass, { Hkv, n, dk, dv, eps });
    const [refOut, refMass, gM, gz] = [ref.out, ref.mass, ref.dM, ref.dz];
    const gq = joined(qRows.map((x, r) => eluVjp64(x, ref.dF[r]!)));
    const q = tf.tensor3d(Float32Array.from(qs), [Hkv, n, dk]);
    const M = tf.tensor3d(Float32Array.from(Ms), [Hkv, dk, dv]);
    const z = tf.tensor2d(Float32Array.from(zs), [Hkv, dk]);
    const dy = tf.tensor3d(Float32Array.from(dOut), [Hkv, n, dv]);
    const dm = tf.tensor3d(Float32Array.from(dMass), [Hkv, n, 1]);
    const run = (fused: boolean) => {
      installWebGpuFused(fused);
      return readWithGrads(q, M, z, dy, dm, eps, "elu");
    };
    const names = await tf.profile(() => run(true));
    expect(names.kernelNames).toContain("EdgeinfMemRead");
    expect(names.kernelNames).not.toContain("Elu");
    tf.dispose(names.result as tf.Tensor[]);
    const got = run(true);
    const [out, mass, dq, dM, dz] = await Promise.all(got.map((t) => t.data()));
    expect(relError(out!, refOut)).toBeLessThan(1e-5);
    expect(relError(mass!, refMass)).toBeLessThan(1e-5);
    expect(relError(dq!, gq)).toBeLessThan(1e-5);
    expect(relError(dM!, gM)).toBeLessThan(1e-5);
    expect(relError(dz!, gz)).toBeLessThan(1e-5);
    tf.dispose([...got, q, M, z, dy, dm]);
    installWebGpuFused(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("memory write (linear, elu): M', z' and the gradients of M, z, k and v within 1e-5 of float64", async () => {
    const before = tf.memory().numTensors;
    const [Hkv, n, dk, dv] = [2, 23, 16, 12];
    const Ms = values(Hkv * dk * dv, 61);
    const zs = values(Hkv * dk, 62);
    const ks = values(Hkv * n * dk, 63, 2);
    const vs = values(Hkv * n * dv, 64);
    const gMn = values(Hkv * dk * dv, 65);
    const gzn = values(Hkv * dk, 66);
    const kRows = rowsOf(ks, dk);
    const ref = write64(kRows.map(elu64), vs, Ms, zs, gMn, gzn, { Hkv, n, dk, dv });
    const [refM, refZ, refDv] = [ref.M, ref.z, ref.dV];
    const refDk = joined(kRows.map((x, r) => eluVjp64(x, ref.dF[r]!)));
    const M = tf.tensor3d(Float32Array.from(Ms), [Hkv, dk, dv]);
    const z = tf.tensor2d(Float32Array.from(zs), [Hkv, dk]);
    const k = tf.tensor3d(Float32Array.from(ks), [Hkv, n, dk]);
    const v = tf.tensor3d(Float32Array.from(vs), [Hkv, n, dv]);
    const dMn = tf.tensor3d(Float32Array.from(gMn), [Hkv, dk, dv]);
    const dzn = tf.tensor2d(Float32Array.from(gzn), [Hkv, dk]);
    const info = await tf.profile(() => {
      const w = writeMemory({ M, z }, k, v, "linear", 1e-6, "elu");
      return [w.M, w.z];
    });
    expect(info.kernels.map((x) => x.name).filter((x) => x !== "" && x !== "Identity")).toEqual(["EdgeinfMemWriteM", "EdgeinfMemWriteZ"]);
    const [Mn, zn] = info.result as tf.Tensor[];
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, e: tf.Tensor) => {
      const w = writeMemory({ M: a as tf.Tensor3D, z: b as tf.Tensor2D }, c as tf.Tensor3D, e as tf.Tensor3D, "linear", 1e-6, "elu");
      return tf.add(tf.sum(tf.mul(w.M, dMn)), tf.sum(tf.mul(w.z, dzn)));
    })([M, z, k, v]);
    expect(relError(await Mn!.data(), refM)).toBeLessThan(1e-5);
    expect(relError(await zn!.data(), refZ)).toBeLessThan(1e-5);
    // M' = M + …: its gradient passes through (the float32 rounding of the float64 values is all that differs)
    expect(relError(await grads[0]!.data(), gMn)).toBeLessThan(1e-7);
    expect(relError(await grads[1]!.data(), gzn)).toBeLessThan(1e-7);
    expect(relError(await grads[2]!.data(), refDk)).toBeLessThan(1e-5);
    expect(relError(await grads[3]!.data(), refDv)).toBeLessThan(1e-5);
    tf.dispose([M, z, k, v, dMn, dzn, Mn!, zn!, ...grads]);
    expect(tf.memory().numTensors).toBe(before);
  });

  /** Float64 Hedgehog map of one row, [softmax(x), softmax(−x)]. */
  function hedgehog64(x: ArrayLike<number>): Float64Array {
    const d = x.length;
    const out = new Float64Array(2 * d);
    let hi = -Infinity;
    let lo = Infinity;
    for (let c = 0; c < d; c++) [hi, lo] = [Math.max(hi, x[c]!), Math.min(lo, x[c]!)];
    let s0 = 0;
    let s1 = 0;
    for (let c = 0; c < d; c++) [s0, s1] = [s0 + Math.exp(x[c]! - hi), s1 + Math.exp(lo - x[c]!)];
    for (let c = 0; c < d; c++) [out[c], out[d + c]] = [Math.exp(x[c]! - hi) / s0, Math.exp(lo - x[c]!) / s1];
    return out;
  }

  /** Float64 gradient of one row: dx = s₊ ⊙ (dy₊ − ⟨dy₊, s₊⟩) − s₋ ⊙ (dy₋ − ⟨dy₋, s₋⟩), dy the features' gradient. */
  function hedgehogVjp64(x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
    const d = x.length;
    const y = hedgehog64(x);
    let p = 0;
    let m = 0;
    for (let c = 0; c < d; c++) [p, m] = [p + dy[c]! * y[c]!, m + dy[d + c]! * y[d + c]!];
    return Float64Array.from({ length: d }, (_, c) => y[c]! * (dy[c]! - p) - y[d + c]! * (dy[d + c]! - m));
  }

  it("Hedgehog feature map [softmax(x), softmax(−x)]: one kernel each way, value and gradient within 1e-6 of float64 (wide rows, large logits)", async () => {
    const before = tf.memory().numTensors;
    for (const [shape, scale] of [[[5, 64], 1], [[3, 200], 4], [[2, 7, 16], 30], [[130, 32], 1]] as const) {
      const d = shape.at(-1)!;
      const n = shape.reduce((a, b) => a * b, 1) / d;
      const xs = values(n * d, 7 + d, scale);
      const dys = values(n * 2 * d, 8 + d);
      const refValue = new Float64Array(n * 2 * d);
      const refGrad = new Float64Array(n * d);
      for (let r = 0; r < n; r++) {
        const row = xs.subarray(r * d, (r + 1) * d);
        refValue.set(hedgehog64(row), r * 2 * d);
        refGrad.set(hedgehogVjp64(row, dys.subarray(r * 2 * d, (r + 1) * 2 * d)), r * d);
      }
      const x = tf.tensor(Float32Array.from(xs), [...shape]);
      const dy = tf.tensor(Float32Array.from(dys), [...shape.slice(0, -1), 2 * d]);
      const { value, grad } = await valueAndGrad(true, x, dy, (a) => featureMap(a, "hedgehog"));
      expect(relError(value, refValue)).toBeLessThan(1e-6);
      expect(relError(grad, refGrad)).toBeLessThan(1e-6);
      tf.dispose([x, dy]);
    }
    const x = tf.tensor2d(Float32Array.from(values(4 * 16, 9)), [4, 16]);
    const info = await tf.profile(() => tf.grad((a: tf.Tensor) => tf.sum(featureMap(a, "hedgehog")))(x));
    expect(info.kernelNames.filter((k) => k.startsWith("Edgeinf"))).toEqual(["EdgeinfHedgehog", "EdgeinfHedgehogGrad"]);
    expect(info.kernelNames).not.toContain("Softmax");
    tf.dispose([x, info.result as tf.Tensor]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("memory read and linear write with the Hedgehog map: values and the gradients of q, M, z, k and v within 1e-5 of float64", async () => {
    const before = tf.memory().numTensors;
    const [Hkv, n, d, dv] = [2, 29, 16, 12];
    const dk = 2 * d; // the map's feature dim
    const eps = 1e-6;
    const qs = values(Hkv * n * d, 71, 3);
    const ks = values(Hkv * n * d, 72, 3);
    const vs = values(Hkv * n * dv, 73);
    const Ms = values(Hkv * dk * dv, 74);
    const zs = Float64Array.from(values(Hkv * dk, 75), (v) => 20 * (1.2 + v));
    const dOut = values(Hkv * n * dv, 76);
    const dMass = values(Hkv * n, 77);
    const gMn = values(Hkv * dk * dv, 78);
    const gzn = values(Hkv * dk, 79);
    const qRows = rowsOf(qs, d);
    const kRows = rowsOf(ks, d);
    const refRead = read64(qRows.map(hedgehog64), Ms, zs, dOut, dMass, { Hkv, n, dk, dv, eps });
    const [refOut, refMass, gM, gz] = [refRead.out, refRead.mass, refRead.dM, refRead.dz];
    const gq = joined(qRows.map((x, r) => hedgehogVjp64(x, refRead.dF[r]!)));
    const refWrite = write64(kRows.map(hedgehog64), vs, Ms, zs, gMn, gzn, { Hkv, n, dk, dv });
    const [refM, refZ, gv] = [refWrite.M, refWrite.z, refWrite.dV];
    const gk = joined(kRows.map((x, r) => hedgehogVjp64(x, refWrite.dF[r]!)));
    const q = tf.tensor3d(Float32Array.from(qs), [Hkv, n, d]);
    const k = tf.tensor3d(Float32Array.from(ks), [Hkv, n, d]);
    const v = tf.tensor3d(Float32Array.from(vs), [Hkv, n, dv]);
    const M = tf.tensor3d(Float32Array.from(Ms), [Hkv, dk, dv]);
    const z = tf.tensor2d(Float32Array.from(zs), [Hkv, dk]);
    const dy = tf.tensor3d(Float32Array.from(dOut), [Hkv, n, dv]);
    const dm = tf.tensor3d(Float32Array.from(dMass), [Hkv, n, 1]);
    const dMn = tf.tensor3d(Float32Array.from(gMn), [Hkv, dk, dv]);
    const dzn = tf.tensor2d(Float32Array.from(gzn), [Hkv, dk]);
    const readStep = () => readWithGrads(q, M, z, dy, dm, eps, "hedgehog");
    const writeStep = () => tf.tidy(() => {
      const w = writeMemory({ M, z }, k, v, "linear", eps, "hedgehog");
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) => {
        const x = writeMemory({ M, z }, a as tf.Tensor3D, b as tf.Tensor3D, "linear", eps, "hedgehog");
        return tf.add(tf.sum(tf.mul(x.M, dMn)), tf.sum(tf.mul(x.z, dzn)));
      })([k, v]);
      return [w.M, w.z, ...grads];
    });
    const info = await tf.profile(() => [...readStep(), ...writeStep()]);
    for (const name of ["EdgeinfHedgehog", "EdgeinfHedgehogGrad", "EdgeinfMemRead", "EdgeinfMemReadGradQ", "EdgeinfMemWriteM", "EdgeinfMemWriteGradK"]) expect(info.kernelNames).toContain(name);
    expect(info.kernelNames).not.toContain("Softmax");
    tf.dispose(info.result as tf.Tensor[]);
    const read = await Promise.all(readStep().map(async (t) => { const x = await t.data(); t.dispose(); return x; }));
    const written = await Promise.all(writeStep().map(async (t) => { const x = await t.data(); t.dispose(); return x; }));
    const [out, mass, dq, dM, dz] = read;
    expect(relError(out!, refOut)).toBeLessThan(1e-5);
    expect(relError(mass!, refMass)).toBeLessThan(1e-5);
    expect(relError(dq!, gq)).toBeLessThan(1e-5);
    expect(relError(dM!, gM)).toBeLessThan(1e-5);
    expect(relError(dz!, gz)).toBeLessThan(1e-5);
    const [Mn, zn, dkGot, dvGot] = written;
    expect(relError(Mn!, refM)).toBeLessThan(1e-5);
    expect(relError(zn!, refZ)).toBeLessThan(1e-5);
    expect(relError(dkGot!, gk)).toBeLessThan(1e-5);
    expect(relError(dvGot!, gv)).toBeLessThan(1e-5);
    tf.dispose([q, k, v, M, z, dy, dm, dMn, dzn]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("gate blend aLocal + g·(aMem − aLocal), per-query and per-head gates: value and the three gradients within 1e-6 of float64", async () => {
    const before = tf.memory().numTensors;
    const [H, T, d] = [3, 9, 16];
    const am = values(H * T * d, 51);
    const al = values(H * T * d, 52);
    const dys = values(H * T * d, 53);
    for (const gT of [T, 1]) {
      const gs = Float64Array.from(values(H * gT, 54 + gT), (v) => 0.5 + 0.4 * v);
      const gAt = (h: number, t: number) => gs[h * gT + (gT === 1 ? 0 : t)]!;
      const refOut = new Float64Array(H * T * d);
      const refDg = new Float64Array(H * gT);
      const refDm = new Float64Array(H * T * d);
      const refDl = new Float64Array(H * T * d);
      for (let h = 0; h < H; h++) {
        for (let t = 0; t < T; t++) {
          for (let i = 0; i < d; i++) {
            const k = (h * T + t) * d + i;
            const g = gAt(h, t);
            refOut[k] = al[k]! + g * (am[k]! - al[k]!);
            refDm[k] = dys[k]! * g;
            refDl[k] = dys[k]! * (1 - g);
            refDg[h * gT + (gT === 1 ? 0 : t)]! += dys[k]! * (am[k]! - al[k]!);
          }
        }
      }
      const g = tf.tensor3d(Float32Array.from(gs), [H, gT, 1]);
      const aMem = tf.tensor3d(Float32Array.from(am), [H, T, d]);
      const aLocal = tf.tensor3d(Float32Array.from(al), [H, T, d]);
      const dy = tf.tensor3d(Float32Array.from(dys), [H, T, d]);
      const info = await tf.profile(() => mixGate(g, aMem, aLocal));
      // (customGrad records its own scope as a kernel without a name)
      expect(info.kernels.map((k) => k.name).filter((n) => n !== "" && n !== "Identity")).toEqual(["EdgeinfGateMix"]);
      const out = info.result as tf.Tensor;
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(mixGate(a as tf.Tensor3D, b as tf.Tensor3D, c as tf.Tensor3D), dy)))([g, aMem, aLocal]);
      expect(relError(await out.data(), refOut)).toBeLessThan(1e-6);
      expect(relError(await grads[0]!.data(), refDg)).toBeLessThan(1e-6);
      expect(relError(await grads[1]!.data(), refDm)).toBeLessThan(1e-6);
      expect(relError(await grads[2]!.data(), refDl)).toBeLessThan(1e-6);
      tf.dispose([g, aMem, aLocal, dy, out, ...grads]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it("constantOperand: on webgpu one kept float32 scalar per value, the same tensor every call, surviving the caller's tidy", async () => {
    const first = tf.tidy(() => constantOperand(0.125));
    const again = tf.tidy(() => constantOperand(0.125));
    expect(first).toBeInstanceOf(tf.Tensor);
    expect(again).toBe(first);
    expect((first as tf.Scalar).isDisposed).toBe(false);
    expect(Array.from(await (first as tf.Scalar).data())).toEqual([0.125]);
    expect(constantOperand(0.1)).not.toBe(first);
    expect(Array.from(await (constantOperand(0.1) as tf.Scalar).data())).toEqual([Math.fround(0.1)]);
    // another backend: the number itself
    await initBackend("cpu", { log: () => {} });
    expect(constantOperand(0.125)).toBe(0.125);
    await initBackend("webgpu", { log: () => {} });
    installWebGpuFused(true);
    expect(tf.tidy(() => constantOperand(0.125))).toBe(first);
  });

  it("the causal mask: one kernel, equal to the host mask (with and without a sliding window)", async () => {
    for (const [blockStart, blockLength, past, keyCount, window] of [[0, 5, 0, 5, undefined], [3, 4, 10, 17, undefined], [0, 70, 30, 100, 16], [64, 64, 0, 128, 64]] as const) {
      const host = causalMask(blockStart, blockLength, past, keyCount, false, window);
      const info = await tf.profile(() => causalMask(blockStart, blockLength, past, keyCount, true, window));
      const device = info.result as tf.Tensor;
      expect(info.kernels.map((k) => k.name)).toEqual(["EdgeinfCausalMask"]);
      expect(device.shape).toEqual([blockLength, keyCount]);
      expect(Array.from(await device.data())).toEqual(Array.from(await host.data()));
      tf.dispose([host, device]);
    }
  });

  it("a whole model's logits match the float64 forward, and a module training step's gradients match tfjs' own kernels", async () => {
    installWebGpuFused(true);
    const c = tinyConfig({ hiddenSize: 64, numHeads: 4, numKvHeads: 2, headDim: 16, intermediateSize: 96, numLayers: 2, vocabSize: 64 });
    const w = randomWeights(c, 7);
    const ids = Array.from({ length: 24 }, (_, i) => (i * 7 + 3) % c.vocabSize);
    const ref = forward64(c, w, ids);
    const model = LlamaModel.fromHost(c, w);
    const logits = tf.tidy(() => model.logits(model.forward(ids)));
    const got = (await logits.data()) as Float32Array;
    logits.dispose();
    expect(relError(got, ref.flat())).toBeLessThan(1e-4);

    // The default module, and the shipped recipe's (Hedgehog map, shared read, exact cache: the map's kernel and the
    // "identity" memory kernels, the exact cache's ranking)
    for (const extra of [{}, { featureMap: "hedgehog", readMode: "shared", exactTokens: 4 }] as const) {
      const module = new MemoryGatingModule(c, makeEdgeInfiniteConfig({ sinkTokens: 2, windowTokens: 8, segmentLength: 8, ...extra }));
      const objective = objectiveByName("next-token");
      const seqs = [0, 1].map((b) => ({ source: "t", ids: Array.from({ length: 33 }, (_, i) => (i * 5 + 11 * b + 1) % c.vocabSize) }));
      const grads = async (fused: boolean) => {
        installWebGpuFused(fused);
        const g = new Map<string, tf.Tensor>();
        const { lossSum } = await batchesGradientsInto(g, objective, { model, module, tbpttSegments: 2, options: {} }, equalLengthBatches(seqs, 2));
        const out = new Map<string, Float32Array>();
        for (const [k, t] of g) out.set(k, (await t.data()) as Float32Array);
        tf.dispose([...g.values()]);
        return { lossSum, out };
      };
      const composed = await grads(false);
      const before = tf.memory().numTensors;
      const fused = await grads(true);
      expect(tf.memory().numTensors).toBe(before);
      expect(fused.lossSum).toBeCloseTo(composed.lossSum, 4);
      expect([...fused.out.keys()]).toEqual([...composed.out.keys()]);
      for (const [k, g] of composed.out) expect(relError(fused.out.get(k)!, g), `${JSON.stringify(extra)} ${k}`).toBeLessThan(1e-4);
      module.dispose();
    }
    model.dispose();
  });
});
