import type { Argv } from "yargs";
import { initBackend, type BackendInfo, type BackendName } from "../backend/select.js";
import { loadBackbone, type LoadedBackbone } from "../loaders/index.js";
import { LlamaModel } from "../backbone/model.js";

export type BackendChoice = BackendName | "auto";
export const BACKEND_CHOICES = ["auto", "tensorflow", "webgpu", "wasm", "cpu"] as const;

export interface CommonArgs {
  backend?: BackendChoice;
  model?: string;
}

/** --backend, shared by every command that computes. */
export function withBackend<T>(y: Argv<T>) {
  return y.option("backend", {
    choices: BACKEND_CHOICES,
    describe: "tfjs backend (default: $EDGEINF_BACKEND or auto: tfjs-node-gpu → webgpu → tfjs-node → wasm → cpu)",
    type: "string",
  });
}

export function withModel<T>(y: Argv<T>) {
  return y.option("model", {
    alias: "m",
    type: "string",
    demandOption: true,
    describe: "backbone: a HF folder (config.json + safetensors + tokenizer.json), a llama2.c .bin, or hf:owner/name",
  });
}

/** Lines of logs go to stderr so stdout stays clean for results (JSON, generated text). */
export const log = (line: string): void => {
  process.stderr.write(line + "\n");
};

export async function setup(args: CommonArgs): Promise<{ backend: BackendInfo; backbone: LoadedBackbone; model: LlamaModel }> {
  const backend = await initBackend(args.backend as BackendChoice | undefined, { log });
  const backbone = await loadBackbone(args.model!);
  const model = LlamaModel.fromHost(backbone.config, backbone.weights);
  return { backend, backbone, model };
}

/** `path` as a shell word a user can paste (single-quoted when it holds anything but safe characters). */
export function shellQuote(path: string): string {
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}

/**
 * The backend to request, by precedence flag > $EDGEINF_BACKEND > the recipe's or suite's `backend` (whose default
 * "auto" must not hide the environment variable). undefined = let initBackend read $EDGEINF_BACKEND (it validates it).
 */
export function backendRequest(flag: BackendChoice | undefined, configured: BackendChoice | undefined, env = process.env["EDGEINF_BACKEND"]): BackendChoice | undefined {
  if (flag !== undefined) return flag;
  if (env !== undefined && env !== "") return undefined;
  return configured;
}
