import { closeSync, linkSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { EdgeInfError } from "./errors.js";
import { ensureDir } from "./paths.js";

/**
 * An exclusive lock on an output folder (a training output folder, an eval run dir), so that two processes never write
 * one folder at once: a lock file `<dir>/.edgeinf.lock` created with O_EXCL that holds who owns it. A lock whose process
 * is gone (same host, pid no longer alive: a SIGKILL, a power cut) is stale and taken over; a live one is refused with
 * one EdgeInfError line naming the other pid and the folder. Released on normal exit, on process.exit, on an uncaught
 * error, and on SIGINT/SIGTERM when no other handler deals with the signal.
 */

export const LOCK_FILE = ".edgeinf.lock";

/** What a lock file holds. */
export interface LockOwner {
  pid: number;
  hostname: string;
  startedAt: string;
  command: string;
  what: string;
  /** Random per acquisition: release removes the file only while it is still ours. */
  token: string;
}

export interface DirLock {
  readonly path: string;
  release(): void;
}

/** A lock file younger than this with unreadable content is being written by its owner (open, then write). */
const FRESH_UNREADABLE_MS = 10_000;

function parseOwner(text: string): LockOwner | null {
  try {
    const v = JSON.parse(text) as Partial<LockOwner> | null;
    if (v && typeof v.pid === "number" && typeof v.hostname === "string" && typeof v.token === "string") return v as LockOwner;
  } catch {
    // unreadable: see the caller
  }
  return null;
}

/** true when `pid` is a live process on this host (EPERM: alive but someone else's). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Create `path` with O_EXCL holding `content`; false when it exists. */
function createExclusive(path: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, "wx");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  }
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  return true;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null; // removed meanwhile
  }
}

/**
 * Move a stale lock file out of the way. Two processes may both have judged it stale: the rename lets one win, and a
 * loser that moved the winner's fresh lock instead (its content differs from the stale one) puts it back.
 */
function removeStale(path: string, staleText: string): void {
  const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString("hex")}`;
  try {
    renameSync(path, aside);
  } catch {
    return; // already moved by another process
  }
  const moved = readText(aside);
  if (moved !== null && moved !== staleText) {
    try {
      linkSync(aside, path); // someone's fresh lock: restore it (fails only if a newer one exists)
    } catch {
      // a newer lock took its place; that one is the live owner
    }
  }
  rmSync(aside, { force: true });
}

function describeCommand(): string {
  return process.argv.slice(1).join(" ").slice(0, 500);
}

/**
 * Take the exclusive lock on `dir` (made if missing) for `what` (e.g. "training", "eval"). Throws one EdgeInfError line
 * when another live process holds it.
 */
export function acquireDirLock(dir: string, what: string): DirLock {
  ensureDir(dir);
  const path = join(dir, LOCK_FILE);
  const owner: LockOwner = {
    pid: process.pid,
    hostname: hostname(),
    startedAt: new Date().toISOString(),
    command: describeCommand(),
    what,
    token: randomBytes(8).toString("hex"),
  };
  const content = JSON.stringify(owner) + "\n";
  for (let attempt = 0; ; attempt++) {
    let created: boolean;
    try {
      created = createExclusive(path, content);
    } catch (e) {
      throw new EdgeInfError(`cannot create the lock file ${path}: ${(e as Error).message}`, "choose a writable output folder");
    }
    if (created) break;
    if (attempt >= 20) throw new EdgeInfError(`cannot take the lock ${path} (it keeps changing)`, "make sure no other edgeinf writes this folder, then retry");
    const text = readText(path);
    if (text === null) continue; // released meanwhile
    const other = parseOwner(text);
    if (other === null) {
      let ageMs = Infinity;
      try {
        ageMs = Date.now() - statSync(path).mtimeMs;
      } catch {
        continue;
      }
      if (ageMs < FRESH_UNREADABLE_MS) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50); // its owner is still writing it
        continue;
      }
      removeStale(path, text); // garbage left by a crash between open and write
      continue;
    }
    if (other.hostname === owner.hostname && !pidAlive(other.pid)) {
      removeStale(path, text);
      continue;
    }
    const where = other.hostname === owner.hostname ? `pid ${other.pid}` : `pid ${other.pid} on host ${other.hostname}`;
    throw new EdgeInfError(
      `${dir} is in use by another edgeinf ${other.what} (${where}, started ${other.startedAt})`,
      `wait for it to finish or stop it, or use another folder; if that process is gone, delete ${path}`,
    );
  }
  return holdLock(path, owner.token);
}

/** Release hooks for a held lock: exit (also process.exit and uncaught errors) and SIGINT/SIGTERM. */
function holdLock(path: string, token: string): DirLock {
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.off("exit", release);
    for (const [sig, handler] of signalHandlers) process.off(sig, handler);
    const text = readText(path);
    if (text !== null && parseOwner(text)?.token === token) {
      try {
        unlinkSync(path);
      } catch {
        // already gone
      }
    }
  };
  // A signal that only this lock listens to would otherwise no longer end the process: release, then re-raise it.
  // Where the command has its own handler (eval's graceful Ctrl-C), that handler decides and "exit" releases.
  const signalHandlers: Array<[NodeJS.Signals, () => void]> = (["SIGINT", "SIGTERM"] as const).map((sig) => {
    const handler = (): void => {
      if (process.listenerCount(sig) > 1) return;
      release();
      process.kill(process.pid, sig);
    };
    return [sig, handler];
  });
  process.on("exit", release);
  for (const [sig, handler] of signalHandlers) process.on(sig, handler);
  return { path, release };
}
