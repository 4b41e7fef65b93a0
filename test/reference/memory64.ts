/**
 * An independent float64 reference of EdgeInfinite's memory variants, written from the formulas (docs/edgeinfinite.md,
 * src/memory/memory-step.ts's header) and not from the tfjs code: read modes "blend" and "shared", feature maps
 * ELU+1 and Hedgehog, linear/delta writes and the LoLA-style exact cache, with pre-RoPE memory keys.
 *
 * The forward runs layer by layer over the whole sequence (each layer's output at token t depends only on that
 * layer's tokens ≤ t and its own carried state, so this equals the segment-by-segment order of the tfjs code), which
 * also gives every layer's projections and attention output: what attention transfer compares.
 */
import type { LlamaConfig } from "../../src/backbone/config.js";
import type { HostWeights } from "../../src/backbone/weights.js";
import { attend, dot, embed, ffn, heads, linear, logitsOf, rmsnorm, rope, sigma, sigmoid, type Mem64Layer, type Vec } from "./llama64.js";

export interface MemoryVariant64 {
  sinkTokens: number;
  windowTokens: number;
  rule: "linear" | "delta";
  readMode: "blend" | "shared";
  featureMap: "elu" | "hedgehog";
  exactTokens: number;
  /** Exact tokens of each layer, over exactTokens (src/memory/config.ts exactTokensPerLayer); absent: exactTokens in every layer. */
  exactTokensPerLayer?: number[];
  /** Neighbours [before, after] that share a token's score (src/memory/exact-cache.ts spreadScores); absent: [0, 0]. */
  exactSpread?: [number, number];
  eps: number;
  /** Absolute positions below this use gate 0 (the short route: the plain backbone). */
  plainUntil?: number;
}

/** One layer's pre-RoPE projections per token: q[t][h], k[t][kvh], v[t][kvh]. */
export interface LayerProj64 {
  q: Vec[][];
  k: Vec[][];
  v: Vec[][];
}

const softmax = (x: Vec): Vec => {
  const m = Math.max(...x);
  const e = x.map((a) => Math.exp(a - m));
  const Z = e.reduce((a, b) => a + b, 0);
  return e.map((a) => a / Z);
};

/** φ: ELU+1 per component, or Hedgehog [softmax(x), softmax(−x)] (2d wide). */
export function phi64(x: Vec, kind: "elu" | "hedgehog"): Vec {
  return kind === "elu" ? x.map(sigma) : [...softmax(x), ...softmax(x.map((a) => -a))];
}

/** x W for W[in][out]. */
const mapVec = (x: Vec, W: number[][]): Vec => W[0]!.map((_, e) => x.reduce((s, xc, cc) => s + xc * W[cc]![e]!, 0));

interface HeadMemory {
  M: number[][]; // [dφ][d]
  z: Vec; // [dφ]
}

/** A_mem = φM/(φz + ε) and the mass φz for one feature vector. */
function read(mem: HeadMemory, f: Vec, eps: number): { out: Vec; mass: number } {
  const mass = dot(f, mem.z);
  return { out: mem.M[0]!.map((_, e) => f.reduce((a, fc, cc) => a + fc * mem.M[cc]![e]!, 0) / (mass + eps)), mass };
}

/** Writes mapped keys/values (one block, against the memory before the block). */
function write(mem: HeadMemory, km: Vec[], vm: Vec[], cfg: MemoryVariant64): void {
  const f = km.map((k) => phi64(k, cfg.featureMap));
  const upd = vm.map((v, n) => {
    if (cfg.rule === "linear") return v;
    const back = read(mem, f[n]!, cfg.eps).out; // delta: only what memory does not already return
    return v.map((a, e) => a - back[e]!);
  });
  for (let n = 0; n < km.length; n++) {
    for (let cc = 0; cc < f[n]!.length; cc++) {
      for (let e = 0; e < upd[n]!.length; e++) mem.M[cc]![e]! += f[n]![cc]! * upd[n]![e]!;
      mem.z[cc]! += f[n]![cc]!;
    }
  }
}

/** Smallest gap between the E-th and (E+1)-th self-recall error seen by any selection, relative (ill-conditioning check). */
export interface SelectionStats {
  selections: number;
  minRelGap: number;
}

/**
 * EdgeInfinite attention of one layer over the whole sequence, cut into `chunks` (segment lengths; the session's
 * decode steps are chunks of 1). Returns the heads' output per token (H·d) before the output projection.
 * Per chunk and KV head the local span is sink, exact cache, window, chunk (causal), RoPE at span indices.
 */
