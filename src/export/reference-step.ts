import * as tf from "../tf.js";
import type { MemoryGatingModule } from "../memory/module.js";
import { readAndGate, writeEvicted } from "../memory/memory-step.js";
import { EdgeInfError } from "../util/errors.js";
import { checkExportable } from "./exportable.js";

/** One layer's step inputs, batched like the ONNX graph's (names in docs/export.md). */
export interface ModuleStepInputs {
  /** Pre-RoPE queries [batch, H, T, d]. */
  q: tf.Tensor4D;
  /** Pre-RoPE keys / values of the tokens entering memory [batch, Hkv, n, d] (n may be 0). */
  k: tf.Tensor4D;
  v: tf.Tensor4D;
  /** Local attention output per head [batch, H, T, d]. */
  localAttnOut: tf.Tensor4D;
  M: tf.Tensor4D;
  z: tf.Tensor3D;
}

export interface ModuleStepOutputs {
  gatedOut: tf.Tensor4D;
  M: tf.Tensor4D;
  z: tf.Tensor3D;
}

function checkShape(what: string, t: tf.Tensor, want: (number | null)[]): void {
  const ok = t.rank === want.length && want.every((w, i) => w === null || t.shape[i] === w);
  if (!ok) {
    const shown = want.map((w) => (w === null ? "·" : String(w))).join(", ");
    throw new EdgeInfError(`module step: ${what} has shape [${t.shape.join(", ")}]`, `pass a tensor of shape [${shown}]`);
  }
}

/**
 * The exported graph's step computed by the module's own tfjs functions (the memory step the layer calls,
 * memory-step.ts, with pre-RoPE memory keys), one batch element at a time. Returns new tensors
 * that the caller disposes.
 */
export function moduleStepTfjs(module: MemoryGatingModule, layer: number, inputs: ModuleStepInputs): ModuleStepOutputs {
  checkExportable(module);
  const params = module.layers[layer];
  if (!params || !Number.isInteger(layer)) {
    throw new EdgeInfError(`module step: layer ${layer} is out of range (the module has ${module.layers.length} layers)`, `use a layer from 0 to ${module.layers.length - 1}`);
  }
  const { numHeads: H, numKvHeads: Hkv, headDim: d } = module.backbone;
  const cfg = module.config;
  const [B, , T] = inputs.q.shape;
  const n = inputs.k.shape[2];
  checkShape("q", inputs.q, [null, H, null, d]);
  checkShape("k", inputs.k, [B, Hkv, null, d]);
  checkShape("v", inputs.v, [B, Hkv, n, d]);
  checkShape("localAttnOut", inputs.localAttnOut, [B, H, T, d]);
  checkShape("M", inputs.M, [B, Hkv, d, d]);
  checkShape("z", inputs.z, [B, Hkv, d]);
  const g = H / Hkv;

  return tf.tidy(() => {
    const gated: tf.Tensor3D[] = [];
    const Ms: tf.Tensor3D[] = [];
    const zs: tf.Tensor2D[] = [];
    for (let b = 0; b < B; b++) {
      const at = <R extends tf.Rank>(x: tf.Tensor<R>) => tf.squeeze(tf.slice(x, b, 1), [0]);
      const q = at(inputs.q) as tf.Tensor3D;
      const memory = { M: at(inputs.M) as tf.Tensor3D, z: at(inputs.z) as tf.Tensor2D };
      // memory read (with the memory before the update), gate, mix
      gated.push(readAndGate(params, cfg, memory, { pre: q, rot: q }, at(inputs.localAttnOut) as tf.Tensor3D, null));
      // memory write of the evicted tokens (edgeInfiniteLayer only writes when some leave the window)
      if (n > 0) {
        const next = writeEvicted(params, cfg, memory, null, at(inputs.k) as tf.Tensor3D, at(inputs.v) as tf.Tensor3D).memory;
        Ms.push(next.M);
        zs.push(next.z);
      } else {
        Ms.push(memory.M);
        zs.push(memory.z);
      }
    }
    return { gatedOut: tf.stack(gated) as tf.Tensor4D, M: tf.stack(Ms) as tf.Tensor4D, z: tf.stack(zs) as tf.Tensor3D };
  });
}
