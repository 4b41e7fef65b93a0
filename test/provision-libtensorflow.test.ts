/**
 * scripts/provision-libtensorflow.sh end to end, with stand-ins and without network.
 *
 * The script is run with `bash` exactly as a user would run it. What it would reach outside this machine is stood in for:
 * - `npm` is a stand-in placed first on PATH. `npm pack` either fails or writes a tiny package tarball whose
 *   scripts/deps-constants.js pins a libtensorflow version. `npm install` records its argv, cwd and environment, then
 *   downloads what tfjs-node's scripts/install.js and node-pre-gyp would download, from the URLs they would build from
 *   TFJS_NODE_BASE_URI and npm_config_tfjs_binding_binary_host_mirror. It saves the bytes, and "installs" a fake
 *   @tensorflow/tfjs-node(-gpu) into a directory on NODE_PATH, never into the repo's node_modules.
 * - The fake package registers backend "tensorflow" (a bare tfjs-core KernelBackend) with the repo's tfjs-core, so the
 *   script's own final check (`require` the package, find the backend in our tfjs-core, setBackend) runs unchanged.
 * - The libtensorflow and binding tarballs are small tar.gz files made here.
 * TMPDIR points into the test's directory, so the script's `mktemp -d` can be checked for removal.
 *
 * Not covered: a real `npm install @tensorflow/tfjs-node` against a real libtensorflow tarball (see docs/backends.md).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
const SCRIPT = join(ROOT, "scripts/provision-libtensorflow.sh");
const TFJS_VERSION = "4.22.0";
/** N-API version node-pre-gyp picks for tfjs-node 4.22.0 on Node >= 20 (highest of its napi_versions 3..8). */
const NAPI = 8;

/**
 * The stand-in `npm`. Plain CommonJS, run by the real node. Controlled by STUB_* variables set per run:
 * STUB_DIR (where it writes calls.jsonl and downloads/), STUB_PACK_LIB_VERSION (unset: `npm pack` fails),
 * STUB_INSTALL_FAIL=1, STUB_REGISTER=0 (the fake package loads but registers no backend), STUB_NODE_PATH.
 */
