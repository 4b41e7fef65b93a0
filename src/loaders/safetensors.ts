import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { endianness } from "node:os";
import { fail } from "../util/errors.js";
import { writeFileAtomic } from "../util/atomic.js";

/**
 * Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
 * 8-byte little-endian header length N, N bytes of JSON header, then the raw tensor bytes.
 * Each header entry is { dtype, shape, data_offsets: [begin, end] } with offsets relative to the
 * first byte after the header; the optional "__metadata__" entry is a string→string map.
 */

export interface SafetensorsTensor {
  /** dtype as stored in the file (F32, F16, BF16, F64); `data` is always float32. */
  dtype: string;
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  /** Absolute byte range of the tensor in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  path: string;
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

const FLOAT_BYTES: ReadonlyMap<string, number> = new Map([["F64", 8], ["F32", 4], ["F16", 2], ["BF16", 2]]);
/** Dtypes safetensors defines that we refuse (weights must be floating point). */
const KNOWN_OTHER_DTYPES = new Set(["BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"]);
/** Refuse absurd header lengths before allocating (the reference implementation caps at 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

function fileSize(fd: number): number {
  return fstatSync(fd).size;
}

function readExact(fd: number, path: string, position: number, length: number): Uint8Array {
  // A fresh ArrayBuffer keeps the bytes aligned for typed-array views.
  const bytes = new Uint8Array(new ArrayBuffer(length));
  let done = 0;
  while (done < length) {
    const n = readSync(fd, bytes, done, length - done, position + done);
    if (n === 0) fail(`safetensors file ${path} is truncated: wanted bytes ${position}..${position + length}`, "re-download or re-export the file");
    done += n;
  }
  return bytes;
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function parseHeaderJson(text: string, path: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    fail(`safetensors file ${path} has a header that is not valid JSON (${(e as Error).message.split("\n")[0]})`, "the file is corrupt; re-download or re-export it");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    fail(`safetensors file ${path} has a header that is not a JSON object`, "the file is corrupt; re-download or re-export it");
  }
  return parsed as Record<string, unknown>;
}

/** Reads and validates only the header of a safetensors file (no tensor data). */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openForRead(path);
  try {
    return readHeaderFromFd(fd, path);
  } finally {
    closeSync(fd);
  }
}

function openForRead(path: string): number {
  try {
    return openSync(path, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") fail(`safetensors file ${path} does not exist`, "check the model directory");
    fail(`cannot open safetensors file ${path}: ${(e as Error).message}`, "check the path and its permissions");
  }
}

function readHeaderFromFd(fd: number, path: string): SafetensorsHeader {
  const size = fileSize(fd);
  if (size < 8) fail(`safetensors file ${path} is truncated: ${size} bytes, shorter than the 8-byte header length`, "re-download or re-export the file");
  const lenBytes = readExact(fd, path, 0, 8);
  const headerLen = Number(new DataView(lenBytes.buffer).getBigUint64(0, true));
  if (headerLen > size - 8) {
    fail(`safetensors file ${path} is truncated or corrupt: header length ${headerLen} runs past the end of the file (${size} bytes)`, "re-download or re-export the file");
  }
  if (headerLen > MAX_HEADER_BYTES) fail(`safetensors file ${path} declares a ${headerLen}-byte header (limit ${MAX_HEADER_BYTES})`, "the file is corrupt; re-download or re-export it");
  const headerText = new TextDecoder().decode(readExact(fd, path, 8, headerLen));
  const raw = parseHeaderJson(headerText, path);
  const dataStart = 8 + headerLen;
  const dataLen = size - dataStart;
  const tensors = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (name === "__metadata__") {
      metadata = parseMetadata(value, path);
      continue;
    }
    tensors.set(name, parseEntry(name, value, path, dataStart, dataLen));
  }
  checkNoOverlap(tensors, path);
  return { path, tensors, metadata };
}

/** Two tensors sharing bytes would load as one another's weights (the reference reader refuses it too). */
function checkNoOverlap(tensors: Map<string, SafetensorsEntry>, path: string): void {
  const byBegin = [...tensors].filter(([, e]) => e.end > e.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < byBegin.length; i++) {
    const [prevName, prev] = byBegin[i - 1]!;
    const [name, e] = byBegin[i]!;
    if (e.begin < prev.end) fail(`safetensors file ${path}: tensors ${prevName} and ${name} share bytes ${e.begin}..${Math.min(prev.end, e.end)}`, "the file is corrupt; re-download or re-export it");
  }
}

function parseMetadata(value: unknown, path: string): Record<string, string> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) fail(`safetensors file ${path}: __metadata__ is not an object`, "the file is corrupt; re-export it");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = String(v);
  return out;
}

