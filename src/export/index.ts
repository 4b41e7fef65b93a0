/** Exporters of the trained memory-gating module (see docs/export.md). */
export { exportOnnx, DEFAULT_OPSET, MIN_OPSET, MAX_OPSET, irVersionFor, type ExportOnnxOptions, type ExportOnnxResult } from "./onnx.js";
export { exportSafetensors, type ExportSafetensorsResult } from "./safetensors.js";
export { moduleStepTfjs, type ModuleStepInputs, type ModuleStepOutputs } from "./reference-step.js";
export { layerIoNames, DYNAMIC_AXES } from "./memory-step-graph.js";
export { openCheckpointForExport, recordedBackbone, type ExportCheckpoint } from "./from-checkpoint.js";
export { identifyBackbone, type BackboneIdentity } from "../loaders/index.js";
