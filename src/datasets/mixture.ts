import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { fail } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import { TokenPacker } from "./packing.js";
import { HaystackSource } from "./synthetic/haystack.js";
import { DEFAULT_DIGITS, type TaskName, checkTaskParams, generateTrainingSequence, taskName } from "./synthetic/index.js";
import type { TaskParams } from "./synthetic/types.js";

export interface TrainingSequence {
  ids: number[];
  /** 1 on the tokens the loss should weight (the answer of a synthetic sequence); absent for plain text. */
  lossMask?: number[];
  /** Name of the mixture source it came from. */
  source: string;
}

/** Plain prose, packed into sequences. */
export interface TextMixtureSource {
  kind: "text";
  name: string;
  weight: number;
  texts: readonly string[];
}

/** A synthetic retrieval task generated at exactly the sequence length, haystack from `haystack` texts. */
export interface SyntheticMixtureSource {
  kind: "synthetic";
  name: string;
  weight: number;
  task: TaskName | string;
  haystack: readonly string[];
  /** Probability that a sequence starts with the trained intro (default 0.5: edge-lm saw it as optional). */
  introProbability?: number;
  /** Needle depth range of the asked needle (default [0, 1], uniform). */
  depthRange?: readonly [number, number];
  digits?: readonly [number, number];
  needles?: number;
  hops?: number;
  chains?: number;
}

export type MixtureSource = TextMixtureSource | SyntheticMixtureSource;

export interface MixtureOptions {
  tokenizer: Tokenizer;
  sequenceLength: number;
  seed: number;
  sources: readonly MixtureSource[];
  /** Texts are tokenised lazily in paragraph-aligned chunks of about this many characters (default 4000). */
  chunkChars?: number;
  /** Where a source too short for one sequence is reported (default: a `warning:` line on stderr). */
  warn?: (message: string) => void;
}

