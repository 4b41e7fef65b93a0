import { existsSync, readFileSync, statSync } from "node:fs";
import { fail } from "../util/errors.js";
import type { Tokenizer } from "./tokenizer.js";

/**
 * llama2.c's tokenizer.bin (a SentencePiece BPE vocabulary exported by tokenizer.py):
 * int32 max_token_length, then for each of vocab_size tokens: float32 score, int32 byte length, bytes.
 * Encoding and decoding follow llama2.c run.c `encode()` / `decode()`.
 */

const BOS_ID = 1;
const EOS_ID = 2;
/** run.c maps an unknown byte b to token b + 3 (ids 3..258 are the pieces <0x00>..<0xFF>). */
const BYTE_FALLBACK_OFFSET = 3;
/** run.c starts its best-score search at -1e10, so pairs scoring at or below it are never merged. */
const MIN_MERGE_SCORE = -1e10;

/** Pieces are kept as "binary" strings (one char per byte) so concatenation is byte concatenation. */
function bytesToBinary(bytes: Uint8Array | readonly number[]): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

export class Llama2cTokenizer implements Tokenizer {
  readonly bosId = BOS_ID;
  readonly eosId = EOS_ID;
  private readonly idOf: Map<string, number>;

  constructor(
    /** Raw bytes of each piece as a binary string. */
    readonly pieces: readonly string[],
    readonly scores: Float32Array,
    readonly maxTokenLength: number,
  ) {
    this.idOf = new Map();
    // First occurrence wins if a piece is duplicated (run.c's bsearch would pick one of them arbitrarily).
    pieces.forEach((p, i) => {
      if (!this.idOf.has(p)) this.idOf.set(p, i);
    });
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  /** Id of a piece given as raw bytes in a binary string, or undefined. */
  lookup(piece: string): number | undefined {
    return this.idOf.get(piece);
  }

  encode(text: string, options?: { bos?: boolean }): number[] {
    const tokens = this.initialTokens(new TextEncoder().encode(text));
    const merged = this.mergePairs(tokens);
    return options?.bos ? [BOS_ID, ...merged] : merged;
  }

  /** Dummy prefix, then one token per UTF-8 codepoint (or its bytes + 3 when the codepoint is not a piece). */
  private initialTokens(bytes: Uint8Array): number[] {
    const tokens: number[] = [];
    if (bytes.length > 0) {
      const dummy = this.idOf.get(" ");
      if (dummy !== undefined) tokens.push(dummy);
    }
    let buf: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      const c = bytes[i]!;
      if ((c & 0xc0) !== 0x80) buf = [];
      buf.push(c);
      const next = i + 1 < bytes.length ? bytes[i + 1]! : 0;
      // Keep reading continuation bytes, at most 4 bytes per codepoint (as run.c does).
      if ((next & 0xc0) === 0x80 && buf.length < 4) continue;
      const id = this.idOf.get(bytesToBinary(buf));
      if (id !== undefined) tokens.push(id);
      else for (const b of buf) tokens.push(b + BYTE_FALLBACK_OFFSET);
      buf = [];
    }
    return tokens;
  }

