import type { MemoryGatingModule } from "../memory/module.js";
import { EdgeInfError } from "../util/errors.js";
import { exactTokensAt, maxExactTokens } from "../memory/config.js";

/**
 * Checks shared by the exporters and the reference step: what a module must be to export, which layers to take,
 * and the metadata that says how to use the exported tensors.
 */
export function checkAlive(module: MemoryGatingModule): void {
  if (module.tensors().size === 0) {
    throw new EdgeInfError("export: the memory-gating module has been disposed", "export before calling module.dispose()");
  }
}

/** The exported step graph (and its tfjs reference) covers pre-RoPE memory keys, the blend read, ELU+1, no exact cache. */
export function checkExportable(module: MemoryGatingModule): void {
  checkAlive(module);
  const c = module.config;
  const unsupported = [
    c.readMode !== "blend" ? `readMode "${c.readMode}"` : null,
    c.featureMap !== "elu" ? `featureMap "${c.featureMap}"` : null,
    maxExactTokens(c) > 0 ? `exactTokens ${c.exactTokensPerLayer ? JSON.stringify(c.exactTokensPerLayer) : c.exactTokens}` : null,
  ].filter((x): x is string => x !== null);
  if (unsupported.length > 0) {
    throw new EdgeInfError(
      `export: ${unsupported.join(", ")} is not exportable yet (the ONNX step covers readMode "blend", featureMap "elu" and no exact cache)`,
      "export the module with edgeinf export safetensors, or train one with those settings",
    );
  }
  if (module.config.memoryKeys !== "pre-rope") {
    // post-rope reads memory with the rotated query but gates with the raw one, and rotates evicted keys at
    // positions of the local span: the exported step (pre-RoPE inputs only) cannot express that.
    throw new EdgeInfError(
      `export: memoryKeys "${module.config.memoryKeys}" is not exportable (the graph takes pre-RoPE queries and keys)`,
      'train the module with memoryKeys "pre-rope"',
    );
  }
}

/** Layer indices to export, validated against the module (sorted, no duplicates). */
export function resolveLayers(module: MemoryGatingModule, layers: "all" | readonly number[]): number[] {
  const count = module.layers.length;
  if (layers === "all") return Array.from({ length: count }, (_, i) => i);
  if (!Array.isArray(layers) || layers.length === 0) {
    throw new EdgeInfError("export: no layers selected", `pass "all" or layer indices from 0 to ${count - 1}`);
  }
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l >= count) {
      throw new EdgeInfError(`export: layer ${String(l)} is out of range (the module has ${count} layers)`, `use layer indices from 0 to ${count - 1}`);
    }
  }
  if (new Set(layers).size !== layers.length) {
    throw new EdgeInfError(`export: layer list [${layers.join(", ")}] has duplicates`, "list each layer once");
  }
  return [...layers].sort((a, b) => a - b);
}

/** Settings a consumer needs to drive the exported tensors/graph (stored as string metadata). */
export function moduleMetadata(module: MemoryGatingModule, layers: readonly number[]): Record<string, string> {
  const c = module.config;
  const bb = module.backbone;
  return {
    "edgeinfinite.format": "memory-gating-step/1",
    "edgeinfinite.layers": layers.join(","),
    "edgeinfinite.num_layers": String(bb.numLayers),
    "edgeinfinite.num_heads": String(bb.numHeads),
    "edgeinfinite.num_kv_heads": String(bb.numKvHeads),
    "edgeinfinite.head_dim": String(bb.headDim),
    "edgeinfinite.memory_rule": c.memoryRule,
    "edgeinfinite.gate_kind": c.gateKind,
    "edgeinfinite.memory_keys": c.memoryKeys,
    "edgeinfinite.eps": String(c.eps),
    "edgeinfinite.sink_tokens": String(c.sinkTokens),
    "edgeinfinite.window_tokens": String(c.windowTokens),
    "edgeinfinite.segment_length": String(c.segmentLength),
    "edgeinfinite.routing_threshold": String(c.routingThreshold),
    "edgeinfinite.read_mode": c.readMode,
    "edgeinfinite.feature_map": c.featureMap,
    // the exact cache: tokens per layer as it runs (exactTokensPerLayer resolved), and the spread [before, after]
    "edgeinfinite.exact_tokens_per_layer": Array.from({ length: bb.numLayers }, (_, l) => exactTokensAt(c, l)).join(","),
    "edgeinfinite.exact_spread": c.exactSpread.join(","),
  };
}
