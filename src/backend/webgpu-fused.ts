/**
 * Fused WebGPU kernels: one dispatch where tfjs runs a chain of kernels.
 *
 * Why: on WebGPU a training step is bound by the host work of each dispatch, not by arithmetic (docs/performance.md:
 * 32 385 kernels for 0.95 s of GPU time in a 5.8 s step). Fused here, forward and backward (docs/gpu.md has the table
 * of kernel counts): RMSNorm, the gated activation (silu or tanh-gelu), whole-head RoPE, the attention block's causal
 * mask, the Hedgehog feature map, the memory read and linear write (with the "elu" map inside, or on Hedgehog
 * features), and the gate blend. The formulas are those of the files that call these (src/backbone/rmsnorm.ts,
 * swiglu.ts, rope.ts, attention.ts; src/memory/feature-map.ts, read-memory.ts, write-memory.ts, gate.ts); the kernels
 * only fuse them, and each caller keeps tfjs' ops for every other backend and case.
 * Registered for the "webgpu" backend when it starts (src/backend/select.ts). EDGEINF_WEBGPU_FUSED=off keeps tfjs'
 * kernels on webgpu too, for comparison in benchmarks.
 *
 * Two rules the WGSL below keeps: every program input is read by its shader (Dawn's automatic bind-group layout drops
 * an unread binding and the dispatch fails without an exception), and no input is named `out` (tfjs declares an
 * `outShape` uniform for the output).
 */
import * as tf from "../tf.js";
import type { NamedAttrMap, TensorInfo } from "../tf.js";
import { fail } from "../util/errors.js";
import type { GateActivation } from "../backbone/swiglu.js";

export const WEBGPU_FUSED_ENV = "EDGEINF_WEBGPU_FUSED";

/** Parses EDGEINF_WEBGPU_FUSED: "on" (default) or "off" (tfjs' own kernels). */
export function webgpuFusedFromEnv(value: string | undefined): boolean {
  if (value === undefined || value === "" || value === "on") return true;
  if (value === "off") return false;
  fail(`${WEBGPU_FUSED_ENV}=${value} is not a setting`, "use on (default) or off");
}

/** The part of tfjs-backend-webgpu's WebGPUProgram these kernels fill in (the package's type, kept local). */
interface Program {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  size?: boolean;
  uniforms?: string;
  getUserCode: () => string;
}

interface WebGpuBackendLike {
  runWebGPUProgram(program: Program, inputs: TensorInfo[], dtype: "float32", uniforms?: { type: "float32" | "int32"; data: number[] }[]): TensorInfo;
}

const WORKGROUP = 64;