const NPM_STUB = String.raw`#!/usr/bin/env node
"use strict";
const fs = require("fs");
const path = require("path");
const http = require("http");
const { execFileSync } = require("child_process");

const dir = process.env.STUB_DIR;
const args = process.argv.slice(2);
const call = {
  argv: args,
  cwd: process.cwd(),
  TFJS_NODE_BASE_URI: process.env.TFJS_NODE_BASE_URI ?? null,
  npm_config_tfjs_binding_binary_host_mirror: process.env.npm_config_tfjs_binding_binary_host_mirror ?? null,
};
const record = (extra) => fs.appendFileSync(path.join(dir, "calls.jsonl"), JSON.stringify({ ...call, ...extra }) + "\n");

function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    }).on("error", reject);
  });
}

/** The python3 http.server serving on this port, from /proc (so the test can check it is gone afterwards). */
function serverPid(port) {
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    let cmd;
    try { cmd = fs.readFileSync("/proc/" + pid + "/cmdline", "utf8").split("\0"); } catch { continue; }
    if (cmd.includes("http.server") && cmd.includes(String(port))) return Number(pid);
  }
  return null;
}

async function main() {
  if (args[0] === "pack") {
    const libVersion = process.env.STUB_PACK_LIB_VERSION;
    if (!libVersion) { record({}); console.error("npm error network: stand-in npm pack is offline"); process.exit(1); }
    const spec = args.filter((a) => !a.startsWith("-"))[1];
    const tmp = fs.mkdtempSync(path.join(dir, "pack-"));
    fs.mkdirSync(path.join(tmp, "package/scripts"), { recursive: true });
    fs.writeFileSync(path.join(tmp, "package/scripts/deps-constants.js"),
      "/** Version of the libtensorflow shared library to depend on. */\nconst LIBTENSORFLOW_VERSION = '" + libVersion + "';\n");
    const tgz = spec.replace(/^@/, "").replace("/", "-").replace(/@.*$/, "") + "-" + spec.replace(/^.*@/, "") + ".tgz";
    execFileSync("tar", ["-czf", path.join(process.cwd(), tgz), "-C", tmp, "package"]);
    fs.rmSync(tmp, { recursive: true });
    record({ tgz });
    console.log(tgz);
    return;
  }
  if (args[0] !== "install") { record({}); console.error("stand-in npm: unexpected command " + args.join(" ")); process.exit(2); }

  const spec = args.filter((a) => !a.startsWith("-"))[1];
  const pkg = spec.replace(/@[^@]*$/, "");
  const version = spec.replace(/^.*@/, "");
  const gpu = pkg.endsWith("-gpu");
  // What tfjs-node's scripts/install.js downloads: BASE_URI + system + "-" + LIBTENSORFLOW_VERSION + ".tar.gz"
  // (the version the package pins; a failed pack in the test means the package would pin the name's version).
  const libVersion = process.env.STUB_PACK_LIB_VERSION || process.env.STUB_NAME_LIB_VERSION;
  const base = process.env.TFJS_NODE_BASE_URI || "https://storage.googleapis.com/tensorflow/libtensorflow/libtensorflow-";
  const urls = [base + (gpu ? "gpu" : "cpu") + "-linux-x86_64-" + libVersion + ".tar.gz"];
  // What node-pre-gyp downloads: url.resolve(url.resolve(host + "/", remote_path), package_name) with
  // host = npm_config_tfjs_binding_binary_host_mirror, remote_path ./napi-v{N}/{version}/, package_name from get-addon-name.js.
  const mirror = process.env.npm_config_tfjs_binding_binary_host_mirror;
  if (mirror) {
    const napi = Math.max(...[3, 4, 5, 6, 7, 8].filter((v) => v <= Number(process.versions.napi)));
    const hosted = new URL("./napi-v" + napi + "/" + version + "/", mirror.endsWith("/") ? mirror : mirror + "/");
    urls.push(new URL((gpu ? "GPU" : "CPU") + "-linux-" + version + ".tar.gz", hosted).href);
  }
  const port = new URL(base).port;
  const downloads = [];
  fs.mkdirSync(path.join(dir, "downloads"), { recursive: true });
  for (const url of urls) {
    const { status, body } = await get(url);
    const file = path.join(dir, "downloads", path.basename(new URL(url).pathname));
    if (status === 200) fs.writeFileSync(file, body);
    downloads.push({ url, status, file });
  }
  record({ downloads, serverPid: serverPid(port) });
  if (process.env.STUB_INSTALL_FAIL === "1" || downloads.some((d) => d.status !== 200)) {
    console.error("stand-in npm: install failed");
    process.exit(1);
  }
  // "Install" the package into STUB_NODE_PATH (on NODE_PATH for the script's check), not into the repo.
  const pkgDir = path.join(process.env.STUB_NODE_PATH, pkg);
  fs.mkdirSync(pkgDir, { recursive: true });
  fs.writeFileSync(path.join(pkgDir, "package.json"), JSON.stringify({ name: pkg, version, main: "index.js" }));
  fs.writeFileSync(path.join(pkgDir, "index.js"), [
    "const { createRequire } = require('module');",
    "const tf = createRequire(require('path').join(process.cwd(), 'x.js'))('@tensorflow/tfjs-core');",
    process.env.STUB_REGISTER === "0" ? "" : "tf.registerBackend('tensorflow', () => new tf.KernelBackend(), 1);",
  ].join("\n"));
}
main().catch((e) => { console.error(e); process.exit(3); });
`;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Directory of this run's stand-in state: calls.jsonl, downloads/, node_path/, tmp/ (the script's TMPDIR). */
  dir: string;
}

interface Call {
  argv: string[];
  cwd: string;
  TFJS_NODE_BASE_URI: string | null;
  npm_config_tfjs_binding_binary_host_mirror: string | null;
  tgz?: string;
  downloads?: { url: string; status: number; file: string }[];
  serverPid?: number | null;
}

let base: string;
let binDir: string;
let cpuTarball: string;
let gpuTarball: string;
let cpuBinding: string;
let gpuBinding: string;
let runCount = 0;
/** http.server pids seen by the stand-in; afterAll kills any that a broken cleanup left running. */
const serverPids = new Set<number>();

/** A small tar.gz with known content. */
function makeTarball(path: string, files: Record<string, string>): void {
  const src = mkdtempSync(join(base, "src-"));
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(src, name, ".."), { recursive: true });
    writeFileSync(join(src, name), content);
  }
  execFileSync("tar", ["-czf", path, "-C", src, "."]);
  rmSync(src, { recursive: true });
}