export function edgeLayer64(c: LlamaConfig, P: Mem64Layer, cfg: MemoryVariant64, p: LayerProj64, chunks: number[], stats?: SelectionStats): Vec[] {
  const d = c.headDim;
  const g = c.numHeads / c.numKvHeads;
  const dPhi = cfg.featureMap === "hedgehog" ? 2 * d : d;
  type KV = { k: Vec; v: Vec };
  const kv = Array.from({ length: c.numKvHeads }, () => ({
    sink: [] as KV[],
    exact: [] as KV[],
    win: [] as KV[],
    mem: { M: Array.from({ length: dPhi }, () => new Array<number>(d).fill(0)), z: new Array<number>(dPhi).fill(0) } as HeadMemory,
  }));
  const outs: Vec[] = [];
  let t0 = 0;
  for (const T of chunks) {
    const toks = Array.from({ length: T }, (_, i) => t0 + i);
    for (const t of toks) {
      const i = t - t0;
      outs.push(
        p.q[t]!.flatMap((qh, h) => {
          const kvh = Math.floor(h / g);
          const st = kv[kvh]!;
          const span: KV[] = [...st.sink, ...st.exact, ...st.win, ...toks.slice(0, i + 1).map((u) => ({ k: p.k[u]![kvh]!, v: p.v[u]![kvh]! }))];
          const qPos = span.length - 1;
          const qRot = rope(qh, qPos, c.ropeTheta);
          const kRot = span.map((s, j) => rope(s.k, j, c.ropeTheta));
          const aLocal = attend(qRot, kRot, span.map((s) => s.v));
          const logits = kRot.map((k) => dot(qRot, k) / Math.sqrt(d));
          const m = Math.max(...logits);
          const lse = m + Math.log(logits.reduce((a, s) => a + Math.exp(s - m), 0));
          const r = read(st.mem, phi64(mapVec(qh, P.queryMap[h]!), cfg.featureMap), cfg.eps);
          let logit = P.gateBias[h]! + (P.gateWeight ? dot(qh, P.gateWeight[h]!) : 0);
          if (cfg.readMode === "shared") logit += Math.log(r.mass + cfg.eps) - lse;
          const gate = t < (cfg.plainUntil ?? 0) ? 0 : sigmoid(logit);
          return aLocal.map((a, e) => a + gate * (r.out[e]! - a));
        }),
      );
    }
    // state update: sink fills first, the rest joins the window; overflow leaves it
    kv.forEach((st, kvh) => {
      for (const t of toks) {
        const tok = { k: p.k[t]![kvh]!, v: p.v[t]![kvh]! };
        if (st.sink.length < cfg.sinkTokens) st.sink.push(tok);
        else st.win.push(tok);
      }
      const overflow = st.win.length - cfg.windowTokens;
      if (overflow <= 0) return;
      const leaving = st.win.splice(0, overflow);
      const km = (x: KV) => mapVec(x.k, P.keyMap[kvh]!);
      const vm = (x: KV) => mapVec(x.v, P.valueMap[kvh]!);
      const E = cfg.exactTokens;
      if (E === 0) {
        write(st.mem, leaving.map(km), leaving.map(vm), cfg);
        return;
      }
      const cand = [...st.exact, ...leaving];
      if (cand.length <= E) {
        st.exact = cand;
        return;
      }
      // self-recall error ‖v·Wv − A_mem(k·Wk)‖² against the memory before the write; worst E stay exact
      const err = cand.map((x) => {
        const back = read(st.mem, phi64(km(x), cfg.featureMap), cfg.eps).out;
        return vm(x).reduce((a, ve, e) => a + (ve - back[e]!) ** 2, 0);
      });
      // with a spread, candidate j scores max(err[j − after … j + before]) + 10⁻³·err[j], and both the kept and the
      // written tokens stay in candidate (token) order
      const [before, after] = cfg.exactSpread ?? [0, 0];
      const spread = before > 0 || after > 0;
      const score = spread
        ? err.map((e, j) => Math.max(...err.slice(Math.max(0, j - after), j + before + 1)) + 1e-3 * e)
        : err;
      const order = cand.map((_, j) => j).sort((a, b) => score[b]! - score[a]!);
      if (stats) {
        stats.selections++;
        const gap = (score[order[E - 1]!]! - score[order[E]!]!) / Math.max(score[order[E - 1]!]!, 1e-30);
        stats.minRelGap = Math.min(stats.minRelGap, gap);
      }
      const inOrder = (js: number[]) => (spread ? [...js].sort((a, b) => a - b) : js);
      st.exact = inOrder(order.slice(0, E)).map((j) => cand[j]!);
      const rest = inOrder(order.slice(E)).map((j) => cand[j]!);
      write(st.mem, rest.map(km), rest.map(vm), cfg);
    });
    t0 += T;
  }
  return outs;
}

