import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ["default"],
    // Two test files run at once on 2 cores: each single-threaded (test/wasm-threads.test.ts starts threads itself).
    env: { EDGEINF_WASM_THREADS: "1" },
  },
});