function runScript(args: string[], stub: Record<string, string> = {}, timeoutMs = 15_000): Promise<Run> {
  const dir = join(base, `run-${++runCount}`);
  mkdirSync(join(dir, "tmp"), { recursive: true });
  mkdirSync(join(dir, "node_path"), { recursive: true });
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ["TFJS_NODE_BASE_URI", "npm_config_tfjs_binding_binary_host_mirror", "TFJS_NODE_VERSION", "NODE_OPTIONS"]) delete env[k];
  Object.assign(env, {
    PATH: `${binDir}:${process.env.PATH}`,
    TMPDIR: join(dir, "tmp"),
    NODE_PATH: join(dir, "node_path"),
    STUB_DIR: dir,
    STUB_NODE_PATH: join(dir, "node_path"),
    ...stub,
  });
  return new Promise((resolveRun, reject) => {
    const child = spawn("bash", [SCRIPT, ...args], { cwd: base, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        /* already gone */
      }
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolveRun({ code, signal, stdout, stderr, dir });
    });
  });
}

function calls(run: Run): Call[] {
  const file = join(run.dir, "calls.jsonl");
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Call);
}

function expectOk(run: Run): void {
  expect(run.signal, run.stderr).toBeNull();
  expect(run.code, `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`).toBe(0);
}

/** The script's one line on stderr, for an input it refuses before doing anything. */
function expectOneLineError(run: Run, ...parts: (string | RegExp)[]): void {
  expect(run.signal, run.stderr).toBeNull();
  expect(run.code).not.toBe(0);
  const lines = run.stderr.trim().split("\n");
  expect(lines, run.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^provision-libtensorflow: /);
  for (const p of parts) expect(lines[0]).toMatch(typeof p === "string" ? new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : p);
  expect(run.stdout).toBe("");
  expect(calls(run)).toEqual([]);
}

/** True once nothing accepts connections on 127.0.0.1:port. */
function portClosed(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ host: "127.0.0.1", port });
    s.on("connect", () => {
      s.destroy();
      res(false);
    });
    s.on("error", () => res(true));
  });
}

/** A process that no longer runs: /proc entry gone, or a zombie nobody has reaped yet. */
function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

/** After the script exits: the server is gone (port closed, process ended) and the script's temp dir removed. */
async function expectCleanedUp(run: Run, port: number, pid: number | null | undefined): Promise<void> {
  expect(readdirSync(join(run.dir, "tmp")), "the script's mktemp dir is still there").toEqual([]);
  expect(pid, "the stand-in npm did not find the http.server process").toBeTypeOf("number");
  serverPids.add(pid!);
  let gone = false;
  for (let i = 0; i < 40 && !gone; i++) {
    gone = processGone(pid!) && (await portClosed(port));
    if (!gone) await new Promise((r) => setTimeout(r, 50));
  }
  expect(gone, `http.server (pid ${pid}, port ${port}) still running after the script exited`).toBe(true);
}

