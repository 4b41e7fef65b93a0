/**
 * EDGEINF_TFJS_FLAGS: tfjs environment flags for the backend that starts, e.g.
 * `EDGEINF_TFJS_FLAGS=WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=64,WEBGPU_CPU_FORWARD=false`. tfjs reads its flags from the URL
 * in a browser; in Node there is no such channel, and the webgpu backend's dispatch batching is one of the knobs that
 * decides its throughput (docs/gpu.md). Applied after the backend module is loaded, because a backend registers its
 * own flags when it loads.
 */
import * as tf from "../tf.js";
import { fail } from "../util/errors.js";

export const TFJS_FLAGS_ENV = "EDGEINF_TFJS_FLAGS";

export type TfjsFlagValue = number | boolean | string;

/** `A=1,B=true,C=x` → [["A", 1], ["B", true], ["C", "x"]]; empty or unset → []. */
export function parseTfjsFlags(text: string | undefined): Array<[string, TfjsFlagValue]> {
  if (text === undefined || text.trim() === "") return [];
  return text.split(",").map((item) => {
    const eq = item.indexOf("=");
    const name = (eq < 0 ? item : item.slice(0, eq)).trim();
    const raw = eq < 0 ? "" : item.slice(eq + 1).trim();
    if (!/^[A-Z][A-Z0-9_]*$/.test(name) || raw === "") {
      fail(`${TFJS_FLAGS_ENV}: "${item.trim()}" is not NAME=value`, "write e.g. WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=64 (comma-separated)");
    }
    const value: TfjsFlagValue = raw === "true" ? true : raw === "false" ? false : Number.isFinite(Number(raw)) ? Number(raw) : raw;
    return [name, value];
  });
}

/** Sets each flag on tf.env(); a flag that neither tfjs-core nor the running backend registers is one error line. */
export function applyTfjsFlags(flags: ReadonlyArray<[string, TfjsFlagValue]>): void {
  const registered = (tf.env() as unknown as { flagRegistry: Record<string, unknown> }).flagRegistry;
  for (const [name, value] of flags) {
    if (registered[name] === undefined) {
      fail(`${TFJS_FLAGS_ENV}: tfjs has no flag ${name} with the ${tf.getBackend()} backend`, "check the name against the backend's flags.ts, or unset it");
    }
    tf.env().set(name, value);
  }
}
