import { createRequire } from "node:module";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import * as tf from "../src/tf.js";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureFreshBuild, runCli } from "./fixtures/cli.js";
import { backendName, dawnFlags, hasVulkanLoader, initBackend, isSoftwareAdapter, requestFromEnv, wasmMatMulModeFromEnv, type BackendInfo } from "../src/backend/select.js";
import { isWasmMatMulInstalled } from "../src/backend/wasm-matmul.js";
import { measureMatmulGflops, productFlops } from "../src/backend/matmul-gflops.js";
import { EdgeInfError } from "../src/util/errors.js";

const require = createRequire(import.meta.url);

function installed(pkg: string): boolean {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

const tfjsNodeGpuInstalled = installed("@tensorflow/tfjs-node-gpu");
const tfjsNodeInstalled = installed("@tensorflow/tfjs-node");

const savedEnv = { backend: process.env["EDGEINF_BACKEND"], matmul: process.env["EDGEINF_WASM_MATMUL"] };
afterEach(() => {
  for (const [key, value] of [
    ["EDGEINF_BACKEND", savedEnv.backend],
    ["EDGEINF_WASM_MATMUL", savedEnv.matmul],
  ] as const) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
});

describe("env parsing", () => {
  it("EDGEINF_BACKEND accepts backend names and auto, rejects others with one line", () => {
    expect(requestFromEnv(undefined)).toBe("auto");
    expect(requestFromEnv("")).toBe("auto");
    expect(requestFromEnv("wasm")).toBe("wasm");
    expect(requestFromEnv("tensorflow")).toBe("tensorflow");
    expect(() => requestFromEnv("gpu")).toThrow(EdgeInfError);
    expect(() => requestFromEnv("gpu")).toThrow(/^EDGEINF_BACKEND=gpu is not a backend — use one of auto, tensorflow, webgpu, wasm, cpu$/);
  });

  it("EDGEINF_WASM_MATMUL accepts project and native", () => {
    expect(wasmMatMulModeFromEnv(undefined)).toBe("project");
    expect(wasmMatMulModeFromEnv("native")).toBe("native");
    expect(wasmMatMulModeFromEnv("project-gemm")).toBe("project-gemm");
    expect(() => wasmMatMulModeFromEnv("fast")).toThrow(/EDGEINF_WASM_MATMUL=fast/);
  });

  it("EDGEINF_DAWN_FLAGS is a comma-separated list of Dawn's creation flags", () => {
    expect(dawnFlags({})).toEqual([]);
    expect(dawnFlags({ EDGEINF_DAWN_FLAGS: "" })).toEqual([]);
    expect(dawnFlags({ EDGEINF_DAWN_FLAGS: " enable-dawn-features=allow_unsafe_apis , backend=vulkan," })).toEqual(["enable-dawn-features=allow_unsafe_apis", "backend=vulkan"]);
  });
});

// These run in order: they share the process-wide tfjs engine and the selection state.
describe("initBackend", () => {
  let autoInfo: BackendInfo;

  it("auto takes the first backend that starts and logs why the others were skipped", async () => {
    delete process.env["EDGEINF_BACKEND"];
    delete process.env["EDGEINF_WASM_MATMUL"];
    const lines: string[] = [];
    autoInfo = await initBackend(undefined, { log: (l) => lines.push(l) });

    const labels = autoInfo.tried.map((t) => t.name);
    expect(["tfjs-node-gpu", "webgpu", "tfjs-node", "wasm", "cpu"].slice(0, labels.length)).toEqual(labels);
    // Everything before the chosen one failed, the last one tried is the chosen one.
    const last = autoInfo.tried[autoInfo.tried.length - 1];
    expect(last.ok).toBe(true);
    expect(autoInfo.tried.slice(0, -1).every((t) => !t.ok)).toBe(true);
    const expectedName = { "tfjs-node-gpu": "tensorflow", "tfjs-node": "tensorflow", webgpu: "webgpu", wasm: "wasm", cpu: "cpu" }[last.name];
    expect(autoInfo.name).toBe(expectedName);
    expect(backendName()).toBe(autoInfo.name);

    if (!tfjsNodeGpuInstalled) expect(autoInfo.tried[0]).toEqual({ name: "tfjs-node-gpu", ok: false, why: "not installed" });
    if (!tfjsNodeInstalled && labels.includes("tfjs-node")) {
      expect(autoInfo.tried[2]).toEqual({ name: "tfjs-node", ok: false, why: "not installed" });
    }
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(`backend: ${autoInfo.name} (${autoInfo.reason})`);
    expect(lines[0]).not.toContain("\n");
    expect(autoInfo.reason.startsWith("auto: ")).toBe(true);
    for (const t of autoInfo.tried.slice(0, -1)) expect(autoInfo.reason).toContain(t.why);
    if (autoInfo.name === "wasm") {
      expect(autoInfo.reason).toContain("matmul: project");
      expect(autoInfo.wasmMatMul).toBe("project");
      expect(isWasmMatMulInstalled()).toBe(true);
    }
  });

  it("is idempotent: a second call returns the same info and does not log again", async () => {
    const lines: string[] = [];
    const again = await initBackend(undefined, { log: (l) => lines.push(l) });
    expect(again).toBe(autoInfo);
    const named = await initBackend(autoInfo.name, { log: (l) => lines.push(l) });
    expect(named).toBe(autoInfo);
    expect(lines).toEqual([]);
  });

  it("an explicit request switches backend: cpu", async () => {
    const lines: string[] = [];
    const info = await initBackend("cpu", { log: (l) => lines.push(l) });
    expect(info).toEqual({ name: "cpu", reason: "requested", tried: [{ name: "cpu", ok: true, why: "ok" }] });
    expect(backendName()).toBe("cpu");
    expect(lines).toEqual(["backend: cpu (requested)"]);
    // cpu really computes: 2x2 product checked by hand.
    const product = tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2]));
    expect(Array.from(product.dataSync())).toEqual([19, 22, 43, 50]);
  });

  it("EDGEINF_BACKEND picks the backend and EDGEINF_WASM_MATMUL=native keeps wasm's own kernel", async () => {
    process.env["EDGEINF_BACKEND"] = "wasm";
    process.env["EDGEINF_WASM_MATMUL"] = "native";
    const lines: string[] = [];
    const info = await initBackend(undefined, { log: (l) => lines.push(l) });
    expect(info.name).toBe("wasm");
    expect(info.wasmMatMul).toBe("native");
    expect(isWasmMatMulInstalled()).toBe(false);
    expect(lines).toEqual(["backend: wasm (EDGEINF_BACKEND=wasm; matmul: native; threads: 1)"]);
    expect(backendName()).toBe("wasm");
  });

  it("EDGEINF_BACKEND with an unknown name rejects with an EdgeInfError", async () => {
    process.env["EDGEINF_BACKEND"] = "tpu";
    await expect(initBackend()).rejects.toThrow(EdgeInfError);
  });

  it.skipIf(tfjsNodeInstalled || tfjsNodeGpuInstalled)(
    "an explicit backend that cannot start fails with one line saying why and what to install",
    async () => {
      const lines: string[] = [];
      const attempt = initBackend("tensorflow", { log: (l) => lines.push(l) });
      await expect(attempt).rejects.toThrow(EdgeInfError);
      const message = await attempt.then(
        () => "",
        (e: unknown) => (e as Error).message,
      );
      expect(message).toBe(
        "backend tensorflow cannot start (tfjs-node-gpu not installed; tfjs-node not installed) — " +
          "install @tensorflow/tfjs-node@4.22.0 (offline: scripts/provision-libtensorflow.sh <libtensorflow tarball>, see docs/backends.md) or use --backend wasm",
      );
      expect(lines).toEqual([]);
      // The failure does not stick: the previous backend still runs.
      expect(backendName()).toBe("wasm");
    },
  );
});

