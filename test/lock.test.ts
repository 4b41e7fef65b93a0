/**
 * The output-folder lock (src/util/lock.ts) across real processes: a second process is refused with one line naming
 * the first's pid and the folder; a lock left by a dead pid is taken over; the lock goes away on exit, on SIGTERM/SIGINT
 * and on an uncaught error.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acquireDirLock, LOCK_FILE } from "../src/util/lock.js";
import { EdgeInfError } from "../src/util/errors.js";
import { BUILD_TIMEOUT_MS, ROOT, ensureFreshBuild } from "./fixtures/cli.js";

let dir = "";
beforeAll(() => {
  ensureFreshBuild();
  dir = mkdtempSync(join(tmpdir(), "edgeinf-lock-"));
}, BUILD_TIMEOUT_MS);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LOCK_JS = join(ROOT, "dist/src/util/lock.js");

/** A child process that takes the lock on `target`, prints "locked", then runs `then` (JS). */
function holder(target: string, then: string): ChildProcess {
  const script = `import { acquireDirLock } from ${JSON.stringify(LOCK_JS)};
acquireDirLock(${JSON.stringify(target)}, "test");
process.stdout.write("locked\\n");
${then}`;
  return spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
}

function waitLocked(child: ChildProcess): Promise<void> {
  return new Promise((ok, bad) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("locked")) ok();
    });
    child.on("exit", (code) => bad(new Error(`holder exited (${code}) before locking`)));
  });
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((ok) => {
    if (child.exitCode !== null || child.signalCode !== null) ok({ code: child.exitCode, signal: child.signalCode });
    else child.on("exit", (code, signal) => ok({ code, signal }));
  });
}

describe("acquireDirLock", () => {
  it("refuses a second process with one line naming the holder's pid and the folder, then lets it in after release", async () => {
    const target = join(dir, "busy");
    const child = holder(target, "setInterval(() => {}, 1000);");
    await waitLocked(child);
    let err: unknown;
    try {
      acquireDirLock(target, "eval");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(EdgeInfError);
    const msg = (err as Error).message;
    expect(msg).not.toContain("\n");
    expect(msg).toContain(`pid ${child.pid}`);
    expect(msg).toContain(target);
    expect(msg).toContain(join(target, LOCK_FILE)); // the fix when that process is gone
    child.kill("SIGTERM");
    expect(await exited(child)).toEqual({ code: null, signal: "SIGTERM" }); // the signal still ends it
    expect(existsSync(join(target, LOCK_FILE))).toBe(false); // released on SIGTERM
    const lock = acquireDirLock(target, "eval");
    lock.release();
    expect(existsSync(join(target, LOCK_FILE))).toBe(false);
  });

  it("takes over a lock whose pid is dead on this host (a SIGKILLed run)", async () => {
    const target = join(dir, "stale");
    const child = holder(target, "setInterval(() => {}, 1000);");
    await waitLocked(child);
    child.kill("SIGKILL");
    await exited(child);
    const left = JSON.parse(readFileSync(join(target, LOCK_FILE), "utf8")) as { pid: number };
    expect(left.pid).toBe(child.pid); // the kill left it behind
    const lock = acquireDirLock(target, "eval");
    expect(JSON.parse(readFileSync(join(target, LOCK_FILE), "utf8")).pid).toBe(process.pid);
    lock.release();
  });

  it("takes over a lock file with unreadable content older than a moment (a crash between create and write)", () => {
    const target = join(dir, "garbage");
    acquireDirLock(target, "x").release();
    writeFileSync(join(target, LOCK_FILE), "");
    const old = new Date(Date.now() - 60_000);
    spawnSync("touch", ["-d", old.toISOString(), join(target, LOCK_FILE)]);
    acquireDirLock(target, "eval").release();
  });

  it("refuses a lock held on another host (it cannot tell whether that pid lives), naming the host", () => {
    const target = join(dir, "remote");
    acquireDirLock(target, "x").release();
    writeFileSync(join(target, LOCK_FILE), JSON.stringify({ pid: 1, hostname: `${hostname()}-other`, startedAt: "t", command: "c", what: "training", token: "t" }));
    expect(() => acquireDirLock(target, "eval")).toThrow(/pid 1 on host .*-other/);
  });

  it("is released on exit, on an uncaught error and on SIGINT", async () => {
    for (const [name, then, signal] of [
      ["exit", "process.exit(0);", null],
      ["throw", "throw new Error('boom');", null],
      ["sigint", "setInterval(() => {}, 1000);", "SIGINT"],
    ] as const) {
      const target = join(dir, name);
      const child = holder(target, then);
      await waitLocked(child).catch(() => undefined);
      if (signal) child.kill(signal);
      const end = await exited(child);
      if (signal) expect(end.signal).toBe(signal);
      expect(existsSync(join(target, LOCK_FILE)), name).toBe(false);
    }
  });

  it("release leaves a lock that is no longer its own (taken over meanwhile)", () => {
    const target = join(dir, "own");
    const lock = acquireDirLock(target, "x");
    const theirs = JSON.stringify({ pid: process.pid, hostname: hostname(), startedAt: "t", command: "c", what: "y", token: "other" });
    writeFileSync(join(target, LOCK_FILE), theirs);
    lock.release();
    expect(readFileSync(join(target, LOCK_FILE), "utf8")).toBe(theirs);
    rmSync(join(target, LOCK_FILE));
  });
});
