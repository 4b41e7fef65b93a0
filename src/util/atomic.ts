import { renameSync, writeFileSync, rmSync, existsSync, statSync } from "node:fs";
import { dirname, basename, join } from "node:path";
import { EdgeInfError } from "./errors.js";
import { ensureDir } from "./paths.js";

/**
 * Write a file so that readers see either the old content or the new, never half of it:
 * write to a temp file beside the target, then rename (atomic on one filesystem).
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const dir = dirname(path);
  ensureDir(dir); // not mkdirSync({ recursive }): that never returns on some paths (/proc/nonexist/x)
  if (existsSync(path) && statSync(path).isDirectory()) {
    throw new EdgeInfError(`cannot write ${path}: it is a directory`, "give a file path");
  }
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new EdgeInfError(`cannot write ${path}: ${(e as Error).message}`, "choose a writable output path");
  }
}
