import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { basename, dirname, join, posix, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fail } from "../util/errors.js";
import { writeFileAtomic } from "../util/atomic.js";

/**
 * Resolves a model spec to a local path. Local paths pass through; `hf:owner/name[/subdir]` (a
 * Hugging Face model directory) or `hf:owner/name/path/model.bin?tokenizer=tok512.bin` (a llama2.c
 * pair) is downloaded once into the cache and used offline from then on.
 */

export interface ResolveOptions {
  /** Cache root; default $EDGEINF_CACHE or ~/.cache/edgeinfinite. */
  cacheDir?: string;
  /** Never touch the network; default true when $EDGEINF_OFFLINE is "1". */
  offline?: boolean;
}

export interface HubSpec {
  owner: string;
  name: string;
  /** Folder inside the repo ("" for the root), posix separators. */
  subdir: string;
  /** llama2.c pair: the model .bin and its tokenizer file (both in `subdir`). */
  llama2c: { bin: string; tokenizer: string } | null;
}

const MARKER = ".complete";
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function defaultCacheDir(): string {
  return process.env.EDGEINF_CACHE ?? join(homedir(), ".cache", "edgeinfinite");
}

export function hubEndpoint(): string {
  return (process.env.EDGEINF_HUB_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, "");
}

/** Parses `hf:owner/name[/sub/dir][/model.bin?tokenizer=tok.bin]`. */
export function parseHubSpec(spec: string): HubSpec {
  const body = spec.slice(3);
  const [pathPart, query] = body.split("?", 2) as [string, string | undefined];
  const parts = pathPart.split("/").filter((p) => p.length > 0);
  const bad = (why: string): never =>
    fail(`bad model spec ${spec}: ${why}`, "use hf:owner/name, hf:owner/name/subdir or hf:owner/name/dir/model.bin?tokenizer=tok512.bin");
  if (parts.length < 2) bad("expected owner/name");
  for (const p of parts) if (!NAME_RE.test(p) || p === "..") bad(`invalid path segment "${p}"`);
  const [owner, name, ...rest] = parts as [string, string, ...string[]];
  const params = new URLSearchParams(query ?? "");
  const last = rest[rest.length - 1];
  if (last !== undefined && last.endsWith(".bin")) {
    const tokenizer = params.get("tokenizer");
    if (!tokenizer) fail(`model spec ${spec} names a llama2.c .bin without its tokenizer`, `add ?tokenizer=<file>, e.g. ${spec}?tokenizer=tok512.bin (the tokenizer .bin in the same folder)`);
    if (!NAME_RE.test(tokenizer)) bad(`invalid tokenizer file name "${tokenizer}"`);
    return { owner, name, subdir: rest.slice(0, -1).join("/"), llama2c: { bin: last, tokenizer } };
  }
  if (params.has("tokenizer")) bad("?tokenizer= only applies to a llama2.c .bin path");
  return { owner, name, subdir: rest.join("/"), llama2c: null };
}

function fileUrl(s: HubSpec, file: string): string {
  const path = s.subdir ? posix.join(s.subdir, file) : file;
  return `${hubEndpoint()}/${s.owner}/${s.name}/resolve/main/${path.split("/").map(encodeURIComponent).join("/")}`;
}

function formatMb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

class NotFound extends Error {}

/** Streams one file to a temp name beside `dest`, then renames it into place (atomic). */
async function download(url: string, dest: string, label: string): Promise<void> {
  let res: Response;
  try {
    const headers: Record<string, string> = {};
    if (process.env.HF_TOKEN) headers.authorization = `Bearer ${process.env.HF_TOKEN}`;
    res = await fetch(url, { headers, redirect: "follow" });
  } catch (e) {
    const cause = (e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message;
    fail(`cannot reach ${url} (${cause})`, "check the network or EDGEINF_HUB_ENDPOINT, or pass a local model path");
  }
  if (res.status === 404) {
    await res.body?.cancel();
    throw new NotFound(url);
  }
  if (res.status === 401 || res.status === 403) fail(`access denied (${res.status}) for ${url}`, "the repository is gated or private; set HF_TOKEN or download it yourself and pass the local path");
  if (!res.ok || !res.body) fail(`download of ${url} failed with HTTP ${res.status}`, "retry later or pass a local model path");
  const total = Number(res.headers.get("content-length") ?? 0);
  mkdirSync(dirname(dest), { recursive: true });
  const tmp = join(dirname(dest), `.${basename(dest)}.${process.pid}.part`);
  let received = 0;
  let lastReport = 0;
  const tty = process.stderr.isTTY === true;
  const report = (final: boolean): void => {
    const of = total > 0 ? ` / ${formatMb(total)}` : "";
    const line = `downloading ${label}: ${formatMb(received)}${of}`;
    if (tty) process.stderr.write(`\r${line}${final ? "\n" : ""}`);
    else if (final) process.stderr.write(`${line}\n`);
  };
  const body = Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>);
  body.on("data", (chunk: Buffer) => {
    received += chunk.length;
    const now = Date.now();
    if (now - lastReport > 250) {
      lastReport = now;
      report(false);
    }
  });
  try {
    await pipeline(body, createWriteStream(tmp));
  } catch (e) {
    rmSync(tmp, { force: true });
    fail(`download of ${url} was interrupted (${(e as Error).message})`, "run again to retry");
  }
  if (total > 0 && received !== total) {
    rmSync(tmp, { force: true });
    fail(`download of ${url} is incomplete: ${received} of ${total} bytes`, "run again to retry");
  }
  report(true);
  renameSync(tmp, dest);
}

