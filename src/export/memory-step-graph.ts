import * as tf from "../tf.js";
import type { MemoryGatingModule } from "../memory/module.js";
import type { GraphBuilder } from "./onnx-builder.js";

/** Names of the dynamic axes in the exported graph. */
export const DYNAMIC_AXES = { batch: "batch", segment: "segment", evicted: "evicted" } as const;

/** Graph input/output names of one exported layer (prefixed `layer{i}.`). */
export function layerIoNames(layer: number): {
  inputs: { q: string; k: string; v: string; localAttnOut: string; M: string; z: string };
  outputs: { gatedOut: string; M: string; z: string };
} {
  const p = `layer${layer}.`;
  return {
    inputs: { q: `${p}q`, k: `${p}k`, v: `${p}v`, localAttnOut: `${p}local_attn_out`, M: `${p}M`, z: `${p}z` },
    outputs: { gatedOut: `${p}gated_out`, M: `${p}M_out`, z: `${p}z_out` },
  };
}

const WEIGHT_DOCS: Record<string, string> = {
  "memory.query_map": "per query head d×d map applied to the pre-RoPE query before it reads memory: [H, d, d], q·W",
  "memory.key_map": "per KV head d×d map applied to the pre-RoPE keys entering memory: [Hkv, d, d], k·W",
  "memory.value_map": "per KV head d×d map applied to the values entering memory: [Hkv, d, d], v·W",
  "gate.bias": "gate logit per query head [H]: g = sigmoid(bias) (scalar gate) or sigmoid(q·w + bias) (learned gate)",
  "gate.weight": "learned gate projection per query head [H, d]: g_{h,t} = sigmoid(q_{h,t}·w_h + bias_h), q pre-RoPE",
};

function hostData(t: tf.Tensor): Float32Array {
  return Float32Array.from(t.dataSync());
}

/**
 * Adds one layer's memory-gating step for one segment to the graph (the inference step of
 * src/memory/edgeinfinite-attention.ts, steps 2–4, for pre-RoPE memory keys):
 *   A_mem    = σ(q·Wq) M / (σ(q·Wq) z + ε)      query head h reads KV head ⌊h/g⌋'s memory (before the update)
 *   gate     = sigmoid(bias) | sigmoid(q·w + bias)
 *   out      = local + gate·(A_mem − local)       (= g·A_mem + (1−g)·local, in mixGate's order)
 *   linear:  M' = M + σ(k·Wk)ᵀ (v·Wv)
 *   delta:   M' = M + σ(k·Wk)ᵀ (v·Wv − σ(k·Wk)M / (σ(k·Wk)z + ε))
 *   z'       = z + Σ_n σ(k·Wk)
 * with σ = ELU + 1.
 */