/** Full causal attention of one layer (positions 0..N−1): the teacher. */
export function fullLayer64(c: LlamaConfig, p: LayerProj64): Vec[] {
  const g = c.numHeads / c.numKvHeads;
  const kRot = p.k.map((kt, t) => kt.map((kh) => rope(kh, t, c.ropeTheta)));
  return p.q.map((qt, t) =>
    qt.flatMap((qh, h) => {
      const kvh = Math.floor(h / g);
      return attend(rope(qh, t, c.ropeTheta), kRot.slice(0, t + 1).map((k) => k[kvh]!), p.v.slice(0, t + 1).map((v) => v[kvh]!));
    }),
  );
}

/**
 * Llama forward, layer by layer over all tokens, with `attention` giving each layer's heads' output per token from
 * its pre-RoPE projections. Returns logits per token and every layer's projections and attention output.
 */
export function layerwiseForward64(
  c: LlamaConfig,
  w: HostWeights,
  ids: number[],
  attention: (layer: number, p: LayerProj64) => Vec[],
): { logits: Vec[]; layers: { p: LayerProj64; out: Vec[] }[] } {
  let xs = ids.map((id) => embed(w, c, id));
  const layers: { p: LayerProj64; out: Vec[] }[] = [];
  w.layers.forEach((L, li) => {
    const xn = xs.map((x) => rmsnorm(x, L.attnNorm, c.rmsNormEps));
    const p: LayerProj64 = {
      q: xn.map((x) => heads(linear(L.wq, x), c.numHeads, c.headDim)),
      k: xn.map((x) => heads(linear(L.wk, x), c.numKvHeads, c.headDim)),
      v: xn.map((x) => heads(linear(L.wv, x), c.numKvHeads, c.headDim)),
    };
    const out = attention(li, p);
    layers.push({ p, out });
    xs = xs.map((x, t) => {
      const proj = linear(L.wo, out[t]!);
      const y = x.map((a, i) => a + proj[i]!);
      const f = ffn(L, rmsnorm(y, L.ffnNorm, c.rmsNormEps));
      return y.map((a, i) => a + f[i]!);
    });
  });
  return { logits: xs.map((x) => logitsOf(c, w, x)), layers };
}

/** EdgeInfinite logits per token of `ids` processed in `chunks`. */
export function memoryForward64(c: LlamaConfig, w: HostWeights, mem: Mem64Layer[], cfg: MemoryVariant64, ids: number[], chunks: number[], stats?: SelectionStats): Vec[] {
  const atLayer = (li: number): MemoryVariant64 => ({ ...cfg, exactTokens: cfg.exactTokensPerLayer?.[li] ?? cfg.exactTokens });
  return layerwiseForward64(c, w, ids, (li, p) => edgeLayer64(c, mem[li]!, atLayer(li), p, chunks, stats)).logits;
}

/** Chunk lengths of n tokens cut into segments of L (the last may be shorter). */
export function segmentChunks(n: number, L: number): number[] {
  return Array.from({ length: Math.ceil(n / L) }, (_, i) => Math.min(L, n - i * L));
}

/**
 * Attention-transfer loss (LoLCATs stage 1) from the definition: per layer, the student (EdgeInfinite attention over
 * segments of the teacher's own projections) against the teacher's full causal attention output,
 *   Σ_layers Σ_t w_t ‖s_t − o_t‖² / (mean(o²) · Σ_t w_t · H·d).
 */
export function attentionTransferLoss64(
  c: LlamaConfig,
  w: HostWeights,
  mem: Mem64Layer[],
  cfg: MemoryVariant64,
  inputs: number[],
  weights: number[],
  segmentLength: number,
): number {
  const teacher = layerwiseForward64(c, w, inputs, (_li, p) => fullLayer64(c, p)).layers;
  const wSum = weights.reduce((a, b) => a + b, 0);
  const width = c.numHeads * c.headDim;
  let loss = 0;
  teacher.forEach(({ p, out }, li) => {
    const student = edgeLayer64(c, mem[li]!, cfg, p, segmentChunks(inputs.length, segmentLength));
    let sq = 0;
    let ms = 0;
    out.forEach((o, t) => o.forEach((a, i) => {
      sq += weights[t]! * (student[t]![i]! - a) ** 2;
      ms += a * a;
    }));
    ms /= out.length * width;
    loss += sq / (ms * wSum * width);
  });
  return loss;
}
