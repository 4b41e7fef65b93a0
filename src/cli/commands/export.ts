import type { Argv, CommandModule } from "yargs";
import { initBackend } from "../../backend/select.js";
import { exportOnnx, DEFAULT_OPSET, MIN_OPSET, MAX_OPSET } from "../../export/onnx.js";
import { exportSafetensors } from "../../export/safetensors.js";
import { openCheckpointForExport, type ExportCheckpoint } from "../../export/from-checkpoint.js";
import { EdgeInfError } from "../../util/errors.js";
import { log } from "../common.js";
import { checkOutputPath } from "../output-path.js";

interface ExportArgs {
  checkpoint: string;
  out: string;
  model?: string;
}

interface ExportOnnxArgs extends ExportArgs {
  opset?: string;
  layer?: string | string[];
}

/** --opset: an integer from MIN_OPSET to MAX_OPSET (checked before anything is read). */
export function parseOpset(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_OPSET;
  const text = String(raw).trim();
  if (text === "") throw new EdgeInfError("--opset needs a value", `pass an integer from ${MIN_OPSET} to ${MAX_OPSET} (default ${DEFAULT_OPSET})`);
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < MIN_OPSET || n > MAX_OPSET) {
    throw new EdgeInfError(`--opset ${text} is not a supported ONNX opset`, `use an integer from ${MIN_OPSET} to ${MAX_OPSET} (default ${DEFAULT_OPSET})`);
  }
  return n;
}

/** --layer: "all", one index, or a comma-separated list (the range is checked against the checkpoint later). */
export function parseLayers(raw: string | string[] | undefined): "all" | number[] {
  const text = (Array.isArray(raw) ? raw.join(",") : (raw ?? "all")).trim();
  if (text === "all") return "all";
  if (text === "") throw new EdgeInfError("--layer needs a value", "pass all, a layer index (--layer 0) or a comma-separated list (--layer 0,3)");
  if (!/^\d+(\s*,\s*\d+)*$/.test(text)) {
    throw new EdgeInfError(`--layer ${text} is not a layer selection`, "pass all, a layer index (--layer 0) or a comma-separated list (--layer 0,3)");
  }
  return text.split(",").map((s) => Number(s.trim()));
}

function withCheckpointArgs<T>(y: Argv<T>) {
  return y
    .option("checkpoint", { alias: "c", type: "string", demandOption: true, describe: "trained module: a folder written by edgeinf train (its latest step) or one of its step-NNNNNN folders" })
    .option("out", { alias: "o", type: "string", demandOption: true, describe: "file to write (its directory must exist; replaced atomically if present)" })
    .option("model", {
      alias: "m",
      type: "string",
      describe: "backbone the checkpoint was trained on, to verify by sha256 (default: the backbone path recorded in the checkpoint)",
    });
}

/** Everything a command does before it exports: validate paths, open the checkpoint against its backbone. */
async function openForExport(args: ExportArgs): Promise<ExportCheckpoint> {
  checkOutputPath(args.out);
  // Export copies weights into the file and computes nothing: the pure-JS backend is exact and starts fastest.
  await initBackend("cpu", { log: () => {} });
  return openCheckpointForExport(args.checkpoint, { model: args.model });
}

/** Metadata written into every exported file: which backbone and checkpoint step the module belongs to. */
function provenance(ck: ExportCheckpoint): Record<string, string> {
  return {
    "edgeinfinite.backbone_id": ck.backbone.id,
    "edgeinfinite.backbone_sha256": ck.backbone.sha256,
    "edgeinfinite.backbone_format": ck.backbone.format,
    "edgeinfinite.checkpoint_step": String(ck.meta.step),
  };
}

function summary(ck: ExportCheckpoint) {
  return {
    checkpoint: ck.dir,
    step: ck.meta.step,
    backbone: { id: ck.backbone.id, sha256: ck.backbone.sha256, path: ck.backbone.path, verifiedFrom: ck.backboneFrom },
    memoryRule: ck.module.config.memoryRule,
    gateKind: ck.module.config.gateKind,
  };
}

