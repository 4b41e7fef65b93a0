import { statSync } from "node:fs";
import type { MemoryGatingModule } from "../memory/module.js";
import { writeSafetensors } from "../loaders/safetensors.js";
import { EdgeInfError } from "../util/errors.js";
import { checkAlive, moduleMetadata } from "./exportable.js";

export interface ExportSafetensorsResult {
  path: string;
  bytes: number;
  /** Tensor names written (the module's trainable variable names, e.g. "layers.0.gate.bias"). */
  tensors: string[];
}

/**
 * Writes the module's trainable tensors as F32 safetensors under their module names, with the edgeinfinite.*
 * settings (and `metadata`, which overrides keys of the same name) in __metadata__. Frozen projections are
 * identity maps and are left out, so the file loads back with `module.load`.
 */
export function exportSafetensors(
  module: MemoryGatingModule,
  outPath: string,
  metadata: Record<string, string> = {},
): ExportSafetensorsResult {
  checkAlive(module);
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== "string") throw new EdgeInfError(`safetensors export: metadata "${key}" is a ${typeof value}, not a string`, "pass metadata values as strings");
  }
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, v] of module.trainableVariables()) tensors[name] = { shape: v.shape.slice(), data: Float32Array.from(v.dataSync()) };
  const layers = module.layers.map((_, i) => i);
  writeSafetensors(outPath, tensors, { ...moduleMetadata(module, layers), ...metadata });
  return { path: outPath, bytes: statSync(outPath).size, tensors: Object.keys(tensors).sort() };
}