/** Paragraph-aligned pieces of at most ~`maxChars` (a single longer paragraph is cut at spaces). */
export function chunkText(text: string, maxChars: number): string[] {
  const pieces = text.split(/(?<=\n\n)/);
  const chunks: string[] = [];
  let current = "";
  for (const piece of pieces) {
    if (current.length > 0 && current.length + piece.length > maxChars) {
      chunks.push(current);
      current = "";
    }
    current += piece;
    while (current.length > maxChars * 2) {
      const cut = current.lastIndexOf(" ", maxChars);
      const at = cut > 0 ? cut : maxChars;
      chunks.push(current.slice(0, at));
      current = current.slice(at);
    }
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

interface Stream {
  next(): TrainingSequence;
}

/** Documents in a seeded order (reshuffled every pass), tokenised chunk by chunk, EOS between documents. */
class TextStream implements Stream {
  private readonly packer: TokenPacker;
  private order: number[] = [];
  private chunks: string[] = [];
  private passes = 0;
  private produced = 0;

  constructor(
    private readonly source: TextMixtureSource,
    private readonly tokenizer: Tokenizer,
    private readonly sequenceLength: number,
    private readonly rng: Rng,
    private readonly chunkChars: number,
    private readonly warn: (message: string) => void,
  ) {
    if (source.texts.length === 0) fail(`mixture source "${source.name}" has no texts`, "give it a corpus");
    this.packer = new TokenPacker({ sequenceLength, bosId: tokenizer.bosId, eosId: tokenizer.eosId });
  }

  next(): TrainingSequence {
    let documentsWithoutTokens = 0;
    while (this.packer.pending === 0) {
      if (this.chunks.length === 0) {
        if (documentsWithoutTokens > this.source.texts.length) {
          fail(`mixture source "${this.source.name}" has no tokens`, "give it non-empty texts");
        }
        if (this.order.length === 0) {
          // A second pass before the first sequence is full: the whole source is shorter than one sequence, which
          // is then the same few tokens over and over (a 1-character held-out file scored as a "loss"). Said once.
          if (this.passes === 1 && this.produced === 0) {
            this.warn(`mixture source "${this.source.name}" holds fewer tokens than one sequence of ${this.sequenceLength}: its text is repeated to fill each sequence (give it more text, or a shorter sequenceLength)`);
          }
          this.passes++;
          this.order = this.rng.shuffle(this.source.texts.map((_, i) => i));
        }
        this.chunks = chunkText(this.source.texts[this.order.shift()!]!, this.chunkChars);
        documentsWithoutTokens++;
        continue;
      }
      const ids = this.tokenizer.encode(this.chunks.shift()!);
      if (ids.length > 0) documentsWithoutTokens = 0;
      this.packer.pushTokens(ids);
      if (this.chunks.length === 0) this.packer.endDocument();
    }
    this.produced++;
    return { ids: this.packer.take()!, source: this.source.name };
  }
}

class SyntheticStream implements Stream {
  private readonly haystack: HaystackSource;
  private readonly task: TaskName;
  private readonly params: TaskParams;
  private readonly introProbability: number;
  private readonly depthRange: readonly [number, number];

  constructor(
    private readonly source: SyntheticMixtureSource,
    private readonly tokenizer: Tokenizer,
    private readonly sequenceLength: number,
    private readonly rng: Rng,
  ) {
    this.task = taskName(source.task);
    this.haystack = new HaystackSource(source.haystack);
    this.params = {
      digits: checkTaskParams({ digits: source.digits ?? DEFAULT_DIGITS }),
      needles: source.needles,
      hops: source.hops,
      chains: source.chains,
    };
    this.introProbability = source.introProbability ?? 0.5;
    this.depthRange = source.depthRange ?? [0, 1];
    const [lo, hi] = this.depthRange;
    if (!(lo >= 0 && hi <= 1 && lo <= hi)) fail(`mixture source "${source.name}": depthRange [${lo}, ${hi}] must lie in 0..1`, "e.g. [0, 1]");
    if (!(this.introProbability >= 0 && this.introProbability <= 1)) {
      fail(`mixture source "${source.name}": introProbability ${this.introProbability} must be in 0..1`, "e.g. 0.5");
    }
  }

  next(): TrainingSequence {
    const [lo, hi] = this.depthRange;
    const depth = lo + (hi - lo) * this.rng.next();
    const intro = this.rng.next() < this.introProbability;
    const { ids, lossMask } = generateTrainingSequence(this.task, {
      tokenizer: this.tokenizer,
      haystack: this.haystack,
      sequenceLength: this.sequenceLength,
      rng: this.rng,
      depth,
      intro,
      params: this.params,
    });
    return { ids, lossMask, source: this.source.name };
  }
}

/** Index of the source the next sequence comes from (probability weight / Σ weights); one draw of `rng`. */
function pickSource(cumulativeWeights: readonly number[], rng: Rng): number {
  const r = rng.next() * cumulativeWeights[cumulativeWeights.length - 1]!;
  const index = cumulativeWeights.findIndex((c) => r < c);
  return index === -1 ? cumulativeWeights.length - 1 : index;
}

/**
 * Seeded mixture of datasets: each `next()` picks a source with probability weight / Σweights and returns
 * one sequence of exactly `sequenceLength` tokens from it. Same options and seed → same sequence stream.
 */
export class MixtureSampler implements Iterable<TrainingSequence> {
  private readonly rng: Rng;
  private readonly streams: Stream[];
  private readonly cumulativeWeights: number[];

  constructor(readonly opts: MixtureOptions) {
    if (!Number.isInteger(opts.sequenceLength) || opts.sequenceLength < 2) {
      fail(`mixture sequenceLength ${opts.sequenceLength} must be an integer ≥ 2`, "e.g. 2048");
    }
    if (opts.sources.length === 0) fail("mixture has no sources", "add at least one text or synthetic source");
    const names = new Set<string>();
    let total = 0;
    this.cumulativeWeights = opts.sources.map((s) => {
      if (!(s.weight > 0) || !Number.isFinite(s.weight)) fail(`mixture source "${s.name}" weight ${s.weight} must be > 0`, "e.g. 0.7");
      if (names.has(s.name)) fail(`mixture source name "${s.name}" is used twice`, "give each source its own name");
      names.add(s.name);
      return (total += s.weight);
    });
    this.rng = new Rng(opts.seed);
    // Each source draws from its own generator so adding a source does not change another source's content.
    this.streams = opts.sources.map((s, i) => {
      const rng = new Rng((opts.seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
      return s.kind === "text"
        ? new TextStream(s, opts.tokenizer, opts.sequenceLength, rng, opts.chunkChars ?? 4000, opts.warn ?? ((m) => process.stderr.write(`warning: ${m}\n`)))
        : new SyntheticStream(s, opts.tokenizer, opts.sequenceLength, rng);
    });
  }

  next(): TrainingSequence {
    return this.streams[pickSource(this.cumulativeWeights, this.rng)]!.next();
  }

  /**
   * How many of the first `count` sequences a sampler with these weights and seed draws from each source, without
   * tokenising anything: the source choice uses its own generator, apart from the sources' content.
   */
  static plan(weights: readonly number[], seed: number, count: number): number[] {
    let total = 0;
    const cumulative = weights.map((w) => (total += w));
    const rng = new Rng(seed);
    const counts = weights.map(() => 0);
    for (let i = 0; i < count; i++) counts[pickSource(cumulative, rng)]!++;
    return counts;
  }

  take(count: number): TrainingSequence[] {
    return Array.from({ length: count }, () => this.next());
  }

  *[Symbol.iterator](): Iterator<TrainingSequence> {
    for (;;) yield this.next();
  }
}
