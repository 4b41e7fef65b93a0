import { closeSync, existsSync, openSync, rmSync, statSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { EdgeInfError } from "../util/errors.js";
import { shellQuote } from "./common.js";

/**
 * Checks --out before any work: its directory exists, is a directory and takes a new file; the path itself is not a
 * directory. Nothing is left behind (the probe file is removed at once). The write itself is atomic (temp + rename).
 */
export function checkOutputPath(out: string, option = "--out"): void {
  if (out.trim() === "") throw new EdgeInfError(`${option} is empty`, "give the file to write");
  const dir = dirname(resolve(out));
  if (!existsSync(dir)) throw new EdgeInfError(`output directory ${dirname(out)} does not exist`, `create it first (mkdir -p ${shellQuote(dirname(out))}) or choose another ${option}`);
  if (!statSync(dir).isDirectory()) throw new EdgeInfError(`output directory ${dirname(out)} is not a directory`, `choose another ${option}`);
  if (existsSync(out) && statSync(out).isDirectory()) throw new EdgeInfError(`${option} ${out} is a directory`, `give a file path such as ${out.replace(/\/+$/, "")}/memory.onnx`);
  // access(W_OK) says yes to root on any writable mount; a real create is the only honest check.
  const probe = resolve(dir, `.${basename(out)}.${process.pid}.probe`);
  try {
    closeSync(openSync(probe, "wx"));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new EdgeInfError(`cannot write to output directory ${dirname(out)} (${code})`, `choose a writable ${option} or fix the directory's permissions`);
  } finally {
    rmSync(probe, { force: true });
  }
}
