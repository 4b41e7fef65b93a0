import { mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { EdgeInfError } from "./errors.js";

/** Deeper than any real folder: a bound on the walk up, so no path can make it loop. */
const MAX_DEPTH = 4096;

/**
 * `mkdir -p` that always returns: Node's recursive mkdir loops forever on some paths (e.g. under /proc, where a missing
 * parent cannot be created and the error is not ENOENT), so walk up to the nearest existing folder and create each
 * level below it once. Throws one EdgeInfError line naming the folder when it cannot be made.
 */
export function ensureDir(dir: string): void {
  const target = resolve(dir);
  const missing: string[] = [];
  let p = target;
  for (let depth = 0; ; depth++) {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" || depth > MAX_DEPTH || dirname(p) === p) {
        throw new EdgeInfError(`cannot create directory ${dir}: ${(e as Error).message}`, "choose a writable output path");
      }
      missing.push(p);
      p = dirname(p);
      continue;
    }
    if (!isDir) {
      const what = p === target ? "it exists and is not a directory" : `${p} is not a directory`;
      throw new EdgeInfError(`cannot create directory ${dir}: ${what}`, "choose another output path");
    }
    break;
  }
  for (const m of missing.reverse()) {
    try {
      mkdirSync(m);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST" && statSync(m).isDirectory()) continue; // made meanwhile
      throw new EdgeInfError(`cannot create directory ${dir}: ${(e as Error).message}`, "choose a writable output path");
    }
  }
}
