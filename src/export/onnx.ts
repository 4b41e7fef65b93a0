import { statSync } from "node:fs";
import type { MemoryGatingModule } from "../memory/module.js";
import { EdgeInfError } from "../util/errors.js";
import { writeFileAtomic } from "../util/atomic.js";
import { GraphBuilder, encodeModel } from "./onnx-builder.js";
import { addMemoryStepLayer, DYNAMIC_AXES } from "./memory-step-graph.js";
import { checkExportable, resolveLayers, moduleMetadata } from "./exportable.js";

export interface ExportOnnxOptions {
  /** Layers to put in the graph: "all" or indices into the module's layers. */
  layers: "all" | number[];
  /** ONNX opset (default 17). The graph needs opset ≥ 13 (axes/shape as inputs). */
  opset?: number;
  outPath: string;
  /** Extra model metadata_props (override the edgeinfinite.* keys of the same name). */
  metadata?: Record<string, string>;
}

export interface ExportOnnxResult {
  path: string;
  bytes: number;
  graphInputs: string[];
  graphOutputs: string[];
}

export const DEFAULT_OPSET = 17;
/** Opsets the graph is exported at: ≥ 13 for axes/shape inputs; ≤ 21, the newest this exporter was run against. */
export const MIN_OPSET = 13;
export const MAX_OPSET = 21;

/**
 * IR version of the ONNX release that introduced an opset (onnx/docs/Versioning.md, onnx.helper.VERSION_TABLE):
 * opsets 13–14 shipped with IR 7 but every runtime of opset 13+ reads IR 8, so ≤ 18 → 8 (ONNX 1.10–1.13),
 * 19–20 → 9 (1.14–1.15), 21 → 10 (1.16). The oldest IR that declares the opset keeps older checkers/runtimes happy.
 */
export function irVersionFor(opset: number): number {
  return opset <= 18 ? 8 : opset <= 20 ? 9 : 10;
}

function checkOpset(opset: number): void {
  if (!Number.isInteger(opset) || opset < MIN_OPSET || opset > MAX_OPSET) {
    throw new EdgeInfError(`onnx export: opset ${opset} is not supported`, `use an integer opset from ${MIN_OPSET} to ${MAX_OPSET} (default ${DEFAULT_OPSET})`);
  }
}

/**
 * Exports the memory-gating module's per-segment inference step (memory read, gate, memory write) of the chosen
 * layers as one ONNX graph. See docs/export.md for the graph's inputs, outputs and formulas.
 */
export function exportOnnx(module: MemoryGatingModule, opts: ExportOnnxOptions): ExportOnnxResult {
  checkExportable(module);
  const opset = opts.opset ?? DEFAULT_OPSET;
  checkOpset(opset);
  const layers = resolveLayers(module, opts.layers);
  const metadata = { ...moduleMetadata(module, layers), ...checkMetadata(opts.metadata) };

  const b = new GraphBuilder();
  for (const layer of layers) addMemoryStepLayer(b, module, layer);
  const { numHeads: H, numKvHeads: Hkv, headDim: d } = module.backbone;
  const graph = b.graph(
    "edgeinfinite_memory_gating",
    `EdgeInfinite memory-gating step for one segment, layers [${layers.join(", ")}]: reads the compressed memory with ` +
      `the pre-RoPE queries (query head h reads KV head floor(h/${H / Hkv})), gates it with the local attention output, ` +
      `and compresses the evicted tokens' keys/values into the memory (${module.config.memoryRule} rule, σ = ELU + 1). ` +
      `H = ${H}, Hkv = ${Hkv}, d = ${d}; dynamic axes: ${Object.values(DYNAMIC_AXES).join(", ")}. ` +
      `Not in the graph: the backbone, RoPE and the local attention.`,
  );
  const bytes = encodeModel({
    irVersion: irVersionFor(opset),
    opsetImport: [{ domain: "", version: opset }],
    producerName: "edgeinfinite",
    docString: "EdgeInfinite (arXiv 2503.22196) memory-gating module exported from edgeinfinite (TensorFlow.js).",
    graph,
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
  });
  writeFileAtomic(opts.outPath, bytes);
  return {
    path: opts.outPath,
    bytes: statSync(opts.outPath).size,
    graphInputs: b.inputs.map((i) => i.name!),
    graphOutputs: b.outputs.map((o) => o.name!),
  };
}

function checkMetadata(metadata: Record<string, string> | undefined): Record<string, string> {
  if (!metadata) return {};
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== "string") {
      throw new EdgeInfError(`onnx export: metadata "${key}" is a ${typeof value}, not a string`, "pass metadata values as strings");
    }
  }
  return metadata;
}