/** One thread per output element (tfjs' flat layout, `index` and `uniforms.size` from its shader prefix). */
function elementwise(outputShape: number[], variableNames: string[], shaderKey: string, body: string, uniforms?: string): Program {
  const size = outputShape.reduce((a, b) => a * b, 1);
  return {
    variableNames,
    outputShape,
    shaderKey,
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [Math.ceil(size / WORKGROUP), 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    ...(uniforms === undefined ? {} : { uniforms }),
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          ${body}
        }
      }`,
  };
}

/**
 * WGSL function `name(tid, a0, a1)`: a0 and a1 reduced over the workgroup's WORKGROUP threads at once (a tree in
 * workgroup memory), combined by op0 and op1. Called from uniform control flow (it holds barriers); every thread gets
 * the totals.
 */
const workgroupReduction = (name: string, op0: string, op1: string) => `
      fn ${name}(tid : i32, a0 : f32, a1 : f32) -> vec2<f32> {
        buf0[tid] = a0;
        buf1[tid] = a1;
        workgroupBarrier();
        for (var half = ${WORKGROUP / 2}; half > 0; half = half >> 1) {
          if (tid < half) {
            buf0[tid] = ${op0}(buf0[tid], buf0[tid + half]);
            buf1[tid] = ${op1}(buf1[tid], buf1[tid + half]);
          }
          workgroupBarrier();
        }
        let total = vec2<f32>(buf0[0], buf1[0]);
        workgroupBarrier();
        return total;
      }`;

/** WGSL: the row kernels' reductions, sums (RMSNorm, the Hedgehog map's normalisers and gradient) and max/min. */
const WORKGROUP_REDUCE = `
      var<workgroup> buf0 : array<f32, ${WORKGROUP}>;
      var<workgroup> buf1 : array<f32, ${WORKGROUP}>;
      fn plus(a : f32, b : f32) -> f32 { return a + b; }
      ${workgroupReduction("workgroupSum2", "plus", "plus")}
      ${workgroupReduction("workgroupMaxMin", "max", "min")}`;

/**
 * One workgroup per row of a [rows, D] output, D = outShape[1] / dPer (dPer 2: the output row is two halves of D):
 * `body` (WGSL with the row base `b = row·D`, the thread `tid` and D) runs in uniform control flow and may call
 * WORKGROUP_REDUCE's functions; it loops `for (var c = tid; c < D; c += WORKGROUP)` itself, and writes only
 * `if (inRange)` (tfjs may dispatch more workgroups than rows).
 */
function rowProgram(outputShape: [number, number], variableNames: string[], shaderKey: string, body: string, uniforms?: string, dPer = 1): Program {
  return {
    variableNames,
    outputShape,
    shaderKey,
    dispatchLayout: { x: [0, 1] },
    // tfjs reshapes a dispatch past the device's 65 535 workgroups per dimension; getGlobalIndex stays flat.
    dispatch: [outputShape[0], 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    ...(uniforms === undefined ? {} : { uniforms }),
    getUserCode: () => `${WORKGROUP_REDUCE}
      fn main(index : i32) {
        let rows = uniforms.outShape[0];
        let D = uniforms.outShape[1] / ${dPer};
        let row = min(index / ${WORKGROUP}, rows - 1);
        let inRange = index / ${WORKGROUP} < rows;
        let tid = i32(localId.x);
        let b = row * D;
        ${body}
      }`,
  };
}

/**
 * One workgroup per row of a [rows, D] output: `sums` (WGSL expressions of row base `b` and column `c`) are summed
 * over the row; `write` then sets result[b + c] for every column, with the totals in s0, s1.
 */
function rowwise(outputShape: [number, number], variableNames: string[], shaderKey: string, sums: [string, string], write: string, uniforms?: string): Program {
  return rowProgram(outputShape, variableNames, shaderKey, `
        var a0 = 0.0;
        var a1 = 0.0;
        for (var c = tid; c < D; c += ${WORKGROUP}) {
          a0 += ${sums[0]};
          a1 += ${sums[1]};
        }
        let s = workgroupSum2(tid, a0, a1);
        let s0 = s.x;
        let s1 = s.y;
        if (inRange) {
          for (var c = tid; c < D; c += ${WORKGROUP}) {
            ${write}
          }
        }`, uniforms);
}

const KERNELS = {
  rmsNorm: "EdgeinfRmsNorm",
  rmsNormGrad: "EdgeinfRmsNormGrad",
  gatedAct: "EdgeinfGatedAct",
  gatedActGrad: "EdgeinfGatedActGrad",
  rope: "EdgeinfRope",
  causalMask: "EdgeinfCausalMask",
  memMass: "EdgeinfMemMass",
  memRead: "EdgeinfMemRead",
  memReadGradQ: "EdgeinfMemReadGradQ",
  memReadGradM: "EdgeinfMemReadGradM",
  memReadGradMass: "EdgeinfMemReadGradMass",
  memMassGradQ: "EdgeinfMemMassGradQ",
  memMassGradZ: "EdgeinfMemMassGradZ",
  memWriteM: "EdgeinfMemWriteM",
  memWriteZ: "EdgeinfMemWriteZ",
  memWriteGradK: "EdgeinfMemWriteGradK",
  memWriteGradKz: "EdgeinfMemWriteGradKz",
  memWriteGradV: "EdgeinfMemWriteGradV",
  hedgehog: "EdgeinfHedgehog",
  hedgehogGrad: "EdgeinfHedgehogGrad",
  gateMix: "EdgeinfGateMix",
  gateMixGradGate: "EdgeinfGateMixGradGate",
} as const;

/** WGSL: the gate of head h, query t (g [H, T, 1], or [H, 1, 1] broadcast over T), for an [H, T, d] index. */
const GATE_AT = `
      fn gateAt(index : i32) -> f32 {
        let T = uniforms.outShape[1];
        let d = uniforms.outShape[2];
        let ht = index / d;
        let h = ht / T;
        let t = ht - h * T;
        return g[h * uniforms.gShape[1] + select(t, 0, uniforms.gShape[1] == 1)];
      }`;

/**
 * WGSL: the gate activations of swiglu.ts and their derivatives. silu(g) = g·σ(g) (tfjs' sigmoid: 1 / (1 + exp(−g))),
 * silu' = σ(1 + g(1 − σ)). gelu_tanh(g) = ½g(1 + tanh a), a = √(2/π)(g + 0.044715g³), gelu' = ½(1 + tanh a) +
 * ½g(1 − tanh²a)·√(2/π)(1 + 3·0.044715g²); tanh as tfjs-webgpu writes it (from exp(−2|a|), no overflow).
 */
const ACTIVATIONS: Record<GateActivation, string> = {
  silu: `
      fn act(g : f32) -> f32 { return g / (1.0 + exp(-g)); }
      fn dact(g : f32) -> f32 { let s = 1.0 / (1.0 + exp(-g)); return s * (1.0 + g * (1.0 - s)); }`,
  gelu_tanh: `
      fn tanhSafe(a : f32) -> f32 { let e = exp(-2.0 * abs(a)); return sign(a) * (1.0 - e) / (1.0 + e); }
      fn act(g : f32) -> f32 { return 0.5 * g * (1.0 + tanhSafe(0.7978845608028654 * (g + 0.044715 * g * g * g))); }
      fn dact(g : f32) -> f32 {
        let t = tanhSafe(0.7978845608028654 * (g + 0.044715 * g * g * g));
        return 0.5 * (1.0 + t) + 0.5 * g * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * g * g);
      }`,
};
const activation = (attrs: NamedAttrMap): GateActivation => (attrs["act"] === "gelu_tanh" ? "gelu_tanh" : "silu");

/**
 * WGSL: the memory kernels' φ and its derivative, by the kernels' `phi` attribute. "elu": φ(x) = ELU(x) + 1
 * (feature-map.ts' "elu"), applied inside the kernel. "identity": the input already holds features (the Hedgehog map,
 * which normalises a whole row, runs as its own kernel first), so φ(x) = x.
 */
export type KernelPhi = "elu" | "identity";
const PHIS: Record<KernelPhi, string> = {
  elu: `
      fn phi(x : f32) -> f32 { return select(exp(x), x + 1.0, x > 0.0); }
      fn dphi(x : f32) -> f32 { return select(exp(x), 1.0, x > 0.0); }`,
  identity: `
      fn phi(x : f32) -> f32 { return x; }
      fn dphi(x : f32) -> f32 { return 1.0; }`,
};
const kernelPhi = (attrs: NamedAttrMap): KernelPhi => (attrs["phi"] === "identity" ? "identity" : "elu");

/** A program whose user code defines helper functions before main. */
const withHelpers = (program: Program, helpers: string): Program => {
  const body = program.getUserCode;
  return { ...program, getUserCode: () => helpers + body() };
};

/**
 * [Hkv, n, dv] outputs s = Σ_i φ(x[h, r, i]) · W[h, i, j], with x and W the first two of `variableNames` ([Hkv, n, dk],
 * [Hkv, dk, dv]), then `finish` (WGSL of s and the row hr = h·n + r): the memory read's numerator and the write's dv.
 */
function phiRowsTimes([Hkv, n, dk, dv]: [number, number, number, number], variableNames: string[], shaderKey: string, finish: string, uniforms?: string): Program {
  const [x, w] = variableNames;
  return elementwise([Hkv, n, dv], variableNames, shaderKey, `
          let j = index % ${dv};
          let hr = index / ${dv};
          let h = hr / uniforms.outShape[1];
          var s = 0.0;
          for (var i = 0; i < ${dk}; i++) {
            s += phi(${x}[hr * ${dk} + i]) * ${w}[(h * ${dk} + i) * ${dv} + j];
          }
          ${finish}`, uniforms);
}

/** A memory kernel's program with its φ (the `phi` attribute): φ's helpers before main, and φ in the shader key. */
const withPhi = (program: Program, attrs: NamedAttrMap): Program => {
  const phi = kernelPhi(attrs);
  return withHelpers({ ...program, shaderKey: `${program.shaderKey}_${phi}` }, PHIS[phi]);
};

type KernelFunc = (args: { inputs: Record<string, TensorInfo>; backend: WebGpuBackendLike; attrs: NamedAttrMap }) => TensorInfo;

const input = (inputs: Record<string, TensorInfo>, name: string): TensorInfo => {
  const t = inputs[name];
  if (t === undefined) throw new Error(`fused kernel: input ${name} missing`);
  return t;
};

const kernelFuncs: Record<string, KernelFunc> = {
  // y = x · r · w, r = 1/sqrt(mean(x²) + eps)
  [KERNELS.rmsNorm]: ({ inputs, backend, attrs }) => {
    const x = input(inputs, "x");
    const program = rowwise(x.shape as [number, number], ["x", "w"], "edgeinf_rmsnorm", ["x[b + c] * x[b + c]", "0.0"],
      "result[b + c] = x[b + c] * inverseSqrt(s0 / f32(D) + uniforms.eps) * w[c];", "eps : f32,");
    return backend.runWebGPUProgram(program, [x, input(inputs, "w")], "float32", [{ type: "float32", data: [attrs["eps"] as number] }]);
  },
  // dx = r·w·dy − x · r³ · mean(w·dy·x)
  [KERNELS.rmsNormGrad]: ({ inputs, backend, attrs }) => {
    const x = input(inputs, "x");
    const program = rowwise(x.shape as [number, number], ["x", "w", "dy"], "edgeinf_rmsnorm_grad", ["x[b + c] * x[b + c]", "w[c] * dy[b + c] * x[b + c]"],
      `let r = inverseSqrt(s0 / f32(D) + uniforms.eps);
            result[b + c] = r * w[c] * dy[b + c] - x[b + c] * (r * r * r) * (s1 / f32(D));`, "eps : f32,");
    return backend.runWebGPUProgram(program, [x, input(inputs, "w"), input(inputs, "dy")], "float32", [{ type: "float32", data: [attrs["eps"] as number] }]);
  },
  // [g, u] (one [N, 2F] product) -> act(g) · u (swiglu.ts), act silu or gelu_tanh (ACTIVATIONS below)
  [KERNELS.gatedAct]: ({ inputs, backend, attrs }) => {
    const gu = input(inputs, "gu");
    const act = activation(attrs);
    const [n, twoF] = gu.shape as [number, number];
    const program = elementwise([n, twoF / 2], ["gu"], `edgeinf_gated_${act}`, `
          let F = uniforms.outShape[1];
          let row = index / F;
          let col = index - row * F;
          result[index] = act(gu[row * 2 * F + col]) * gu[row * 2 * F + F + col];`);
    return backend.runWebGPUProgram(withHelpers(program, ACTIVATIONS[act]), [gu], "float32");
  },
  // d[g, u] = [dy · u · act'(g), dy · act(g)]
  [KERNELS.gatedActGrad]: ({ inputs, backend, attrs }) => {
    const gu = input(inputs, "gu");
    const act = activation(attrs);
    const program = elementwise([...gu.shape], ["gu", "dy"], `edgeinf_gated_${act}_grad`, `
          let F = uniforms.outShape[1] / 2;
          let row = index / (2 * F);
          let col = index - row * 2 * F;
          let j = col % F;
          let g = gu[row * 2 * F + j];
          let d = dy[row * F + j];
          if (col < F) {
            result[index] = d * gu[row * 2 * F + F + j] * dact(g);
          } else {
            result[index] = d * act(g);
          }`);
    return backend.runWebGPUProgram(withHelpers(program, ACTIVATIONS[act]), [gu, input(inputs, "dy")], "float32");
  },
  // x [H, T, d] -> x · C[p] + sign · swap(x) · S[p], C = [cos, cos], S = [−sin, sin] (rope.ts' tables), p = the row's
  // position: first + t, or positions[t] / positions[h·T + t]. sign −1 is the transpose (the gradient).
  [KERNELS.rope]: ({ inputs, backend, attrs }) => {
    const x = input(inputs, "x");
    const positions = inputs["positions"];
    const perHead = attrs["perHead"] === true;
    const position = positions === undefined ? "uniforms.first + t" : perHead ? "positions[h * T + t]" : "positions[t]";
    const program = elementwise([...x.shape], positions === undefined ? ["x", "cosTable", "sinTable"] : ["x", "cosTable", "sinTable", "positions"],
      `edgeinf_rope_${positions === undefined ? "range" : perHead ? "heads" : "rows"}`, `
          let T = uniforms.outShape[1];
          let d = uniforms.outShape[2];
          let half = d / 2;
          let i = index % d;
          let ht = index / d;
          let h = ht / T;
          let t = ht - h * T;
          let p = ${position};
          var partner = i + half;
          if (i >= half) {
            partner = i - half;
          }
          result[index] = x[index] * cosTable[p * d + i] + uniforms.sign * (x[ht * d + partner] * sinTable[p * d + i]);`,
      "first : i32, sign : f32,");
    const inputsList = positions === undefined ? [x, input(inputs, "cosTable"), input(inputs, "sinTable")] : [x, input(inputs, "cosTable"), input(inputs, "sinTable"), positions];
    return backend.runWebGPUProgram(program, inputsList, "float32", [
      { type: "int32", data: [attrs["first"] as number] },
      { type: "float32", data: [attrs["sign"] as number] },
    ]);
  },
  // [B, S]: −1e9 where key j is after the query's own position last0 + t, or (window w > 0) at or before it − w.
  [KERNELS.causalMask]: ({ backend, attrs }) => {
    const program = elementwise([attrs["blockLength"] as number, attrs["keyCount"] as number], [], "edgeinf_causal_mask", `
          let S = uniforms.outShape[1];
          let t = index / S;
          let j = index - t * S;
          let last = uniforms.last0 + t;
          var hidden = j > last;
          if (uniforms.window > 0 && j <= last - uniforms.window) {
            hidden = true;
          }
          result[index] = select(0.0, -1e9, hidden);`, "last0 : i32, window : i32,");
    return backend.runWebGPUProgram(program, [], "float32", [
      { type: "int32", data: [attrs["last0"] as number] },
      { type: "int32", data: [attrs["window"] as number] },
    ]);
  },
  // Memory read (read-memory.ts), q [Hkv, n, dk], M [Hkv, dk, dv], z [Hkv, dk]: mass = φ(q)·z [Hkv, n, 1].
  [KERNELS.memMass]: ({ inputs, backend, attrs }) => {
    const q = input(inputs, "q");
    const [Hkv, n, dk] = q.shape as [number, number, number];
    const program = elementwise([Hkv, n, 1], ["q", "z"], `edgeinf_mem_mass_${dk}`, `
          let hr = index;
          let h = hr / uniforms.outShape[1];
          var m = 0.0;
          for (var i = 0; i < ${dk}; i++) {
            m += phi(q[hr * ${dk} + i]) * z[h * ${dk} + i];
          }
          result[index] = m;`);
    return backend.runWebGPUProgram(withPhi(program, attrs), [q, input(inputs, "z")], "float32");
  },
  // out = φ(q)M / (mass + ε), mass from the kernel above
  [KERNELS.memRead]: ({ inputs, backend, attrs }) => {
    const q = input(inputs, "q");
    const M = input(inputs, "M");
    const [Hkv, n, dk] = q.shape as [number, number, number];
    const dv = M.shape[2]!;
    const program = phiRowsTimes([Hkv, n, dk, dv], ["q", "M", "mass"], `edgeinf_mem_read_${dk}_${dv}`, "result[index] = s / (mass[hr] + uniforms.eps);", "eps : f32,");
    return backend.runWebGPUProgram(withPhi(program, attrs), [q, M, input(inputs, "mass")], "float32", [{ type: "float32", data: [attrs["eps"] as number] }]);
  },
  // the read's dq through its numerator: φ'(q) ⊙ (dout·Mᵀ) / den, den = mass + ε per row
  [KERNELS.memReadGradQ]: ({ inputs, backend, attrs }) => {
    const q = input(inputs, "q");
    const M = input(inputs, "M");
    const [Hkv, n, dk] = q.shape as [number, number, number];
    const dv = M.shape[2]!;
    const program = elementwise([Hkv, n, dk], ["q", "M", "mass", "dy"], `edgeinf_mem_read_dq_${dk}_${dv}`, `
          let i = index % ${dk};
          let hr = index / ${dk};
          let h = hr / uniforms.outShape[1];
          var gm = 0.0;
          for (var j = 0; j < ${dv}; j++) {
            gm += dy[hr * ${dv} + j] * M[(h * ${dk} + i) * ${dv} + j];
          }
          result[index] = dphi(q[index]) * gm / (mass[hr] + uniforms.eps);`, "eps : f32,");
    return backend.runWebGPUProgram(withPhi(program, attrs), ["q", "M", "mass", "dy"].map((k) => input(inputs, k)), "float32", [{ type: "float32", data: [attrs["eps"] as number] }]);
  },
  // dM = φ(q)ᵀ (dout / den)   [Hkv, dk, dv], a sum over the n rows
  [KERNELS.memReadGradM]: ({ inputs, backend, attrs }) => {
    const q = input(inputs, "q");
    const dy = input(inputs, "dy");
    const [Hkv, , dk] = q.shape as [number, number, number];
    const dv = dy.shape[2]!;
    const program = elementwise([Hkv, dk, dv], ["q", "mass", "dy"], `edgeinf_mem_read_dm_${dk}_${dv}`, `
          let j = index % ${dv};
          let i = (index / ${dv}) % ${dk};
          let h = index / (${dk} * ${dv});
          let n = uniforms.qShape[1];
          var s = 0.0;
          for (var r = 0; r < n; r++) {
            let hr = h * n + r;
            s += phi(q[hr * ${dk} + i]) * dy[hr * ${dv} + j] / (mass[hr] + uniforms.eps);
          }
          result[index] = s;`, "eps : f32,");
    return backend.runWebGPUProgram(withPhi(program, attrs), [q, input(inputs, "mass"), dy], "float32", [{ type: "float32", data: [attrs["eps"] as number] }]);
  },
  // the read's dmass = −(dout·out) / den per row   [Hkv, n, 1]
  [KERNELS.memReadGradMass]: ({ inputs, backend, attrs }) => {
    const out = input(inputs, "readOut");
    const [Hkv, n, dv] = out.shape as [number, number, number];
    const program = elementwise([Hkv, n, 1], ["mass", "readOut", "dy"], `edgeinf_mem_read_dmass_${dv}`, `
          var go = 0.0;
          for (var j = 0; j < ${dv}; j++) {
            go += dy[index * ${dv} + j] * readOut[index * ${dv} + j];
          }
          result[index] = -go / (mass[index] + uniforms.eps);`, "eps : f32,");
    return backend.runWebGPUProgram(program, [input(inputs, "mass"), out, input(inputs, "dy")], "float32", [{ type: "float32", data: [attrs["eps"] as number] }]);
  },
  // mass = φ(q)·z: dz = φ(q)ᵀ dmass   [Hkv, dk], a sum over the n rows
  [KERNELS.memMassGradZ]: ({ inputs, backend, attrs }) => {
    const q = input(inputs, "q");
    const [Hkv, , dk] = q.shape as [number, number, number];
    const program = elementwise([Hkv, dk], ["q", "dmass"], `edgeinf_mem_mass_dz_${dk}`, `
          let i = index % ${dk};
          let h = index / ${dk};
          let n = uniforms.qShape[1];
          var s = 0.0;
          for (var r = 0; r < n; r++) {
            s += phi(q[(h * n + r) * ${dk} + i]) * dmass[h * n + r];
          }
          result[index] = s;`);
    return backend.runWebGPUProgram(withPhi(program, attrs), [q, input(inputs, "dmass")], "float32");
  },
  // mass = φ(q)·z: dq = dmass · φ'(q) ⊙ z   (dz: the kernel above)
  [KERNELS.memMassGradQ]: ({ inputs, backend, attrs }) => {
    const q = input(inputs, "q");
    const [, , dk] = q.shape as [number, number, number];
    const program = elementwise([...q.shape], ["q", "z", "dmass"], `edgeinf_mem_mass_dq_${dk}`, `
          let i = index % ${dk};
          let hr = index / ${dk};
          let h = hr / uniforms.outShape[1];
          result[index] = dmass[hr] * dphi(q[index]) * z[h * ${dk} + i];`);
    return backend.runWebGPUProgram(withPhi(program, attrs), [q, input(inputs, "z"), input(inputs, "dmass")], "float32");
  },
  // Memory write (write-memory.ts, "linear"), k [Hkv, n, dk], v [Hkv, n, dv]: M' = M + φ(k)ᵀv   [Hkv, dk, dv]
  [KERNELS.memWriteM]: ({ inputs, backend, attrs }) => {
    const M = input(inputs, "M");
    const [, dk, dv] = M.shape as [number, number, number];
    const program = elementwise([...M.shape], ["M", "k", "v"], `edgeinf_mem_write_m_${dk}_${dv}`, `
          let j = index % ${dv};
          let i = (index / ${dv}) % ${dk};
          let h = index / (${dk} * ${dv});
          let n = uniforms.kShape[1];
          var s = M[index];
          for (var r = 0; r < n; r++) {
            s += phi(k[(h * n + r) * ${dk} + i]) * v[(h * n + r) * ${dv} + j];
          }
          result[index] = s;`);
    return backend.runWebGPUProgram(withPhi(program, attrs), [M, input(inputs, "k"), input(inputs, "v")], "float32");
  },
  // z' = z + Σ_rows φ(k)   [Hkv, dk]
  [KERNELS.memWriteZ]: ({ inputs, backend, attrs }) => {
    const z = input(inputs, "z");
    const dk = z.shape[1]!;
    const program = elementwise([...z.shape], ["z", "k"], `edgeinf_mem_write_z_${dk}`, `
          let i = index % ${dk};
          let h = index / ${dk};
          let n = uniforms.kShape[1];
          var s = z[index];
          for (var r = 0; r < n; r++) {
            s += phi(k[(h * n + r) * ${dk} + i]);
          }
          result[index] = s;`);
    return backend.runWebGPUProgram(withPhi(program, attrs), [z, input(inputs, "k")], "float32");
  },
  // M's part of dk = φ'(k) ⊙ (v·dM'ᵀ)   [Hkv, n, dk]
  [KERNELS.memWriteGradK]: ({ inputs, backend, attrs }) => {
    const k = input(inputs, "k");
    const dM = input(inputs, "dM");
    const [, , dk] = k.shape as [number, number, number];
    const dv = dM.shape[2]!;
    const program = elementwise([...k.shape], ["k", "v", "dM"], `edgeinf_mem_write_dk_${dk}_${dv}`, `
          let i = index % ${dk};
          let hr = index / ${dk};
          let h = hr / uniforms.outShape[1];
          var s = 0.0;
          for (var j = 0; j < ${dv}; j++) {
            s += v[hr * ${dv} + j] * dM[(h * ${dk} + i) * ${dv} + j];
          }
          result[index] = dphi(k[index]) * s;`);
    return backend.runWebGPUProgram(withPhi(program, attrs), [k, input(inputs, "v"), dM], "float32");
  },
  // z's part of dk = φ'(k) ⊙ dz'   [Hkv, n, dk]
  [KERNELS.memWriteGradKz]: ({ inputs, backend, attrs }) => {
    const k = input(inputs, "k");
    const dk = k.shape[2]!;
    const program = elementwise([...k.shape], ["k", "dz"], `edgeinf_mem_write_dkz_${dk}`, `
          let i = index % ${dk};
          let h = (index / ${dk}) / uniforms.outShape[1];
          result[index] = dphi(k[index]) * dz[h * ${dk} + i];`);
    return backend.runWebGPUProgram(withPhi(program, attrs), [k, input(inputs, "dz")], "float32");
  },
  // dv = φ(k)·dM'   [Hkv, n, dv]
  [KERNELS.memWriteGradV]: ({ inputs, backend, attrs }) => {
    const k = input(inputs, "k");
    const dM = input(inputs, "dM");
    const [Hkv, n, dk] = k.shape as [number, number, number];
    const dv = dM.shape[2]!;
    const program = phiRowsTimes([Hkv, n, dk, dv], ["k", "dM"], `edgeinf_mem_write_dv_${dk}_${dv}`, "result[index] = s;");
    return backend.runWebGPUProgram(withPhi(program, attrs), [k, dM], "float32");
  },
  // feature-map.ts' "hedgehog", x [N, d] -> [softmax(x), softmax(−x)] [N, 2d]: one workgroup per row reduces the
  // row's max and min, then the two sums of exponentials (each softmax shifted by its own extreme, as tfjs' softmax).
  [KERNELS.hedgehog]: ({ inputs, backend }) => {
    const x = input(inputs, "x");
    const [n, d] = x.shape as [number, number];
    const program = rowProgram([n, 2 * d], ["x"], "edgeinf_hedgehog", `
        var hi = -3.402823e38;
        var lo = 3.402823e38;
        for (var c = tid; c < D; c += ${WORKGROUP}) {
          hi = max(hi, x[b + c]);
          lo = min(lo, x[b + c]);
        }
        let extremes = workgroupMaxMin(tid, hi, lo);
        var e0 = 0.0;
        var e1 = 0.0;
        for (var c = tid; c < D; c += ${WORKGROUP}) {
          e0 += exp(x[b + c] - extremes.x);
          e1 += exp(extremes.y - x[b + c]);
        }
        let s = workgroupSum2(tid, e0, e1);
        if (inRange) {
          for (var c = tid; c < D; c += ${WORKGROUP}) {
            result[2 * b + c] = exp(x[b + c] - extremes.x) / s.x;
            result[2 * b + D + c] = exp(extremes.y - x[b + c]) / s.y;
          }
        }`, undefined, 2);
    return backend.runWebGPUProgram(program, [x], "float32");
  },
  // y = [s₊, s₋] the map's output [N, 2d]: dx = s₊ ⊙ (dy₊ − ⟨dy₊, s₊⟩) − s₋ ⊙ (dy₋ − ⟨dy₋, s₋⟩)   [N, d]
  [KERNELS.hedgehogGrad]: ({ inputs, backend }) => {
    const y = input(inputs, "y");
    const [n, twoD] = y.shape as [number, number];
    const program = rowwise([n, twoD / 2], ["y", "dy"], "edgeinf_hedgehog_grad", ["dy[2 * b + c] * y[2 * b + c]", "dy[2 * b + D + c] * y[2 * b + D + c]"],
      "result[b + c] = y[2 * b + c] * (dy[2 * b + c] - s0) - y[2 * b + D + c] * (dy[2 * b + D + c] - s1);");
    return backend.runWebGPUProgram(program, [y, input(inputs, "dy")], "float32");
  },
  // gate.ts' mixGate: out = aLocal + g·(aMem − aLocal); with `part` (gradient) 1: dy·g (aMem's), 2: dy·(1 − g) (aLocal's)
  [KERNELS.gateMix]: ({ inputs, backend, attrs }) => {
    const a = input(inputs, "a");
    const part = attrs["part"] as number;
    const body = part === 0 ? "result[index] = b[index] + gv * (a[index] - b[index]);" : part === 1 ? "result[index] = a[index] * gv;" : "result[index] = a[index] * (1.0 - gv);";
    const program = elementwise([...a.shape], part === 0 ? ["g", "a", "b"] : ["g", "a"], `edgeinf_gate_mix_${part}`, `
          let gv = gateAt(index);
          ${body}`);
    const list = part === 0 ? [input(inputs, "g"), a, input(inputs, "b")] : [input(inputs, "g"), a];
    return backend.runWebGPUProgram(withHelpers(program, GATE_AT), list, "float32");
  },
  // dg = Σ dy·(aMem − aLocal) over d (and over T for a gate broadcast over T), in g's shape
  [KERNELS.gateMixGradGate]: ({ inputs, backend }) => {
    const g = input(inputs, "g");
    const dy = input(inputs, "dy");
    const d = dy.shape[2]!;
    // g only gives the output's shape: a binding the shader does not read breaks its bind group ('auto' layout).
    const program = elementwise([...g.shape], ["dy", "aMem", "aLocal"], `edgeinf_gate_mix_dg_${d}`, `
          let gT = uniforms.outShape[1];
          let h = index / gT;
          let t0 = index - h * gT;
          let T = uniforms.dyShape[1];
          let count = select(1, T, gT == 1);
          var s = 0.0;
          for (var k = 0; k < count; k++) {
            let base = (h * T + t0 + k) * ${d};
            for (var i = 0; i < ${d}; i++) {
              s += dy[base + i] * (aMem[base + i] - aLocal[base + i]);
            }
          }
          result[index] = s;`);
    return backend.runWebGPUProgram(program, [dy, input(inputs, "aMem"), input(inputs, "aLocal")], "float32");
  },
};

let active = false;

/** Registers the fused kernels for "webgpu" (once) and turns them on or off (EDGEINF_WEBGPU_FUSED). */
export function installWebGpuFused(on: boolean = webgpuFusedFromEnv(process.env[WEBGPU_FUSED_ENV])): void {
  for (const [kernelName, kernelFunc] of Object.entries(kernelFuncs)) {
    if (tf.getKernel(kernelName, "webgpu") === undefined) {
      tf.registerKernel({ kernelName, backendName: "webgpu", kernelFunc: kernelFunc as unknown as tf.KernelFunc });
    }
  }
  active = on;
}

/** Whether the ops below run as fused kernels now: on the webgpu backend, once installed and not turned off. */
export function webgpuFusedActive(): boolean {
  return active && tf.getBackend() === "webgpu";
}

const run = (name: string, inputs: tf.NamedTensorMap, attrs: NamedAttrMap = {}): tf.Tensor =>
  tf.engine().runKernel(name, inputs, attrs) as tf.Tensor;

/** RMSNorm of x [N, D] with weight w [D] (frozen: no gradient for it), as one kernel each way. */
export function fusedRmsNorm(x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xs, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    save([xs, w]);
    return {
      value: run(KERNELS.rmsNorm, { x: xs, w }, { eps }),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => [run(KERNELS.rmsNormGrad, { x: saved[0]!, w: saved[1]!, dy: dy as tf.Tensor }, { eps })],
    };
  });
  return op(x) as tf.Tensor2D;
}

/** act(g) · u of gu = [g, u] [N, 2F] -> [N, F] (swiglu.ts' gate, silu or gelu_tanh), as one kernel each way. */
export function fusedGatedActivation(gu: tf.Tensor2D, act: GateActivation): tf.Tensor2D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [g, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    save([g]);
    return {
      value: run(KERNELS.gatedAct, { gu: g }, { act }),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => [run(KERNELS.gatedActGrad, { gu: saved[0]!, dy: dy as tf.Tensor }, { act })],
    };
  });
  return op(gu) as tf.Tensor2D;
}

/**
 * Rotates x [H, T, d] (whole heads) by the rows of rope.ts' cos/sin tables [capacity, d] at the given positions:
 * `first` (positions first, first+1, …) or a positions tensor ([T], or [H·T] with perHead). One kernel each way:
 * the gradient rotates back (sign −1).
 */
export function fusedRope(x: tf.Tensor3D, cos: tf.Tensor2D, sin: tf.Tensor2D, where: { first: number } | { positions: tf.Tensor1D; perHead: boolean }): tf.Tensor3D {
  const attrs = (sign: number): NamedAttrMap => ("first" in where ? { first: where.first, perHead: false, sign } : { first: 0, perHead: where.perHead, sign });
  const inputs = (t: tf.Tensor, [c, s, p]: tf.Tensor[]): tf.NamedTensorMap => (p === undefined ? { x: t, cosTable: c!, sinTable: s! } : { x: t, cosTable: c!, sinTable: s!, positions: p });
  const kept = "first" in where ? [cos, sin] : [cos, sin, where.positions];
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xs, save] = args as [tf.Tensor3D, tf.GradSaveFunc];
    // The backward pass reads the tables and positions after the caller's tidy has ended (and after the table may
    // have grown): the tape keeps them (on webgpu a kept clone shares the buffer; no copy).
    save(kept);
    return {
      value: run(KERNELS.rope, inputs(xs, kept), attrs(1)),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => [run(KERNELS.rope, inputs(dy as tf.Tensor, saved), attrs(-1))],
    };
  });
  return op(x) as tf.Tensor3D;
}

/** attention.ts' causalMask [blockLength, keyCount] in one kernel: −1e9 after position last0 + t (and, with a window, at or before it − window). */
export function fusedCausalMask(last0: number, blockLength: number, keyCount: number, window?: number): tf.Tensor2D {
  return run(KERNELS.causalMask, {}, { last0, blockLength, keyCount, window: window ?? 0 }) as tf.Tensor2D;
}

/**
 * read-memory.ts' read: the mass φ(q)z and A_mem = φ(q)M / (mass + ε), q [Hkv, n, dk], M [Hkv, dk, dv], z [Hkv, dk].
 * Two kernels forward where tfjs runs six. The read takes the mass as an input, so its gradient reaches q and z
 * through the mass op (chain rule): read → dq, dM, dmass; mass → dq, dz. phi "elu" applies ELU + 1 in the kernels;
 * "identity" reads q as features already mapped (the Hedgehog map, fusedHedgehog).
 */
export function fusedMemoryRead(q: tf.Tensor3D, M: tf.Tensor3D, z: tf.Tensor2D, eps: number, phi: KernelPhi = "elu"): { out: tf.Tensor3D; mass: tf.Tensor3D } {
  const massOp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [qs, zs, save] = args as [tf.Tensor3D, tf.Tensor2D, tf.GradSaveFunc];
    save([qs, zs]);
    return {
      value: run(KERNELS.memMass, { q: qs, z: zs }, { phi }),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sq, sz] = saved as [tf.Tensor3D, tf.Tensor2D];
        const dmass = dy as tf.Tensor3D;
        return [run(KERNELS.memMassGradQ, { q: sq, z: sz, dmass }, { phi }), run(KERNELS.memMassGradZ, { q: sq, dmass }, { phi })];
      },
    };
  });
  const readOp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [qs, Ms, mass, save] = args as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, tf.GradSaveFunc];
    const out = run(KERNELS.memRead, { q: qs, M: Ms, mass }, { eps, phi });
    save([qs, Ms, mass, out]);
    return {
      value: out,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sq, sM, smass, sout] = saved as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
        const g = dy as tf.Tensor3D;
        return [
          run(KERNELS.memReadGradQ, { q: sq, M: sM, mass: smass, dy: g }, { eps, phi }),
          run(KERNELS.memReadGradM, { q: sq, mass: smass, dy: g }, { eps, phi }),
          run(KERNELS.memReadGradMass, { mass: smass, readOut: sout, dy: g }, { eps, phi }),
        ];
      },
    };
  });
  const mass = massOp(q, z) as tf.Tensor3D;
  return { out: readOp(q, M, mass) as tf.Tensor3D, mass };
}

/**
 * gate.ts' mixGate, out = aLocal + g·(aMem − aLocal), g [H, T, 1] or [H, 1, 1], aMem and aLocal [H, T, d]: one kernel
 * forward where tfjs runs three, three backward (dg, daMem, daLocal).
 */
export function fusedGateMix(g: tf.Tensor3D, aMem: tf.Tensor3D, aLocal: tf.Tensor3D): tf.Tensor3D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [gs, am, al, save] = args as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, tf.GradSaveFunc];
    save([gs, am, al]);
    return {
      value: run(KERNELS.gateMix, { g: gs, a: am, b: al }, { part: 0 }),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sg, sam, sal] = saved as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
        const d = dy as tf.Tensor3D;
        return [
          run(KERNELS.gateMixGradGate, { g: sg, dy: d, aMem: sam, aLocal: sal }),
          run(KERNELS.gateMix, { g: sg, a: d }, { part: 1 }),
          run(KERNELS.gateMix, { g: sg, a: d }, { part: 2 }),
        ];
      },
    };
  });
  return op(g, aMem, aLocal) as tf.Tensor3D;
}

/**
 * write-memory.ts' "linear" write: M' = M + φ(k)ᵀv, z' = z + Σ φ(k); k [Hkv, n, dk], v [Hkv, n, dv]. One kernel each
 * forward where tfjs runs six in all. Backward: M' gives dk's part and dv, z' its part of dk (the tape sums the two);
 * M's and z's own gradients pass through unchanged. phi as in fusedMemoryRead.
 */
export function fusedMemoryWrite(M: tf.Tensor3D, z: tf.Tensor2D, k: tf.Tensor3D, v: tf.Tensor3D, phi: KernelPhi = "elu"): { M: tf.Tensor3D; z: tf.Tensor2D } {
  const writeM = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [Ms, ks, vs, save] = args as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, tf.GradSaveFunc];
    save([ks, vs]);
    return {
      value: run(KERNELS.memWriteM, { M: Ms, k: ks, v: vs }, { phi }),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sk, sv] = saved as [tf.Tensor3D, tf.Tensor3D];
        const dM = dy as tf.Tensor3D;
        return [dM.clone(), run(KERNELS.memWriteGradK, { k: sk, v: sv, dM }, { phi }), run(KERNELS.memWriteGradV, { k: sk, dM }, { phi })];
      },
    };
  });
  const writeZ = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [zs, ks, save] = args as [tf.Tensor2D, tf.Tensor3D, tf.GradSaveFunc];
    save([ks]);
    return {
      value: run(KERNELS.memWriteZ, { z: zs, k: ks }, { phi }),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const dz = dy as tf.Tensor2D;
        return [dz.clone(), run(KERNELS.memWriteGradKz, { k: saved[0]!, dz }, { phi })];
      },
    };
  });
  return { M: writeM(M, k, v) as tf.Tensor3D, z: writeZ(z, k) as tf.Tensor2D };
}

/**
 * feature-map.ts' Hedgehog map φ(x) = [softmax(x), softmax(−x)] over the rows of x [N, d] -> [N, 2d]: one kernel each
 * way where tfjs runs four forward (two softmaxes, a negation, a concat) and about ten backward.
 */
export function fusedHedgehog(x: tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xs, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    const y = run(KERNELS.hedgehog, { x: xs });
    save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => [run(KERNELS.hedgehogGrad, { y: saved[0]!, dy: dy as tf.Tensor })],
    };
  });
  return op(x) as tf.Tensor2D;
}
