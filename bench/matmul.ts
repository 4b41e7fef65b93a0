/**
 * wasm matMul throughput: wasm's own BatchMatMul kernel vs the project kernel
 * (src/backend/wasm-matmul.ts). Usage: node dist/bench/matmul.js [--repeats 5]
 */
import os from "node:os";
import { initBackend } from "../src/backend/select.js";
import { installWasmMatMul, uninstallWasmMatMul } from "../src/backend/wasm-matmul.js";
import { measureProductGflops, type ProductSpec } from "../src/backend/matmul-gflops.js";

const ROUNDS = 3;

interface BenchCase {
  label: string;
  spec: ProductSpec;
}

const CASES: BenchCase[] = [
  { label: "plain 512x512x512", spec: { aShape: [512, 512], bShape: [512, 512] } },
  { label: "transposeB 512x512x512", spec: { aShape: [512, 512], bShape: [512, 512], transposeB: true } },
  { label: "batched [8,256,64]x[8,64,256]", spec: { aShape: [8, 256, 64], bShape: [8, 64, 256] } },
  // Shapes the edge-lm backbone produces (6 heads, head_dim 64, hidden 384).
  { label: "scores q·kᵀ [6,256,64]x[6,256,64]ᵀ", spec: { aShape: [6, 256, 64], bShape: [6, 256, 64], transposeB: true } },
  { label: "decode q·kᵀ [6,1,64]x[6,1024,64]ᵀ", spec: { aShape: [6, 1, 64], bShape: [6, 1024, 64], transposeB: true } },
  { label: "grad dW = xᵀ·dy [256,384]ᵀx[256,1024]", spec: { aShape: [256, 384], bShape: [256, 1024], transposeA: true } },
];

function parseRepeats(argv: string[]): number {
  const i = argv.indexOf("--repeats");
  if (i < 0) return 5;
  const n = Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--repeats ${argv[i + 1]} is invalid: use an integer >= 1`);
  return n;
}

async function main(): Promise<void> {
  const repeats = parseRepeats(process.argv.slice(2));
  await initBackend("wasm", { log: (line) => console.log(line) });
  console.log(`node ${process.version}, ${os.cpus()[0]?.model ?? "unknown cpu"} x${os.cpus().length}, wasm single-threaded, best of ${ROUNDS} alternating rounds, each the median of ${repeats}`);
  const rows: string[][] = [["product", "native GFLOP/s", "project GFLOP/s", "ratio"]];
  for (const c of CASES) {
    // Alternate the two kernels over ROUNDS rounds and keep each one's best median, so a burst
    // of load from other processes does not land on one side only.
    let native = 0;
    let project = 0;
    for (let round = 0; round < ROUNDS; round++) {
      uninstallWasmMatMul();
      native = Math.max(native, await measureProductGflops(c.spec, repeats));
      installWasmMatMul();
      project = Math.max(project, await measureProductGflops(c.spec, repeats));
    }
    rows.push([c.label, native.toFixed(2), project.toFixed(2), `${(project / native).toFixed(1)}x`]);
  }
  const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  const line = (r: string[]): string => `| ${r.map((cell, j) => (j === 0 ? cell.padEnd(widths[j]) : cell.padStart(widths[j]))).join(" | ")} |`;
  console.log(line(rows[0]));
  console.log(`|${widths.map((w, j) => (j === 0 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`);
  for (const r of rows.slice(1)) console.log(line(r));
}

main().catch((e: unknown) => {
  console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
