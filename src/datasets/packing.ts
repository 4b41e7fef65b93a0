import { fail } from "../util/errors.js";

export interface PackingOptions {
  /** Tokens per sequence, BOS included. */
  sequenceLength: number;
  bosId: number;
  /** Separator appended after every document; BOS is used when there is no EOS id. */
  eosId?: number;
  /** Drop the final partial sequence (default true); when false it is emitted shorter than `sequenceLength`. */
  dropRemainder?: boolean;
}

function checkPackingOptions(opts: PackingOptions): void {
  if (!Number.isInteger(opts.sequenceLength) || opts.sequenceLength < 2) {
    fail(`packing sequenceLength ${opts.sequenceLength} must be an integer ≥ 2`, "pick a sequence length such as 512 or 2048");
  }
}

/**
 * Streaming packer: documents go in as token chunks, fixed-length training sequences come out.
 * The token stream is doc₁ SEP doc₂ SEP …; each sequence is BOS followed by the next
 * `sequenceLength - 1` stream tokens. When the separator is BOS itself, a BOS that would open a
 * sequence right after the sequence's own BOS is skipped (it carries no information twice).
 */
export class TokenPacker {
  private readonly body: number;
  private readonly separator: number;
  private buffer: number[] = [];
  private readonly ready: number[][] = [];
  private documentHasTokens = false;

  constructor(private readonly opts: PackingOptions) {
    checkPackingOptions(opts);
    this.body = opts.sequenceLength - 1;
    this.separator = opts.eosId ?? opts.bosId;
  }

  /** Add tokens of the current document (a document may arrive in several chunks). */
  pushTokens(ids: readonly number[]): void {
    for (const id of ids) this.pushOne(id);
    if (ids.length > 0) this.documentHasTokens = true;
  }

  /** Close the current document: append the separator (nothing for an empty document). */
  endDocument(): void {
    if (!this.documentHasTokens) return;
    this.pushOne(this.separator);
    this.documentHasTokens = false;
  }

  /** The next finished sequence, if any. */
  take(): number[] | undefined {
    return this.ready.shift();
  }

  /** Finished sequences waiting to be taken. */
  get pending(): number {
    return this.ready.length;
  }

  /** The final partial sequence (BOS + leftover tokens), or undefined when nothing is left. */
  flushRemainder(): number[] | undefined {
    if (this.buffer.length === 0) return undefined;
    const last = [this.opts.bosId, ...this.buffer];
    this.buffer = [];
    return last;
  }

  private pushOne(id: number): void {
    if (this.buffer.length === 0 && id === this.opts.bosId && this.separator === this.opts.bosId) return;
    this.buffer.push(id);
    if (this.buffer.length === this.body) {
      this.ready.push([this.opts.bosId, ...this.buffer]);
      this.buffer = [];
    }
  }
}

/** Lazily pack tokenised documents into sequences (see `TokenPacker`). */
export function* packStream(docs: Iterable<readonly number[]>, opts: PackingOptions): Generator<number[]> {
  const packer = new TokenPacker(opts);
  for (const doc of docs) {
    packer.pushTokens(doc);
    packer.endDocument();
    for (let seq = packer.take(); seq; seq = packer.take()) yield seq;
  }
  if (opts.dropRemainder === false) {
    const last = packer.flushRemainder();
    if (last) yield last;
  }
}

/**
 * Concatenate tokenised docs separated by EOS (or BOS) and cut them into sequences of exactly
 * `sequenceLength` tokens, each starting with BOS. Only the final partial sequence is dropped
 * (kept, shorter, with `dropRemainder: false`).
 */
export function packSequences(docs: Iterable<number[]>, opts: PackingOptions): number[][] {
  return Array.from(packStream(docs, opts));
}