function tensorflowPackages(): string[] {
  const dir = join(ROOT, "node_modules/@tensorflow");
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

const linuxX64 = process.platform === "linux" && process.arch === "x64";

describe.skipIf(!linuxX64)("scripts/provision-libtensorflow.sh", () => {
  let packagesBefore: string[];

  beforeAll(() => {
    packagesBefore = tensorflowPackages();
    base = mkdtempSync(join(tmpdir(), "provision-test-"));
    binDir = join(base, "bin");
    mkdirSync(binDir);
    writeFileSync(join(binDir, "npm"), NPM_STUB);
    chmodSync(join(binDir, "npm"), 0o755);
    mkdirSync(join(base, "dl"));
    cpuTarball = join(base, "dl/libtensorflow-cpu-linux-x86_64-2.9.1.tar.gz");
    gpuTarball = join(base, "dl/libtensorflow-gpu-linux-x86_64-2.9.1.tar.gz");
    cpuBinding = join(base, "dl", `CPU-linux-${TFJS_VERSION}.tar.gz`);
    gpuBinding = join(base, "dl", `GPU-linux-${TFJS_VERSION}.tar.gz`);
    makeTarball(cpuTarball, { "lib/libtensorflow.so.2.9.1": "fake cpu libtensorflow\n", "include/tensorflow/c/c_api.h": "/* fake */\n" });
    makeTarball(gpuTarball, { "lib/libtensorflow.so.2.9.1": "fake gpu libtensorflow\n" });
    makeTarball(cpuBinding, { [`lib/napi-v${NAPI}/tfjs_binding.node`]: "fake cpu binding\n" });
    makeTarball(gpuBinding, { [`lib/napi-v${NAPI}/tfjs_binding.node`]: "fake gpu binding\n" });
  });

  afterAll(() => {
    for (const pid of serverPids) {
      let cmd = "";
      try {
        cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      } catch {
        /* gone */
      }
      if (cmd.includes("http.server") && !processGone(pid)) process.kill(pid, "SIGKILL");
    }
    if (base) rmSync(base, { recursive: true, force: true });
    // The stand-in never writes into the repo; this guards against the script installing there for real.
    expect(tensorflowPackages()).toEqual(packagesBefore);
  });

  it("serves the libtensorflow and binding tarballs where tfjs-node's install looks for them, then checks the backend", async () => {
    const run = await runScript([cpuTarball, cpuBinding], { STUB_PACK_LIB_VERSION: "2.9.1" });
    expectOk(run);
    expect(run.stdout).toMatch(/provision-libtensorflow: ok, backend tensorflow tfjs-core 4\.22\.0/);

    const [pack, install, ...rest] = calls(run);
    expect(rest).toEqual([]);
    expect(pack!.argv).toEqual(["pack", "--silent", `@tensorflow/tfjs-node@${TFJS_VERSION}`]);
    expect(pack!.cwd.startsWith(join(run.dir, "tmp") + "/"), "npm pack runs in the script's temp dir").toBe(true);

    expect(install!.argv).toEqual(["install", "--no-save", `@tensorflow/tfjs-node@${TFJS_VERSION}`]);
    expect(install!.cwd, "npm install runs in the repo root").toBe(ROOT);
    const m = /^http:\/\/127\.0\.0\.1:(\d+)\/libtensorflow-$/.exec(install!.TFJS_NODE_BASE_URI ?? "");
    expect(m, `TFJS_NODE_BASE_URI=${install!.TFJS_NODE_BASE_URI}`).not.toBeNull();
    const port = Number(m![1]);
    expect(install!.npm_config_tfjs_binding_binary_host_mirror).toBe(`http://127.0.0.1:${port}/`);

    expect(install!.downloads!.map((d) => [d.url, d.status])).toEqual([
      [`http://127.0.0.1:${port}/libtensorflow-cpu-linux-x86_64-2.9.1.tar.gz`, 200],
      [`http://127.0.0.1:${port}/napi-v${NAPI}/${TFJS_VERSION}/CPU-linux-${TFJS_VERSION}.tar.gz`, 200],
    ]);
    const [lib, binding] = install!.downloads!;
    expect(readFileSync(lib!.file).equals(readFileSync(cpuTarball)), "served libtensorflow differs from the tarball").toBe(true);
    expect(readFileSync(binding!.file).equals(readFileSync(cpuBinding)), "served binding differs from the tarball").toBe(true);

    await expectCleanedUp(run, port, install!.serverPid);
  });

  it("falls back to the version in the file name when npm pack fails, and sets no binding mirror without a binding", async () => {
    const run = await runScript([cpuTarball], { STUB_NAME_LIB_VERSION: "2.9.1" });
    expectOk(run);
    expect(run.stderr).toContain("provision-libtensorflow: npm pack failed; assuming libtensorflow 2.9.1 from the file name");
    const [pack, install] = calls(run);
    expect(pack!.argv[0]).toBe("pack");
    expect(install!.npm_config_tfjs_binding_binary_host_mirror).toBeNull();
    const port = Number(new URL(install!.TFJS_NODE_BASE_URI!).port);
    expect(install!.downloads!.map((d) => [d.url, d.status])).toEqual([
      [`http://127.0.0.1:${port}/libtensorflow-cpu-linux-x86_64-2.9.1.tar.gz`, 200],
    ]);
    expect(readFileSync(install!.downloads![0]!.file).equals(readFileSync(cpuTarball))).toBe(true);
    await expectCleanedUp(run, port, install!.serverPid);
  });

  it("a tarball with gpu in its name installs @tensorflow/tfjs-node-gpu; the version npm pack reports wins over the name's", async () => {
    // Named 2.9.1, but the (stand-in) package pins 2.10.0: served under the package's version, with a warning.
    const run = await runScript([gpuTarball, gpuBinding], { STUB_PACK_LIB_VERSION: "2.10.0" });
    expectOk(run);
    expect(run.stderr).toContain(
      `provision-libtensorflow: warning: @tensorflow/tfjs-node-gpu@${TFJS_VERSION} expects libtensorflow 2.10.0, tarball says 2.9.1`,
    );
    const [pack, install] = calls(run);
    expect(pack!.argv).toEqual(["pack", "--silent", `@tensorflow/tfjs-node-gpu@${TFJS_VERSION}`]);
    expect(install!.argv).toEqual(["install", "--no-save", `@tensorflow/tfjs-node-gpu@${TFJS_VERSION}`]);
    const port = Number(new URL(install!.TFJS_NODE_BASE_URI!).port);
    expect(install!.downloads!.map((d) => [d.url, d.status])).toEqual([
      [`http://127.0.0.1:${port}/libtensorflow-gpu-linux-x86_64-2.10.0.tar.gz`, 200],
      [`http://127.0.0.1:${port}/napi-v${NAPI}/${TFJS_VERSION}/GPU-linux-${TFJS_VERSION}.tar.gz`, 200],
    ]);
    expect(readFileSync(install!.downloads![0]!.file).equals(readFileSync(gpuTarball))).toBe(true);
    expect(readFileSync(install!.downloads![1]!.file).equals(readFileSync(gpuBinding))).toBe(true);
    expect(run.stdout).toMatch(/ok, backend tensorflow/);
    await expectCleanedUp(run, port, install!.serverPid);
  });

  it("fails, and still cleans up, when npm install fails or the installed package registers no backend", async () => {
    const failed = await runScript([cpuTarball], { STUB_PACK_LIB_VERSION: "2.9.1", STUB_INSTALL_FAIL: "1" });
    expect(failed.code).not.toBe(0);
    expect(failed.stdout).not.toMatch(/ok, backend/);
    const i1 = calls(failed)[1]!;
    await expectCleanedUp(failed, Number(new URL(i1.TFJS_NODE_BASE_URI!).port), i1.serverPid);

    const unregistered = await runScript([cpuTarball], { STUB_PACK_LIB_VERSION: "2.9.1", STUB_REGISTER: "0" });
    expect(unregistered.code).not.toBe(0);
    expect(unregistered.stderr).toContain("@tensorflow/tfjs-node loaded but backend tensorflow is not in our tfjs-core");
    const i2 = calls(unregistered)[1]!;
    await expectCleanedUp(unregistered, Number(new URL(i2.TFJS_NODE_BASE_URI!).port), i2.serverPid);
  });

  it("refuses bad input with one line naming the file and the fix", async () => {
    const whl = join(base, "dl/tensorflow_cpu-2.9.1-cp310-cp310-manylinux_2_17_x86_64.whl");
    writeFileSync(whl, "not a tarball");
    const missing = join(base, "dl/libtensorflow-cpu-linux-x86_64-2.9.1.tgz.missing");
    const [none, three, noFile, wheel, index, noBinding] = await Promise.all([
      runScript([]),
      runScript([cpuTarball, cpuBinding, "extra"]),
      runScript([missing]),
      runScript([whl]),
      runScript([join(base, "pip/simple/")]),
      runScript([cpuTarball, missing]),
    ]);
    expectOneLineError(none, "usage:", "LIBTENSORFLOW_TARBALL [BINDING_TARBALL]", "docs/backends.md");
    expectOneLineError(three, "usage:");
    expectOneLineError(noFile, `${missing} does not exist`, "libtensorflow-cpu-linux-x86_64-<version>.tar.gz");
    expectOneLineError(wheel, whl, "pip wheel", "build one from the wheel first", "From a tensorflow-cpu wheel");
    expectOneLineError(index, "pip wheel/index", "libtensorflow C library tarball");
    expectOneLineError(noBinding, `${missing} does not exist`, `CPU-linux-${TFJS_VERSION}.tar.gz`, "build from source");
    for (const r of [none, three, noFile, wheel, index, noBinding]) expect(readdirSync(join(r.dir, "tmp"))).toEqual([]);
  });

  it("refuses a tarball without a version in its name when npm pack fails, and removes its temp dir", async () => {
    const unnamed = join(base, "dl/libtensorflow.tar.gz");
    writeFileSync(unnamed, readFileSync(cpuTarball));
    const run = await runScript([unnamed]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(`cannot tell the libtensorflow version: npm pack @tensorflow/tfjs-node@${TFJS_VERSION} failed and libtensorflow.tar.gz has no version in its name`);
    expect(calls(run).map((c) => c.argv[0])).toEqual(["pack"]);
    expect(readdirSync(join(run.dir, "tmp"))).toEqual([]);
  });
});
