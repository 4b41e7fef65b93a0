import { closeSync, openSync, readSync, statSync } from "node:fs";
import { EdgeInfError } from "./errors.js";

/**
 * Bounded reads of user-given text files (prompts, texts to score, held-out data). A file larger than the cap, or a
 * device that never ends (/dev/zero), is refused with one line instead of growing a string until V8 or the allocator
 * gives up; a file holding NUL bytes is not text.
 */

/** Largest text read whole: V8 strings end at 512 MiB (2^29 − 24 UTF-16 units), and no prompt needs more. */
export const MAX_TEXT_BYTES = 256 * 1024 * 1024;

const CHUNK_BYTES = 1 << 20;

function openExisting(path: string, what: string): number {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    throw new EdgeInfError(`${what} ${path} does not exist`, "check the path");
  }
  if (isDir) throw new EdgeInfError(`${what} ${path} is a directory`, "pass a text file");
  try {
    return openSync(path, "r");
  } catch (e) {
    throw new EdgeInfError(`cannot read ${what} ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, "check the path and its permissions");
  }
}

/**
 * Up to `maxBytes` bytes from the start of `path`, and whether the file goes on past them. Reads chunk by chunk, so a
 * device or pipe is read only as far as needed.
 */
export function readFilePrefix(path: string, what: string, maxBytes: number): { bytes: Buffer; more: boolean } {
  const fd = openExisting(path, what);
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const want = Math.min(CHUNK_BYTES, maxBytes + 1 - total); // one byte past the cap says whether there is more
      if (want <= 0) break;
      const buf = Buffer.allocUnsafe(want);
      const n = readSync(fd, buf, 0, want, null);
      if (n === 0) break;
      chunks.push(n === want ? buf : buf.subarray(0, n));
      total += n;
    }
    const all = Buffer.concat(chunks, total);
    return total > maxBytes ? { bytes: all.subarray(0, maxBytes), more: true } : { bytes: all, more: false };
  } catch (e) {
    if (e instanceof EdgeInfError) throw e;
    throw new EdgeInfError(`cannot read ${what} ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, "check the path");
  } finally {
    closeSync(fd);
  }
}

function checkText(bytes: Buffer, path: string, what: string): void {
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new EdgeInfError(`${what} ${path} is not a text file (a NUL byte at offset ${nul})`, "pass UTF-8 text");
}

/** The whole of a text file, at most `maxBytes` (a larger one is one error line naming the cap and `fix`). */
export function readTextFile(path: string, what: string, opts: { maxBytes?: number; fix?: string } = {}): string {
  const maxBytes = opts.maxBytes ?? MAX_TEXT_BYTES;
  const tooLarge = (): never => {
    throw new EdgeInfError(`${what} ${path} is larger than ${formatBytes(maxBytes)}, more than edgeinf reads at once`, opts.fix ?? "pass a smaller file");
  };
  if (regularFileBytes(path) > maxBytes) tooLarge(); // known from its size: no need to read it
  checkText(readFilePrefix(path, what, 65536).bytes, path, what); // binary (or /dev/zero) refused before a big read
  const { bytes, more } = readFilePrefix(path, what, maxBytes);
  if (more) tooLarge(); // a pipe or device: known only by reading
  checkText(bytes, path, what);
  return bytes.toString("utf8");
}

/**
 * The start of a text file, at least `minBytes` of it where the file has them: cut after the last whitespace so no word
 * or UTF-8 character is split (tokenizing the prefix then gives the file's own first tokens, but for the last few).
 */
export function readTextPrefix(path: string, what: string, minBytes: number): { text: string; whole: boolean } {
  const { bytes, more } = readFilePrefix(path, what, Math.min(minBytes, MAX_TEXT_BYTES));
  checkText(bytes, path, what);
  if (!more) return { text: bytes.toString("utf8"), whole: true };
  let cut = bytes.length;
  while (cut > 0 && !isSpace(bytes[cut - 1]!)) cut--;
  return { text: bytes.subarray(0, cut > 0 ? cut : bytes.length).toString("utf8"), whole: false };
}

function regularFileBytes(path: string): number {
  try {
    const st = statSync(path);
    return st.isFile() ? st.size : 0;
  } catch {
    return 0; // openExisting words the problem
  }
}

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

function formatBytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(0)} MiB` : `${n} bytes`;
}