async function fetchInto(s: HubSpec, file: string, targetDir: string): Promise<void> {
  const dest = join(targetDir, ...file.split("/"));
  if (existsSync(dest)) return; // kept from an interrupted earlier run (files land only when complete)
  await download(fileUrl(s, file), dest, `${s.owner}/${s.name}/${s.subdir ? `${s.subdir}/` : ""}${file}`);
}

async function fetchOptional(s: HubSpec, file: string, targetDir: string): Promise<boolean> {
  try {
    await fetchInto(s, file, targetDir);
    return true;
  } catch (e) {
    if (e instanceof NotFound) return false;
    throw e;
  }
}

async function fetchRequired(s: HubSpec, file: string, targetDir: string, spec: string): Promise<void> {
  try {
    await fetchInto(s, file, targetDir);
  } catch (e) {
    if (e instanceof NotFound) fail(`${spec}: ${e.message} not found (HTTP 404)`, "check the repository name, folder and file names");
    throw e;
  }
}

function shardFiles(indexPath: string, spec: string): string[] {
  let map: unknown;
  try {
    map = (JSON.parse(readFileSync(indexPath, "utf8")) as { weight_map?: unknown }).weight_map;
  } catch (e) {
    fail(`${spec}: downloaded shard index ${indexPath} is not valid JSON`, "delete it from the cache and retry");
  }
  if (map === null || typeof map !== "object") fail(`${spec}: shard index ${indexPath} has no weight_map`, "the repository is not a safetensors model");
  const files = [...new Set(Object.values(map as Record<string, unknown>))];
  for (const f of files) {
    if (typeof f !== "string" || !/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(f) || f.split("/").includes("..")) fail(`${spec}: shard index names an invalid file ${JSON.stringify(f)}`, "the repository is not a usable safetensors model");
  }
  return (files as string[]).sort();
}

async function downloadHfDirectory(s: HubSpec, targetDir: string, spec: string): Promise<string[]> {
  await fetchRequired(s, "config.json", targetDir, spec);
  await fetchRequired(s, "tokenizer.json", targetDir, spec);
  const files = ["config.json", "tokenizer.json"];
  if (await fetchOptional(s, "tokenizer_config.json", targetDir)) files.push("tokenizer_config.json");
  if (await fetchOptional(s, "model.safetensors.index.json", targetDir)) {
    files.push("model.safetensors.index.json");
    for (const shard of shardFiles(join(targetDir, "model.safetensors.index.json"), spec)) {
      await fetchRequired(s, shard, targetDir, spec);
      files.push(shard);
    }
  } else {
    await fetchRequired(s, "model.safetensors", targetDir, spec);
    files.push("model.safetensors");
  }
  return files;
}

/** Local directory of a hub spec inside the cache. */
export function hubCachePath(s: HubSpec, cacheDir: string): string {
  return join(cacheDir, "hub", s.owner, s.name, ...(s.subdir ? s.subdir.split("/") : []));
}

/** For a llama2.c .bin downloaded from the hub: the tokenizer file its spec named, else null. */
export function cachedLlama2cTokenizer(binPath: string): string | null {
  const marker = join(dirname(binPath), `${MARKER}-${basename(binPath)}`);
  if (!existsSync(marker)) return null;
  try {
    const files = (JSON.parse(readFileSync(marker, "utf8")) as { files?: unknown }).files;
    if (Array.isArray(files) && typeof files[1] === "string") return join(dirname(binPath), files[1]);
  } catch {
    // A damaged marker only loses the hint; the caller falls back to tok*.bin discovery.
  }
  return null;
}

export async function resolveModelPath(spec: string, opts?: ResolveOptions): Promise<string> {
  if (!spec.startsWith("hf:")) {
    if (!existsSync(spec)) fail(`model path ${spec} does not exist`, "pass a directory with config.json or a llama2.c .bin");
    return spec;
  }
  const s = parseHubSpec(spec);
  const cacheDir = resolve(opts?.cacheDir ?? defaultCacheDir());
  const offline = opts?.offline ?? process.env.EDGEINF_OFFLINE === "1";
  const targetDir = hubCachePath(s, cacheDir);
  // A llama2.c pair may share its folder with other models, so its marker is per .bin.
  const marker = join(targetDir, s.llama2c ? `${MARKER}-${s.llama2c.bin}` : MARKER);
  const result = s.llama2c ? join(targetDir, s.llama2c.bin) : targetDir;
  if (existsSync(marker)) return result;
  if (offline) fail(`${spec} is not in the model cache ${cacheDir} and offline mode is on`, "run once with network access (unset EDGEINF_OFFLINE) or pass a local model path");
  let files: string[];
  if (s.llama2c) {
    await fetchRequired(s, s.llama2c.bin, targetDir, spec);
    await fetchRequired(s, s.llama2c.tokenizer, targetDir, spec);
    files = [s.llama2c.bin, s.llama2c.tokenizer];
  } else {
    files = await downloadHfDirectory(s, targetDir, spec);
  }
  writeFileAtomic(marker, JSON.stringify({ spec, endpoint: hubEndpoint(), files, downloadedAt: new Date().toISOString() }, null, 2) + "\n");
  return result;
}