export function addMemoryStepLayer(b: GraphBuilder, module: MemoryGatingModule, layer: number): void {
  const { numHeads: H, numKvHeads: Hkv, headDim: d } = module.backbone;
  const cfg = module.config;
  const params = module.layers[layer]!;
  const { batch, segment, evicted } = DYNAMIC_AXES;
  const io = layerIoNames(layer);
  const n = (name: string) => `layer${layer}/${name}`;

  // Shared constants (the builder keeps one copy of each name).
  const one = b.floatInitializer("const.one", [], Float32Array.of(1), "1.0: σ(x) = ELU(x) + 1");
  const eps = b.floatInitializer("const.eps", [], Float32Array.of(cfg.eps), `ε = ${cfg.eps}: keeps an empty memory (z = 0) from dividing by zero`);
  const lastAxis = b.int64Initializer("const.axes_3", [3], "Unsqueeze axis: z [batch, Hkv, d] → [batch, Hkv, d, 1]");
  const groupedShape = b.int64Initializer("const.shape_kv_grouped", [0, Hkv, -1, d], "Reshape [batch, H, T, d] → [batch, Hkv, g·T, d]: the g query heads of a KV head read its memory together");
  const headsShape = b.int64Initializer("const.shape_query_heads", [0, H, -1, d], "Reshape [batch, Hkv, g·T, d] → [batch, H, T, d]");
  const tokenAxis = b.int64Initializer("const.axes_2", [2], "axis 2: ReduceSum over the evicted tokens; Unsqueeze of the gate weight [H, d] → [H, d, 1]");

  // Weights, under the module's own names.
  const weight = (suffix: string, t: tf.Tensor) => {
    const name = `layers.${layer}.${suffix}`;
    return b.floatInitializer(name, t.shape, hostData(t), `${name}: ${WEIGHT_DOCS[suffix]}`);
  };
  const Wq = weight("memory.query_map", params.queryMap);
  const Wk = weight("memory.key_map", params.keyMap);
  const Wv = weight("memory.value_map", params.valueMap);
  const gateBias = weight("gate.bias", params.gate.bias);
  const gateWeight = params.gate.weight ? weight("gate.weight", params.gate.weight) : null;

  const q = b.input(io.inputs.q, [batch, H, segment, d], `layer ${layer}: pre-RoPE queries of the segment's tokens [batch, H, T, d]`);
  const k = b.input(io.inputs.k, [batch, Hkv, evicted, d], `layer ${layer}: pre-RoPE keys of the n tokens leaving the window (entering memory) [batch, Hkv, n, d]`);
  const v = b.input(io.inputs.v, [batch, Hkv, evicted, d], `layer ${layer}: values of the n tokens leaving the window [batch, Hkv, n, d]`);
  const local = b.input(io.inputs.localAttnOut, [batch, H, segment, d], `layer ${layer}: local (sink + window + segment, causal, RoPE) attention output per head [batch, H, T, d]`);
  const M = b.input(io.inputs.M, [batch, Hkv, d, d], `layer ${layer}: compressed memory before this segment [batch, Hkv, d, d] (zeros at the start)`);
  const z = b.input(io.inputs.z, [batch, Hkv, d], `layer ${layer}: memory normaliser before this segment [batch, Hkv, d] (zeros at the start)`);

  const sigma = (x: string, tag: string) => b.op("Add", [b.op("Elu", [x], n(`${tag}/elu`), [{ name: "alpha", f: 1 }]), one], n(`${tag}/sigma`));
  const zCol = b.op("Unsqueeze", [z, lastAxis], n("z_col"));

  // Memory read, with the memory from before this segment's update.
  const sq = sigma(b.op("MatMul", [q, Wq], n("read/q_mapped")), "read");
  const sqGrouped = b.op("Reshape", [sq, groupedShape], n("read/sigma_q_grouped"));
  const readNum = b.op("MatMul", [sqGrouped, M], n("read/num"));
  const readDen = b.op("Add", [b.op("MatMul", [sqGrouped, zCol], n("read/den_raw")), eps], n("read/den"));
  const aMem = b.op("Reshape", [b.op("Div", [readNum, readDen], n("read/a_mem_grouped")), headsShape], n("read/a_mem"), [], "A_mem = σ(qWq)M / (σ(qWq)z + ε)");

  // Gate per query head (from the raw pre-RoPE query, not the mapped one).
  const biasCol = b.op("Reshape", [gateBias, b.int64Initializer("const.shape_gate_bias", [H, 1, 1], "Reshape gate bias [H] → [H, 1, 1]")], n("gate/bias_col"));
  let gateLogit = biasCol;
  if (gateWeight) {
    const wCol = b.op("Unsqueeze", [gateWeight, tokenAxis], n("gate/weight_col")); // [H, d, 1]
    gateLogit = b.op("Add", [b.op("MatMul", [q, wCol], n("gate/qw")), biasCol], n("gate/logit"));
  }
  const gate = b.op("Sigmoid", [gateLogit], n("gate/g"));
  const diff = b.op("Sub", [aMem, local], n("mix/a_mem_minus_local"));
  b.op("Add", [local, b.op("Mul", [gate, diff], n("mix/g_times_diff"))], io.outputs.gatedOut, [], "g·A_mem + (1−g)·local");

  // Compress the evicted tokens.
  const sk = sigma(b.op("MatMul", [k, Wk], n("write/k_mapped")), "write");
  const vm = b.op("MatMul", [v, Wv], n("write/v_mapped"));
  let update = vm;
  if (cfg.memoryRule === "delta") {
    const num = b.op("MatMul", [sk, M], n("write/retrieved_num"));
    const den = b.op("Add", [b.op("MatMul", [sk, zCol], n("write/retrieved_den_raw")), eps], n("write/retrieved_den"));
    update = b.op("Sub", [vm, b.op("Div", [num, den], n("write/retrieved"))], n("write/delta_update"), [], "v·Wv minus what memory already returns for k");
  }
  // One zero token appended to σ(k) and the update: it adds exactly 0 to M and z, and keeps the inner dimension
  // ≥ 1 when nothing is evicted (n = 0), where onnxruntime's CPU MatMul leaves batched outputs uninitialised
  // (microsoft/onnxruntime PR #21803).
  const zeroToken = b.int64Initializer("const.pads_one_token", [0, 0, 0, 0, 0, 0, 1, 0], "Pad one zero token at the end of axis 2 (evicted)");
  const skPadded = b.op("Pad", [sk, zeroToken], n("write/sigma_k_padded"));
  const updatePadded = b.op("Pad", [update, zeroToken], n("write/update_padded"));
  const skT = b.op("Transpose", [skPadded], n("write/sigma_k_t"), [{ name: "perm", ints: [0, 1, 3, 2] }]);
  b.op("Add", [M, b.op("MatMul", [skT, updatePadded], n("write/outer"))], io.outputs.M, [], `M' (${cfg.memoryRule} rule)`);
  b.op("Add", [z, b.op("ReduceSum", [skPadded, tokenAxis], n("write/sigma_k_sum"), [{ name: "keepdims", i: 0 }])], io.outputs.z, [], "z' = z + Σ σ(kWk)");

  b.output(io.outputs.gatedOut, [batch, H, segment, d], `layer ${layer}: gated attention output per head g·A_mem + (1−g)·local [batch, H, T, d] (before o_proj; heads are concatenated as [T, H·d])`);
  b.output(io.outputs.M, [batch, Hkv, d, d], `layer ${layer}: memory after compressing the evicted tokens [batch, Hkv, d, d]`);
  b.output(io.outputs.z, [batch, Hkv, d], `layer ${layer}: normaliser after compressing the evicted tokens [batch, Hkv, d]`);
}
