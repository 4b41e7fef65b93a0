/**
 * Turns a suite's method entry (or command-line flags) into an InferenceSession through the method registry
 * (src/cache/registry.ts): the entry's options are checked against the method's schema, what it needs is loaded
 * once (EdgeInfinite's module), and each sample gets a fresh session.
 */
import type { LlamaConfig } from "../backbone/config.js";
import type { InferenceSession } from "../backbone/session.js";
import type { LoadedBackbone } from "../loaders/index.js";
import { methodByName } from "../cache/registry.js";
import { parseMethodOptions, type MethodDescriptor, type MethodInstance, type MethodOptions, type SessionContext } from "../cache/method.js";
import type { MemoryGatingModule } from "../memory/module.js";
import type { EdgeInfiniteConfig } from "../memory/config.js";
import type { MethodSpec, MethodSpecInput } from "./suite.js";

export type { MethodSpec } from "./suite.js";
export type { SessionContext } from "../cache/method.js";

/** What createSession needs of a method: a suite entry, or flags from the command line (label defaults to name). */
export type MethodInput = MethodSpecInput;

function withLabel(method: MethodInput): MethodSpec {
  return { ...method, label: method.label ?? method.name };
}

/** A method ready to run many samples: its options validated, its EdgeInfinite module (if any) loaded once. */
export interface PreparedMethod {
  spec: MethodSpec;
  descriptor: MethodDescriptor;
  instance: MethodInstance;
  /** The memory-gating module (edgeinfinite only). */
  module: MemoryGatingModule | null;
  /** Checkpoint step folder actually loaded, or null (untrained or not edgeinfinite). */
  checkpointDir: string | null;
  /** Effective EdgeInfinite settings (edgeinfinite only), recorded in run.json. */
  edgeinfinite: EdgeInfiniteConfig | null;
  dispose(): void;
}

/** Bytes full attention's KV cache holds for `tokens` tokens (float32 keys and values, every layer). */
export function kvBytesFullFor(config: LlamaConfig, tokens: number): number {
  return tokens * 2 * config.numLayers * config.numKvHeads * config.headDim * 4;
}

/** The descriptor of spec.name and spec's options (everything but name and label) checked against its schema. */
function resolveMethod(spec: MethodSpec): { descriptor: MethodDescriptor; options: MethodOptions; where: string } {
  const descriptor = methodByName(spec.name, "method");
  const { name: _name, label: _label, ...raw } = spec;
  const where = `method ${spec.label}`;
  return { descriptor, options: parseMethodOptions(descriptor, raw, where), where };
}

/** Loads what a method needs before any sample runs, so a bad checkpoint or setting fails at the start. */
export function prepareMethod(method: MethodInput, backbone: LoadedBackbone): PreparedMethod {
  const spec = withLabel(method);
  const { descriptor, options, where } = resolveMethod(spec);
  const instance = descriptor.instantiate(options, backbone, where);
  const { module, checkpointDir, edgeinfinite } = instance;
  return { spec, descriptor, instance, module, checkpointDir, edgeinfinite, dispose: () => instance.dispose() };
}

/**
 * Refuses a prompt a method cannot serve (a budget beyond the backbone's context or not below the prompt) before
 * anything runs; also surfaces the method's own option errors.
 */
export function checkBudget(method: MethodInput, promptTokens: number, config: LlamaConfig): void {
  const { descriptor, options, where } = resolveMethod(withLabel(method));
  descriptor.check?.(options, promptTokens, config, where);
}

/** Wraps a session so disposing it also disposes what it owns (a module loaded just for it). */
function owning(session: InferenceSession, owned: () => void): InferenceSession {
  return {
    method: session.method,
    prefill: (ids) => session.prefill(ids),
    step: (id) => session.step(id),
    kvBytes: () => session.kvBytes(),
    peakKvBytes: () => session.peakKvBytes(),
    tokensSeen: () => session.tokensSeen(),
    dispose: () => {
      session.dispose();
      owned();
    },
  };
}

function isPrepared(method: MethodInput | PreparedMethod): method is PreparedMethod {
  return "spec" in method && "instance" in method;
}

/**
 * A fresh session for one sample, from a prepared method or a bare entry (which loads what it needs here; the
 * session then disposes it).
 */
export function createSession(method: MethodInput | PreparedMethod, ctx: SessionContext): InferenceSession {
  if (isPrepared(method)) return method.instance.createSession(ctx);
  const prepared = prepareMethod(method, ctx.backbone);
  const session = prepared.instance.createSession(ctx);
  return prepared.module ? owning(session, () => prepared.dispose()) : session;
}
