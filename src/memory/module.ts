import * as tf from "../tf.js";
import type { LlamaConfig } from "../backbone/config.js";
import type { EdgeInfiniteConfig } from "./config.js";
import { identityHeadMaps } from "./projections.js";
import type { GateParams } from "./gate.js";
import { EdgeInfError } from "../util/errors.js";

/** One layer's trainable parameters. Frozen projections are plain (identity) tensors, trainable ones tf.Variables. */
export interface LayerMemoryParams {
  /** [H, d, d] applied to queries reading memory. */
  queryMap: tf.Tensor3D;
  /** [Hkv, d, d] applied to keys entering memory. */
  keyMap: tf.Tensor3D;
  /** [Hkv, d, d] applied to values entering memory. */
  valueMap: tf.Tensor3D;
  gate: GateParams;
}

/**
 * The memory-gating module: all of EdgeInfinite's trainable parameters, collected in one place.
 * Variable names are stable ("layers.{i}.gate.bias", ...) and are the tensor names in checkpoints and exports.
 */
let instances = 0;

export class MemoryGatingModule {
  /** tf.Variable names are global in tfjs: each module instance gets its own prefix. */
  private readonly prefix = `edgeinf${instances++}`;
  readonly layers: LayerMemoryParams[];
  private readonly named = new Map<string, tf.Tensor>();
  private readonly trainable = new Map<string, tf.Variable>();

  constructor(readonly backbone: LlamaConfig, readonly config: EdgeInfiniteConfig) {
    const { numLayers, numHeads: H, numKvHeads: Hkv, headDim: d } = backbone;
    this.layers = [];
    for (let i = 0; i < numLayers; i++) {
      const p = `layers.${i}`;
      const map = (name: string, heads: number, train: boolean) => this.add(`${p}.${name}`, identityHeadMaps(heads, d), train) as tf.Tensor3D;
      const gate: GateParams = {
        bias: this.add(`${p}.gate.bias`, tf.fill([H], config.gateInitLogit), true) as tf.Tensor1D,
        weight: config.gateKind === "learned" ? (this.add(`${p}.gate.weight`, tf.zeros([H, d]), true) as tf.Tensor2D) : null,
      };
      this.layers.push({
        queryMap: map("memory.query_map", H, config.trainProjections.q),
        keyMap: map("memory.key_map", Hkv, config.trainProjections.k),
        valueMap: map("memory.value_map", Hkv, config.trainProjections.v),
        gate,
      });
    }
  }

  private add(name: string, init: tf.Tensor, trainable: boolean): tf.Tensor {
    const t = trainable ? tf.variable(init, true, `${this.prefix}/${name}`) : tf.keep(init.clone());
    if (trainable) init.dispose();
    this.named.set(name, t);
    if (trainable) this.trainable.set(name, t as tf.Variable);
    return t;
  }

  /** Trainable variables by name (what the optimiser updates and checkpoints save). */
  trainableVariables(): Map<string, tf.Variable> {
    return this.trainable;
  }

  /** Every module tensor (trainable and frozen-identity) by name. */
  tensors(): Map<string, tf.Tensor> {
    return this.named;
  }

  parameterCount(): number {
    let n = 0;
    for (const v of this.trainable.values()) n += v.size;
    return n;
  }

  /**
   * Overwrites the trainable variables from host data (a checkpoint's module.safetensors, named by `file` in errors).
   * Strict, and checked before anything is assigned: every trainable tensor must be present with its shape, and
   * nothing else may be (a missing one would silently keep its initial value). Otherwise a one-line EdgeInfError.
   */
  load(values: ReadonlyMap<string, { shape: number[]; data: Float32Array }>, file = "module tensors"): void {
    const list = (names: string[]) => names.slice(0, 3).join(", ") + (names.length > 3 ? `, … (${names.length} in all)` : "");
    const missing = [...this.trainable.keys()].filter((n) => !values.has(n));
    if (missing.length > 0) {
      throw new EdgeInfError(`checkpoint ${file} lacks ${missing.length} trainable tensor(s) of its config (${list(missing)})`, "the checkpoint is damaged; use an earlier step folder");
    }
    const extra = [...values.keys()].filter((n) => !this.trainable.has(n));
    if (extra.length > 0) {
      const frozen = extra.filter((n) => this.named.has(n));
      const why = frozen.length === extra.length ? "its config keeps frozen" : "its config does not train";
      throw new EdgeInfError(`checkpoint ${file} holds ${extra.length} tensor(s) ${why} (${list(extra)})`, "its checkpoint.json and module.safetensors disagree; use another checkpoint");
    }
    for (const [name, v] of this.trainable) {
      const src = values.get(name)!;
      if (src.shape.join(",") !== v.shape.join(",") || src.data.length !== v.size) {
        throw new EdgeInfError(
          `checkpoint ${file}: tensor ${name} has shape [${src.shape.join(", ")}], this backbone's head layout needs [${v.shape.join(", ")}]`,
          "the checkpoint does not fit this backbone, or is damaged; use a checkpoint trained on it",
        );
      }
    }
    for (const [name, v] of this.trainable) {
      const src = values.get(name)!;
      tf.tidy(() => v.assign(tf.tensor(src.data, src.shape)));
    }
  }

  /**
   * Overwrites this module's trainable variables with another module's (same backbone and trainable set, e.g. a
   * checkpoint's module under another sink/window). On the device: nothing is read to the host.
   */
  loadFrom(other: MemoryGatingModule): void {
    const src = other.trainableVariables();
    for (const [name, v] of this.trainable) {
      const from = src.get(name);
      if (!from) throw new Error(`tensor ${name} is not trainable in the source module`);
      if (from.shape.join(",") !== v.shape.join(",")) throw new Error(`tensor ${name}: shape [${from.shape}] does not match module [${v.shape}]`);
      v.assign(from);
    }
    for (const name of src.keys()) {
      if (!this.trainable.has(name)) throw new Error(`tensor ${name} is frozen in this configuration; enable it in trainProjections to load it`);
    }
  }

  dispose(): void {
    for (const t of this.named.values()) t.dispose();
    this.named.clear();
    this.trainable.clear();
  }
}
