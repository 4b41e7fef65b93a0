import * as tf from "../tf.js";
import type { EdgeInfiniteConfig } from "./config.js";
import type { LayerMemoryParams } from "./module.js";
import { readMemory } from "./read-memory.js";
import { writeMemory, type MemoryState } from "./write-memory.js";
import { gateValues, mixGate, sharedGateValues } from "./gate.js";
import { applyHeadMaps } from "./projections.js";
import { splitByRecall, type ExactCache } from "./exact-cache.js";

/**
 * The EdgeInfinite memory step of one layer, written once: read → gate (this file's `readAndGate`) and write
 * (`writeEvicted`). The layer (edgeinfinite-attention.ts), the export reference (export/reference-step.ts) and the
 * short→long switch that builds memory from a KV cache (edgeinfinite.ts) all call these two functions.
 */

/**
 * Memory read and gate for T queries of one layer: returns the heads' output [H, T, d].
 *   A_mem = φ(q·Wq) M / (φ(q·Wq) z + ε)                   query head h reads KV head ⌊h/g⌋'s memory
 *   readMode "blend":  g = sigmoid(b_h [+ q·w_h])           (Infini-attention; EdgeInfinite's gate)
 *   readMode "shared": g = sigmoid(b_h [+ q·w_h] + log(φ(q·Wq)ᵀz + ε) − logsumexp(local logits))
 *   out = A_local + g·(A_mem − A_local)
 * q.pre are the pre-RoPE queries [H, T, d] (the gate reads them), q.rot the rotated ones (memory reads them when
 * memoryKeys is "post-rope"); local [H, T, d] the local attention output, localLse [H, T, 1] its logsumexp (shared
 * mode only). forceGate replaces g (tests: 0 gives sink + window attention exactly).
 */
export function readAndGate(
  params: LayerMemoryParams,
  cfg: EdgeInfiniteConfig,
  memory: MemoryState,
  q: { pre: tf.Tensor3D; rot: tf.Tensor3D },
  local: tf.Tensor3D,
  localLse: tf.Tensor3D | null,
  forceGate?: number,
): tf.Tensor3D {
  return tf.tidy(() => {
    const [H, T] = q.pre.shape;
    const Hkv = memory.M.shape[0];
    const dv = memory.M.shape[2];
    const qMem = applyHeadMaps(cfg.memoryKeys === "post-rope" ? q.rot : q.pre, params.queryMap);
    const read = readMemory(memory, qMem.reshape([Hkv, (H / Hkv) * T, qMem.shape[2]]), cfg.eps, cfg.featureMap);
    const aMem = read.out.reshape([H, T, dv]) as tf.Tensor3D;
    let gate: tf.Tensor3D;
    if (forceGate !== undefined) gate = tf.fill([H, 1, 1], forceGate) as tf.Tensor3D;
    else if (cfg.readMode === "shared") {
      if (!localLse) throw new Error("readMode shared needs the local attention's logsumexp");
      gate = sharedGateValues(params.gate, q.pre, read.mass.reshape([H, T, 1]), localLse, cfg.eps);
    } else gate = gateValues(params.gate, q.pre);
    return mixGate(gate, aMem, local);
  });
}

/**
 * Tokens leaving the window → memory. k [Hkv, n, d] are pre-RoPE keys (or, for memoryKeys "post-rope", keys rotated
 * at their local-span positions), v [Hkv, n, d] values. With an exact cache (exactTokens E > 0), the cache and the
 * leaving tokens compete: per KV head the E that memory reconstructs worst stay exact, the rest are written.
 *   linear: M ← M + φ(k·Wk)ᵀ(v·Wv);  delta: M ← M + φ(k·Wk)ᵀ(v·Wv − φ(k·Wk)M/(φ(k·Wk)z + ε));  z ← z + Σ φ(k·Wk)
 */
export function writeEvicted(
  params: LayerMemoryParams,
  cfg: EdgeInfiniteConfig,
  memory: MemoryState,
  exact: ExactCache | null,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
): { memory: MemoryState; exact: ExactCache | null } {
  type Written = { memory: MemoryState; exact: ExactCache | null };
  // tf.tidy keeps the returned tensors (its container type has no room for interfaces: hence the casts).
  return tf.tidy((): tf.TensorContainer => {
    const E = cfg.exactTokens;
    if (E === 0) {
      const written = writeMemory(memory, applyHeadMaps(k, params.keyMap), applyHeadMaps(v, params.valueMap), cfg.memoryRule, cfg.eps, cfg.featureMap);
      return { memory: written, exact: null } satisfies Written as unknown as tf.TensorContainer;
    }
    const candK = exact ? tf.concat([exact.k, k], 1) as tf.Tensor3D : k;
    const candV = exact ? tf.concat([exact.v, v], 1) as tf.Tensor3D : v;
    if (candK.shape[1] <= E) return { memory, exact: { k: candK, v: candV } } satisfies Written as unknown as tf.TensorContainer;
    const split = splitByRecall(
      memory,
      { k: candK, v: candV, km: applyHeadMaps(candK, params.keyMap), vm: applyHeadMaps(candV, params.valueMap) },
      E,
      cfg.eps,
      cfg.featureMap,
      cfg.exactSpread,
    );
    return { memory: writeMemory(memory, split.write.k, split.write.v, cfg.memoryRule, cfg.eps, cfg.featureMap), exact: split.exact } satisfies Written as unknown as tf.TensorContainer;
  }) as unknown as Written;
}
