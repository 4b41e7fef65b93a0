/**
 * An independent float64 StreamingLLM (Xiao et al., arXiv 2309.17453): attention sinks + a sliding window of plain
 * KV, positions re-assigned inside the cache, no memory and no gate. Written from the definition, not from
 * src/memory or src/cache: one list of cached (pre-RoPE) tokens per layer, extended by a chunk of new tokens,
 * attended causally at positions 0 … |cache| + |chunk| − 1, then cut back to its first `sinkTokens` and last
 * `windowTokens` entries.
 *
 * The input is given as chunks. Chunks of `segmentLength` tokens are EdgeInfinite's segment-wise local span
 * (docs/edgeinfinite.md, "Segments, sink and window"): each token of a chunk sees sink + window + the chunk's tokens up to
 * itself. Chunks of one token are StreamingLLM's per-token eviction (as in decoding). Returns logits per token.
 */
import type { LlamaConfig } from "../../src/backbone/config.js";
import type { HostWeights } from "../../src/backbone/weights.js";
import { attend, embed, ffn, heads, linear, logitsOf, rmsnorm, rope, type Vec } from "./llama64.js";

export interface Streaming64Options {
  sinkTokens: number;
  windowTokens: number;
}

interface CachedToken {
  /** per KV head, pre-RoPE */
  k: Vec[];
  v: Vec[];
}

/** Indices StreamingLLM keeps out of n cached tokens: [0, sink) ∪ [n − window, n). */
function kept(n: number, o: Streaming64Options): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  if (n <= o.sinkTokens + o.windowTokens) return all;
  return all.filter((i) => i < o.sinkTokens || i >= n - o.windowTokens);
}

export function streaming64(c: LlamaConfig, w: HostWeights, o: Streaming64Options, chunks: number[][]): Vec[] {
  const d = c.headDim;
  const group = c.numHeads / c.numKvHeads;
  const cache: CachedToken[][] = w.layers.map(() => []);
  const out: Vec[] = [];
  for (const chunk of chunks) {
    let xs = chunk.map((id) => embed(w, c, id));
    w.layers.forEach((L, li) => {
      const xn = xs.map((x) => rmsnorm(x, L.attnNorm, c.rmsNormEps));
      const q = xn.map((x) => heads(linear(L.wq, x), c.numHeads, d));
      const fresh: CachedToken[] = xn.map((x) => ({ k: heads(linear(L.wk, x), c.numKvHeads, d), v: heads(linear(L.wv, x), c.numKvHeads, d) }));
      const span = [...cache[li]!, ...fresh];
      const before = cache[li]!.length;
      const keys = span.map((tok, pos) => tok.k.map((kh) => rope(kh, pos, c.ropeTheta)));
      xs = xs.map((x, t) => {
        const n = before + t + 1; // causal: the cache and the chunk up to this token
        const o2 = q[t]!.flatMap((qh, h) => {
          const kv = Math.floor(h / group);
          return attend(rope(qh, before + t, c.ropeTheta), keys.slice(0, n).map((k) => k[kv]!), span.slice(0, n).map((tok) => tok.v[kv]!));
        });
        const proj = linear(L.wo, o2);
        const y = x.map((a, i) => a + proj[i]!);
        const f = ffn(L, rmsnorm(y, L.ffnNorm, c.rmsNormEps));
        return y.map((a, i) => a + f[i]!);
      });
      cache[li] = kept(span.length, o).map((i) => span[i]!);
    });
    for (const x of xs) out.push(logitsOf(c, w, x));
  }
  return out;
}

/** Cuts ids into chunks of `size` (the last may be shorter). */
export function chunksOf(ids: readonly number[], size: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < ids.length; i += size) out.push(ids.slice(i, i + size));
  return out;
}