const onnxCommand: CommandModule<object, ExportOnnxArgs> = {
  command: "onnx",
  describe: "Write the module's per-segment inference step (memory read, gate, memory write) as an ONNX graph",
  builder: (y) =>
    withCheckpointArgs(y)
      .option("opset", { type: "string", describe: `ONNX opset, ${MIN_OPSET}–${MAX_OPSET} (default ${DEFAULT_OPSET})` })
      .option("layer", { alias: "l", type: "string", describe: "layers in the graph: all (default), an index, or a list like 0,3" })
      .example("$0 export onnx --checkpoint checkpoints/quickstart --out memory.onnx", "all layers, opset 17, backbone found from the checkpoint")
      .example("$0 export onnx -c checkpoints/quickstart -o layer0.onnx --layer 0 --opset 13", "one layer, for an older runtime")
      .example("$0 export onnx -c checkpoints/edge-lm-passkey -m ../shared/models/edge-lm -o out/memory.onnx", "verify the backbone given with --model")
      .epilogue("Graph inputs per layer i: layer{i}.q, .k, .v (pre-RoPE), .local_attn_out, .M, .z; outputs: layer{i}.gated_out, .M_out, .z_out. See docs/export.md."),
  handler: async (args) => {
    const opset = parseOpset(args.opset);
    const layers = parseLayers(args.layer);
    const ck = await openForExport(args);
    try {
      const r = exportOnnx(ck.module, { layers, opset, outPath: args.out, metadata: provenance(ck) });
      console.log(JSON.stringify({ format: "onnx", path: r.path, bytes: r.bytes, opset, layers: layers === "all" ? ck.module.layers.map((_, i) => i) : [...layers].sort((a, b) => a - b), ...summary(ck), inputs: r.graphInputs, outputs: r.graphOutputs }, null, 2));
      log(`wrote ${r.path} (${r.bytes.toLocaleString("en-US")} bytes, opset ${opset}, ${r.graphOutputs.length / 3} layer(s), step ${ck.meta.step} of ${ck.dir})`);
    } finally {
      ck.module.dispose();
    }
  },
};

const safetensorsCommand: CommandModule<object, ExportArgs> = {
  command: "safetensors",
  describe: "Write the module's raw trainable tensors (F32, module names) with its settings as metadata",
  builder: (y) =>
    withCheckpointArgs(y)
      .example("$0 export safetensors --checkpoint checkpoints/quickstart --out memory.safetensors", "trainable tensors of the latest step")
      .example("$0 export safetensors -c checkpoints/quickstart/step-000040 -m ../shared/models/stories260K/stories260K.bin -o step40.safetensors", "one step folder, backbone verified"),
  handler: async (args) => {
    const ck = await openForExport(args);
    try {
      const r = exportSafetensors(ck.module, args.out, provenance(ck));
      console.log(JSON.stringify({ format: "safetensors", path: r.path, bytes: r.bytes, ...summary(ck), tensors: r.tensors }, null, 2));
      log(`wrote ${r.path} (${r.bytes.toLocaleString("en-US")} bytes, ${r.tensors.length} tensors, step ${ck.meta.step} of ${ck.dir})`);
    } finally {
      ck.module.dispose();
    }
  },
};

const FORMATS = ["onnx", "safetensors"];

export const exportCommand: CommandModule<object, object> = {
  command: "export",
  describe: "Export a trained memory-gating module: onnx (inference-step graph) or safetensors (raw tensors)",
  builder: (y) =>
    y
      .command(onnxCommand)
      .command(safetensorsCommand)
      .demandCommand(1, "name a format: edgeinf export onnx | safetensors")
      .middleware((argv) => {
        // Without this, strict mode words `export pickle --checkpoint …` as "Unknown arguments: checkpoint, out, pickle".
        const format = argv._[1];
        if (format !== undefined && !FORMATS.includes(String(format))) {
          throw new EdgeInfError(`unknown export format ${JSON.stringify(String(format))}`, `name a format: edgeinf export ${FORMATS.join(" | ")}`);
        }
      }, true)
      .example("$0 export onnx --checkpoint checkpoints/quickstart --out memory.onnx", "the ONNX graph of every layer")
      .example("$0 export safetensors --checkpoint checkpoints/quickstart --out memory.safetensors", "the raw trainable tensors"),
  handler: () => {},
};