describe("matmul throughput", () => {
  it("productFlops counts 2·batch·M·K·N with broadcasting and transposes", () => {
    expect(productFlops({ aShape: [512, 512], bShape: [512, 512] })).toBe(2 * 512 ** 3);
    expect(productFlops({ aShape: [8, 256, 64], bShape: [8, 64, 256] })).toBe(2 * 8 * 256 * 64 * 256);
    expect(productFlops({ aShape: [2, 1, 3, 4], bShape: [5, 6, 4], transposeB: true })).toBe(2 * 2 * 5 * 3 * 4 * 6);
    expect(productFlops({ aShape: [4, 3], bShape: [4, 7], transposeA: true })).toBe(2 * 3 * 4 * 7);
    expect(() => productFlops({ aShape: [3, 4], bShape: [5, 6] })).toThrow(EdgeInfError);
  });

  it("measureMatmulGflops returns a positive finite rate and leaks nothing", async () => {
    await tf.setBackend("wasm");
    const before = tf.memory().numTensors;
    const gflops = await measureMatmulGflops(64, 3);
    expect(Number.isFinite(gflops)).toBe(true);
    expect(gflops).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
    await expect(measureMatmulGflops(64, 0)).rejects.toThrow(EdgeInfError);
  });
});

describe("auto passes over software WebGPU adapters", () => {
  it("tells lavapipe, SwiftShader and fallback adapters from GPUs by what Dawn reports", () => {
    // what Dawn reported for lavapipe here (bench/gpu-bench.ts' adapter line) and for the lent H100
    expect(isSoftwareAdapter({ info: { vendor: "mesa", architecture: "software", device: "llvmpipe-llvm-15-0-6-256-bits-", description: "llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)" } })).toBe(true);
    expect(isSoftwareAdapter({ info: { vendor: "google", architecture: "", description: "SwiftShader Device (Subzero)" } })).toBe(true);
    expect(isSoftwareAdapter({ isFallbackAdapter: true, info: {} })).toBe(true);
    expect(isSoftwareAdapter({ info: { vendor: "nvidia", architecture: "hopper", device: "", description: "NVIDIA H100 80GB HBM3" } })).toBe(false);
    expect(isSoftwareAdapter({})).toBe(false);
    expect(isSoftwareAdapter(null)).toBe(false);
  });
});

describe("webgpu probe without a Vulkan loader", () => {
  beforeAll(() => ensureFreshBuild());
  it("finds libvulkan.so.1 through LD_LIBRARY_PATH", () => {
    const dir = mkdtempSync(join(tmpdir(), "edgeinf-vk-"));
    writeFileSync(join(dir, "libvulkan.so.1"), "");
    expect(hasVulkanLoader({ LD_LIBRARY_PATH: `/nonexistent:${dir}` })).toBe(true);
  });

  it.skipIf(process.platform !== "linux" || hasVulkanLoader())("auto skips Dawn quietly and says why in the backend line", async () => {
    const r = await runCli(["generate", "-m", "../shared/models/stories260K/stories260K.bin", "-p", "Once", "-n", "1"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain("Couldn't load Vulkan");
    expect(r.stderr).toMatch(/webgpu: no Vulkan loader \(libvulkan\.so\.1\)/);
  });
});