function parseEntry(name: string, value: unknown, path: string, dataStart: number, dataLen: number): SafetensorsEntry {
  const corrupt = (what: string): never => fail(`safetensors file ${path}: tensor ${name} ${what}`, "the file is corrupt; re-download or re-export it");
  if (value === null || typeof value !== "object") return corrupt("has no header entry object");
  const e = value as Record<string, unknown>;
  const dtype = e.dtype;
  if (typeof dtype !== "string") return corrupt("has no dtype");
  const shape = e.shape;
  if (!Array.isArray(shape) || !shape.every(isNonNegInt)) return corrupt(`has an invalid shape ${JSON.stringify(shape)}`);
  const offsets = e.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt)) return corrupt(`has invalid data_offsets ${JSON.stringify(offsets)}`);
  const [begin, end] = offsets as [number, number];
  if (end < begin) return corrupt(`has data_offsets [${begin}, ${end}] with end before begin`);
  if (end > dataLen) {
    fail(`safetensors file ${path} is truncated or corrupt: tensor ${name} data_offsets [${begin}, ${end}] are out of range (data section is ${dataLen} bytes)`, "re-download or re-export the file");
  }
  const elemBytes = FLOAT_BYTES.get(dtype);
  if (elemBytes !== undefined) {
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    if (numel * elemBytes !== end - begin) return corrupt(`has ${end - begin} bytes but shape [${shape.join(", ")}] of ${dtype} needs ${numel * elemBytes}`);
  }
  return { dtype, shape: shape as number[], begin: dataStart + begin, end: dataStart + end };
}

let halfTable: Float32Array | null = null;

/** IEEE 754 binary16 → number, by the definition (sign, 5-bit exponent bias 15, 10-bit mantissa). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero / subnormal
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function getHalfTable(): Float32Array {
  if (halfTable === null) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

/** Converts little-endian raw bytes of a float dtype to float32. */
export function decodeFloats(bytes: Uint8Array, dtype: string): Float32Array {
  if (bytes.byteOffset % 8 !== 0) bytes = bytes.slice(); // typed views need alignment
  const buf = bytes.buffer;
  const off = bytes.byteOffset;
  switch (dtype) {
    case "F32":
      return new Float32Array(buf, off, bytes.byteLength / 4).slice();
    case "F64":
      return Float32Array.from(new Float64Array(buf, off, bytes.byteLength / 8));
    case "F16": {
      const src = new Uint16Array(buf, off, bytes.byteLength / 2);
      const table = getHalfTable();
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
      return out;
    }
    case "BF16": {
      // bfloat16 is the top half of a float32: shift the bits up.
      const src = new Uint16Array(buf, off, bytes.byteLength / 2);
      const bits = new Uint32Array(src.length);
      for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
      return new Float32Array(bits.buffer);
    }
    default:
      return fail(`dtype ${dtype} not supported`, "weights must be F32, F16, BF16 or F64");
  }
}

function checkHostEndianness(): void {
  if (endianness() !== "LE") fail("safetensors reading needs a little-endian host", "run on x86-64 or arm64");
}

/**
 * Reads every tensor of a safetensors file as float32 (F32, F16, BF16 and F64 are converted).
 * `only` restricts reading to the named tensors (others are skipped without reading their bytes).
 */
export function readSafetensors(path: string, only?: ReadonlySet<string>): Map<string, SafetensorsTensor> {
  checkHostEndianness();
  const fd = openForRead(path);
  try {
    const header = readHeaderFromFd(fd, path);
    const out = new Map<string, SafetensorsTensor>();
    for (const [name, entry] of header.tensors) {
      if (only && !only.has(name)) continue;
      if (!FLOAT_BYTES.has(entry.dtype)) {
        const known = KNOWN_OTHER_DTYPES.has(entry.dtype) ? "" : " (unknown dtype)";
        fail(`dtype ${entry.dtype} not supported${known}: tensor ${name} in ${path}`, "weights must be F32, F16, BF16 or F64");
      }
      const bytes = readExact(fd, path, entry.begin, entry.end - entry.begin);
      out.set(name, { dtype: entry.dtype, shape: entry.shape.slice(), data: decodeFloats(bytes, entry.dtype) });
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** Builds the bytes of an F32 safetensors file (header padded with spaces to 8-byte alignment). */
export function encodeSafetensors(
  tensors: Record<string, { shape: number[]; data: Float32Array }>,
  metadata?: Record<string, string>,
): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    if (name === "__metadata__") fail(`tensor name __metadata__ is reserved in safetensors`, "rename the tensor");
    const t = tensors[name]!;
    if (!t.shape.every((v) => isNonNegInt(v))) fail(`tensor ${name} has an invalid shape [${t.shape.join(", ")}]`, "shapes must be non-negative integers");
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) fail(`tensor ${name} has ${t.data.length} values but shape [${t.shape.join(", ")}] needs ${numel}`, "fix the tensor's shape or data");
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + numel * 4] };
    offset += numel * 4;
  }
  let json = JSON.stringify(header);
  const jsonBytes = new TextEncoder().encode(json);
  const padded = Math.ceil(jsonBytes.length / 8) * 8;
  json += " ".repeat(padded - jsonBytes.length);
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(new TextEncoder().encode(json), 8);
  let pos = 8 + padded;
  checkHostEndianness();
  for (const name of names) {
    const data = tensors[name]!.data;
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), pos);
    pos += data.byteLength;
  }
  return out;
}

/** Writes tensors as an F32 safetensors file, atomically (readers never see half a file). */
export function writeSafetensors(
  path: string,
  tensors: Record<string, { shape: number[]; data: Float32Array }>,
  metadata?: Record<string, string>,
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
