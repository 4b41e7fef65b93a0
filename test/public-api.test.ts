/**
 * The public API as a user meets it: `import … from "edgeinfinite"` resolved by Node through package.json's exports
 * map against the built dist/ (package self-reference, so the importing files are written inside the repo, in the
 * git-ignored .cache/). docs/api.md's program (its first ```ts block) is type-checked against dist's declarations
 * and run with tsx; deep imports are refused; every runtime export is described in docs/api.md.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUILD_TIMEOUT_MS, ROOT, cliEnv, ensureFreshBuild, type CliResult } from "./fixtures/cli.js";

const DOC = join(ROOT, "docs/api.md");
const PROGRAM_TIMEOUT_MS = 90_000;

/** `file` run with `args` from the repo root (clean environment as for the CLI tests), without blocking vitest. */
function run(file: string, args: readonly string[], timeoutMs = PROGRAM_TIMEOUT_MS): Promise<CliResult> {
  return new Promise((done) => {
    execFile(file, args, { cwd: ROOT, env: cliEnv(), timeout: timeoutMs, maxBuffer: 16 << 20, encoding: "utf8" }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
      done({ code: e ? (typeof e.code === "number" ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}

const context = (r: CliResult): string => `exit ${r.code}${r.signal ? ` (${r.signal})` : ""}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

/** The first ```ts block of docs/api.md. */
function docProgram(): string {
  const m = /^```ts\n([\s\S]*?)^```$/m.exec(readFileSync(DOC, "utf8"));
  if (!m) throw new Error(`${DOC} has no \`\`\`ts block`);
  return m[1]!;
}

let dir = "";
beforeAll(() => {
  ensureFreshBuild();
  mkdirSync(join(ROOT, ".cache"), { recursive: true });
  dir = mkdtempSync(join(ROOT, ".cache", "public-api-"));
}, BUILD_TIMEOUT_MS);
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("package exports", () => {
  it("resolves edgeinfinite to dist/src/index.js, refuses deep imports, and docs/api.md describes every export", async () => {
    const probe = join(dir, "resolve.mjs");
    writeFileSync(
      probe,
      [
        `const code = async (spec) => { try { await import(spec); return "loaded"; } catch (e) { return e.code ?? String(e); } };`,
        `const api = await import("edgeinfinite");`,
        `console.log(JSON.stringify({`,
        `  main: import.meta.resolve("edgeinfinite"),`,
        `  pkg: import.meta.resolve("edgeinfinite/package.json"),`,
        `  deep: await code("edgeinfinite/dist/src/tf.js"),`,
        `  deepSrc: await code("edgeinfinite/src/index.ts"),`,
        `  version: api.VERSION,`,
        `  names: Object.keys(api).sort(),`,
        `}));`,
      ].join("\n"),
    );
    const r = await run(process.execPath, [probe]);
    expect(r.code, context(r)).toBe(0);
    const out = JSON.parse(r.stdout) as { main: string; pkg: string; deep: string; deepSrc: string; version: string; names: string[] };
    expect(out.main).toBe(pathToFileURL(join(ROOT, "dist/src/index.js")).href);
    expect(out.pkg).toBe(pathToFileURL(join(ROOT, "package.json")).href);
    expect(out.deep).toBe("ERR_PACKAGE_PATH_NOT_EXPORTED");
    expect(out.deepSrc).toBe("ERR_PACKAGE_PATH_NOT_EXPORTED");
    expect(out.version).toBe((JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version);
    // A curated surface: the entry points of every area, and no internals.
    for (const name of ["initBackend", "loadBackbone", "createSession", "generate", "methodNames", "methodByName", "createPolicy", "MemoryGatingModule", "train", "loadRecipe", "validateRecipe", "runSuite", "loadSuite", "parseSuite", "scorePrediction", "report", "exportOnnx", "exportSafetensors", "openCheckpointForExport"]) {
      expect(out.names).toContain(name);
    }
    for (const internal of ["fail", "writeFileAtomic", "acquireDirLock", "prepareRun", "trainStep", "growRope", "runSample"]) expect(out.names).not.toContain(internal);
    const doc = readFileSync(DOC, "utf8");
    const undocumented = out.names.filter((n) => !doc.includes(`\`${n}\``) && !doc.includes(`\`${n}(`) && !doc.includes(`\`${n}.`));
    expect(undocumented, "runtime exports missing from docs/api.md's list").toEqual([]);
  });
});

describe("docs/api.md program", () => {
  it("type-checks against dist's declarations, runs, prints the three methods' table and writes an ONNX file", async () => {
    const program = join(dir, "api-demo.ts");
    writeFileSync(program, docProgram());

    // Strict NodeNext, as a user's project: "edgeinfinite" must resolve through the exports map's types condition.
    const tsc = await run(process.execPath, [
      join(ROOT, "node_modules/typescript/bin/tsc"),
      ...["--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--skipLibCheck", "--types", "node", "--listFiles"],
      program,
    ]);
    expect(tsc.code, context(tsc)).toBe(0);
    expect(tsc.stdout.split("\n")).toContain(join(ROOT, "dist/src/index.d.ts"));

    const r = await run(join(ROOT, "node_modules/.bin/tsx"), [program]);
    const onnx = /^wrote (\S+\.onnx) \((\d+) bytes\); tensors alive: (\d+)$/m.exec(r.stdout);
    // The program makes its own temp folder (<tmpdir>/edgeinf-api-XXXXXX) for the checkpoint, run and ONNX file.
    const made = onnx ? dirname(onnx[1]!) : null;
    try {
      expect(r.code, context(r)).toBe(0);
      expect(r.stdout, context(r)).toMatch(/^stories260K: 5 layers, context 512, on \w+$/m);
      expect(r.stdout).toMatch(/^held-out loss \d+\.\d{4} \(untrained \d+\.\d{4}\)$/m);
      // The score pivot (one column per method, in suite order) and one row per method in the full table.
      expect(r.stdout).toMatch(/^\|task\|length\|full\|streaming\|edgeinfinite\|$/m);
      for (const method of ["full", "streaming", "edgeinfinite"]) expect(r.stdout).toMatch(new RegExp(`^\\|passkey\\|256\\|${method}\\|2\\|`, "m"));
      expect(onnx, context(r)).not.toBeNull();
      expect(basename(made!)).toMatch(/^edgeinf-api-/);
      expect(statSync(onnx![1]!).size).toBe(Number(onnx![2]));
      expect(Number(onnx![2])).toBeGreaterThan(1000);
      expect(readFileSync(join(made!, "module", "latest.json"), "utf8")).toMatch(/step-000002/);
      expect(Number(onnx![3]), "tensors left after train, runSuite and the disposed export module").toBe(0);
    } finally {
      if (made !== null && basename(made).startsWith("edgeinf-api-") && existsSync(made)) rmSync(made, { recursive: true, force: true });
    }
  });
});