  /**
   * Repeatedly merges the adjacent pair whose concatenation is a piece with the highest score, the
   * leftmost on ties — the same result as run.c's O(n²) rescan, done with a heap and a linked list so
   * long haystacks encode in O(n log n).
   */
  private mergePairs(initial: number[]): number[] {
    const n = initial.length;
    const tok = Int32Array.from(initial);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new PairHeap();
    const consider = (left: number): void => {
      const right = next[left]!;
      if (right < 0) return;
      const id = this.idOf.get(this.pieces[tok[left]!]! + this.pieces[tok[right]!]!);
      if (id === undefined) return;
      const score = this.scores[id]!;
      if (!(score > MIN_MERGE_SCORE)) return;
      heap.push({ score, left, right, id, leftTok: tok[left]!, rightTok: tok[right]! });
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    for (;;) {
      const c = heap.pop();
      if (c === undefined) break;
      const stale = !alive[c.left] || !alive[c.right] || next[c.left] !== c.right || tok[c.left] !== c.leftTok || tok[c.right] !== c.rightTok;
      if (stale) continue;
      tok[c.left] = c.id;
      alive[c.right] = 0;
      const after = next[c.right]!;
      next[c.left] = after;
      if (after >= 0) prev[after] = c.left;
      if (prev[c.left]! >= 0) consider(prev[c.left]!);
      consider(c.left);
    }
    const out: number[] = [];
    for (let i = n > 0 ? 0 : -1; i >= 0; i = next[i]!) out.push(tok[i]!);
    return out;
  }

  decode(ids: readonly number[]): string {
    const bytes: number[] = [];
    let prev = -1;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.pieces.length) {
        fail(`token id ${id} is outside the llama2.c vocabulary (size ${this.pieces.length})`, "decode ids produced by this model's tokenizer");
      }
      if (id !== BOS_ID && id !== EOS_ID) this.appendPieceBytes(id, prev, bytes);
      prev = id;
    }
    return new TextDecoder().decode(Uint8Array.from(bytes));
  }

  private appendPieceBytes(id: number, prev: number, out: number[]): void {
    let piece = this.pieces[id]!;
    // SentencePiece strips the dummy-prefix space of the first piece after BOS.
    if (prev === BOS_ID && piece.startsWith(" ")) piece = piece.slice(1);
    const raw = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
    if (raw) {
      out.push(parseInt(raw[1]!, 16));
      return;
    }
    for (let i = 0; i < piece.length; i++) out.push(piece.charCodeAt(i));
  }
}

interface MergeCandidate {
  score: number;
  left: number;
  right: number;
  id: number;
  leftTok: number;
  rightTok: number;
}

/** Max-heap on score; ties go to the leftmost pair (node indices keep sequence order). */
class PairHeap {
  private readonly items: MergeCandidate[] = [];

  private before(a: MergeCandidate, b: MergeCandidate): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }

  push(c: MergeCandidate): void {
    const h = this.items;
    h.push(c);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): MergeCandidate | undefined {
    const h = this.items;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < h.length && this.before(h[l]!, h[best]!)) best = l;
        if (r < h.length && this.before(h[r]!, h[best]!)) best = r;
        if (best === i) break;
        [h[i], h[best]] = [h[best]!, h[i]!];
        i = best;
      }
    }
    return top;
  }
}

/** Reads a llama2.c tokenizer.bin holding exactly `vocabSize` tokens (the model header's vocab size). */
export function readLlama2cTokenizer(path: string, vocabSize: number): Llama2cTokenizer {
  if (!Number.isInteger(vocabSize) || vocabSize <= 0) fail(`vocab size ${vocabSize} for tokenizer ${path} must be a positive integer`, "pass the model header's vocab size");
  if (!existsSync(path)) fail(`llama2.c tokenizer ${path} does not exist`, "put tokenizer.bin (or tok<N>.bin) next to the model .bin");
  if (statSync(path).isDirectory()) fail(`llama2.c tokenizer ${path} is a directory`, "pass the tokenizer .bin file");
  const buf = readFileSync(path);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const truncated = (where: string): never =>
    fail(`llama2.c tokenizer ${path} is truncated at ${where} (${buf.byteLength} bytes, vocab size ${vocabSize})`, "re-download the tokenizer or use the one that belongs to this model");
  if (buf.byteLength < 4) truncated("the header");
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0) fail(`llama2.c tokenizer ${path} has max_token_length ${maxTokenLength}`, "is this a llama2.c tokenizer.bin?");
  const pieces: string[] = [];
  const scores = new Float32Array(vocabSize);
  let pos = 4;
  for (let i = 0; i < vocabSize; i++) {
    if (pos + 8 > buf.byteLength) truncated(`token ${i}`);
    scores[i] = view.getFloat32(pos, true);
    const len = view.getInt32(pos + 4, true);
    pos += 8;
    if (len < 0 || len > maxTokenLength) fail(`llama2.c tokenizer ${path}: token ${i} has length ${len} (max_token_length ${maxTokenLength})`, "the file is corrupt or not a llama2.c tokenizer");
    if (pos + len > buf.byteLength) truncated(`token ${i}`);
    pieces.push(bytesToBinary(buf.subarray(pos, pos + len)));
    pos += len;
  }
  if (pos !== buf.byteLength) {
    fail(`llama2.c tokenizer ${path} has ${buf.byteLength - pos} bytes after its ${vocabSize} tokens`, `its vocabulary is larger than the model's ${vocabSize}; use the tokenizer that belongs to this model`);
  }
  return new Llama2cTokenizer(pieces, scores, maxTokenLength);
}
