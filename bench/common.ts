import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { initBackend, type BackendName } from "../src/backend/select.js";
import { EdgeInfError, fail } from "../src/util/errors.js";

/** Repo root whether run from bench/ (tsx) or dist/bench/ (node). */
export const repoRoot = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(resolve(d, "package.json"))) d = dirname(d);
  return d;
})();

export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

/** `--name 1,4,16` → [1, 4, 16], each a positive integer (one-line error otherwise; call inside oneLineErrors). */
export function intList(name: string, fallback: string): number[] {
  const values = arg(name, fallback).split(",").map((v) => Number(v.trim()));
  for (const v of values) if (!Number.isInteger(v) || v < 1) fail(`--${name} ${arg(name, fallback)}: every entry must be a positive integer`, `e.g. --${name} ${fallback}`);
  return values;
}

/** Runs `f`; a bad-input error (EdgeInfError, e.g. from `fail`) prints one line and exits 1, as the CLI does. */
export function oneLineErrors<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (!(e instanceof EdgeInfError) || process.env.EDGEINF_DEBUG) throw e;
    process.stderr.write(`error: ${e.message}\n`);
    process.exit(1);
  }
}

export function defaultModel(): string {
  const edge = resolve(repoRoot, "../shared/models/edge-lm");
  return existsSync(resolve(edge, "config.json")) ? edge : resolve(repoRoot, "../shared/models/stories260K/stories260K.bin");
}

/** Backends to measure: --backends a,b or every one that starts here. */
export async function backendsToRun(): Promise<BackendName[]> {
  const asked = arg("backends", "");
  if (asked) return asked.split(",") as BackendName[];
  const out: BackendName[] = [];
  for (const b of ["tensorflow", "webgpu", "wasm", "cpu"] as BackendName[]) {
    try {
      await initBackend(b, { log: () => {} });
      out.push(b);
    } catch {
      /* not available here */
    }
  }
  return out;
}

/** What torchRun gives: the script's JSON, or why there is none (one line). */
export type TorchOutcome = { ok: Record<string, number | string> } | { error: string };

/**
 * bench/torch_llama.py with `args` on EDGEINF_TORCH_PYTHON (default Debian's /usr/bin/python3): null when that
 * Python or its torch is missing, else its JSON or the error's last line (a failure, e.g. CUDA out of memory, or
 * `timeoutS` passed).
 */
export function torchRun(args: string[], timeoutS?: number): TorchOutcome | null {
  const py = process.env.EDGEINF_TORCH_PYTHON ?? "/usr/bin/python3";
  if (!existsSync(py)) return null;
  const probe = spawnSync(py, ["-c", "import torch"], { encoding: "utf8" });
  if (probe.status !== 0) return null;
  // OPENBLAS_CORETYPE/L2_SIZE are pinned on this workplace's machines for old OpenBLAS builds; they slow a current one.
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const r = spawnSync(py, [resolve(repoRoot, "bench/torch_llama.py"), ...args], {
    encoding: "utf8",
    env,
    maxBuffer: 1 << 24,
    ...(timeoutS !== undefined ? { timeout: timeoutS * 1000, killSignal: "SIGKILL" as const } : {}),
  });
  if (r.error || r.signal) return { error: r.signal ? `killed by ${r.signal} (timeout ${timeoutS ?? "-"} s?)` : String(r.error?.message) };
  if (r.status !== 0) {
    const lines = r.stderr.trim().split("\n").filter((l) => l.trim() !== "");
    return { error: `exit ${r.status}: ${(lines.at(-1) ?? "").slice(0, 200)}` };
  }
  return { ok: JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, number | string> };
}

/** Debian's python3-torch, when installed, runs bench/torch_llama.py for the same work in the same run. */
export function torchBench(args: string[]): Record<string, number | string> | null {
  const r = torchRun(args);
  if (r === null) return null;
  if ("error" in r) {
    process.stderr.write(`torch bench failed: ${r.error}\n`);
    return null;
  }
  return r.ok;
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === "number" ? (Number.isInteger(c) ? String(c) : c.toFixed(2)) : c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => "| " + r.map((c, i) => c.padStart(widths[i]!)).join(" | ") + " |";
  return [line(headers), "|" + widths.map((w) => "-".repeat(w + 1) + ":").join("|") + "|", ...cells.map(line)].join("\n");
}

export const ratio = (a: number, b: number | undefined | null): string => (b && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : "n/a");

export function machineLine(): string {
  const os = require_os();
  return `${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}, Node ${process.version}`;
}

import * as osModule from "node:os";
function require_os() {
  return osModule;
}
