/**
 * An independent float64 reference of a Llama decoder and of EdgeInfinite attention, written from the formulas
 * (not from the tfjs code): per-token loops over plain arrays. Tests compare the tfjs implementation with it.
 */
import type { LlamaConfig } from "../../src/backbone/config.js";
import type { HostWeights, HostTensor } from "../../src/backbone/weights.js";
import { Rng } from "../../src/util/rng.js";

export type Vec = number[];

export function tinyConfig(over: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    architecture: "test",
    vocabSize: 40,
    hiddenSize: 16,
    intermediateSize: 24,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 4,
    maxPositions: 256,
    ropeTheta: 10000,
    ropeScaling: null,
    rmsNormEps: 1e-5,
    tieWordEmbeddings: true,
    bosTokenId: 1,
    eosTokenId: 2,
    ...over,
  };
}

function randTensor(rng: Rng, shape: number[], scale: number, offset = 0): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = offset + scale * rng.normal();
  return { shape, data };
}

export function randomWeights(c: LlamaConfig, seed = 1): HostWeights {
  const rng = new Rng(seed);
  const d = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const s = 0.4;
  return {
    embed: randTensor(rng, [c.vocabSize, d], 1),
    layers: Array.from({ length: c.numLayers }, () => ({
      attnNorm: randTensor(rng, [d], 0.1, 1),
      wq: randTensor(rng, [q, d], s),
      wk: randTensor(rng, [kv, d], s),
      wv: randTensor(rng, [kv, d], s),
      wo: randTensor(rng, [d, q], s),
      ffnNorm: randTensor(rng, [d], 0.1, 1),
      wGate: randTensor(rng, [c.intermediateSize, d], s),
      wUp: randTensor(rng, [c.intermediateSize, d], s),
      wDown: randTensor(rng, [d, c.intermediateSize], s),
    })),
    finalNorm: randTensor(rng, [d], 0.1, 1),
    lmHead: null,
  };
}

/** y = W x for torch-layout W [out, in]. */
export function linear(W: HostTensor, x: Vec): Vec {
  const [out, inp] = W.shape as [number, number];
  const y = new Array<number>(out).fill(0);
  for (let o = 0; o < out; o++) {
    let acc = 0;
    for (let i = 0; i < inp; i++) acc += W.data[o * inp + i]! * x[i]!;
    y[o] = acc;
  }
  return y;
}

export function rmsnorm(x: Vec, w: HostTensor, eps: number): Vec {
  const ms = x.reduce((a, v) => a + v * v, 0) / x.length;
  const r = 1 / Math.sqrt(ms + eps);
  return x.map((v, i) => v * r * w.data[i]!);
}

/** Half-split RoPE of one head vector at position p. */
export function rope(x: Vec, p: number, theta: number): Vec {
  const d = x.length;
  const half = d / 2;
  const out = x.slice();
  for (let i = 0; i < half; i++) {
    const a = p * Math.pow(theta, -(2 * i) / d);
    out[i] = x[i]! * Math.cos(a) - x[i + half]! * Math.sin(a);
    out[i + half] = x[i + half]! * Math.cos(a) + x[i]! * Math.sin(a);
  }
  return out;
}

export const dot = (a: Vec, b: Vec) => a.reduce((s, v, i) => s + v * b[i]!, 0);
export const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
/** ELU + 1 */
export const sigma = (x: number) => (x > 0 ? x + 1 : Math.exp(x));

export function heads(v: Vec, n: number, d: number): Vec[] {
  return Array.from({ length: n }, (_, h) => v.slice(h * d, (h + 1) * d));
}

export function ffn(L: HostWeights["layers"][number], x: Vec): Vec {
  const g = linear(L.wGate, x);
  const u = linear(L.wUp, x);
  return linear(L.wDown, g.map((a, i) => (a * sigmoid(a)) * u[i]!));
}

export function logitsOf(c: LlamaConfig, w: HostWeights, x: Vec): Vec {
  const h = rmsnorm(x, w.finalNorm, c.rmsNormEps);
  return linear(w.lmHead ?? w.embed, h);
}

export function embed(w: HostWeights, c: LlamaConfig, id: number): Vec {
  return Array.from(w.embed.data.slice(id * c.hiddenSize, (id + 1) * c.hiddenSize));
}

/** Attention probabilities of one query over keys (already rotated): softmax(q·k/√d). */
export function attentionWeights(q: Vec, keys: Vec[]): Vec {
  const d = q.length;
  const s = keys.map((k) => dot(q, k) / Math.sqrt(d));
  const m = Math.max(...s);
  const e = s.map((v) => Math.exp(v - m));
  const Z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / Z);
}

/** Softmax-weighted sum of values for one query over keys (already rotated). */
export function attend(q: Vec, keys: Vec[], values: Vec[], observe?: (probs: Vec) => void): Vec {
  const p = attentionWeights(q, keys);
  observe?.(p);
  const out = new Array<number>(q.length).fill(0);
  p.forEach((pj, j) => values[j]!.forEach((v, i) => (out[i]! += pj * v)));
  return out;
}

/**
 * Full causal forward; returns logits per position. `observe(layer, t, h, probs)` sees every query's attention
 * probabilities over keys 0…t.
 */
export function forward64(c: LlamaConfig, w: HostWeights, ids: number[], observe?: (layer: number, t: number, h: number, probs: Vec) => void): Vec[] {
  let xs = ids.map((id) => embed(w, c, id));
  const g = c.numHeads / c.numKvHeads;
  for (const [li, L] of w.layers.entries()) {
    const xn = xs.map((x) => rmsnorm(x, L.attnNorm, c.rmsNormEps));
    const q = xn.map((x, t) => heads(linear(L.wq, x), c.numHeads, c.headDim).map((h) => rope(h, t, c.ropeTheta)));
    const k = xn.map((x, t) => heads(linear(L.wk, x), c.numKvHeads, c.headDim).map((h) => rope(h, t, c.ropeTheta)));
    const v = xn.map((x) => heads(linear(L.wv, x), c.numKvHeads, c.headDim));
    xs = xs.map((x, t) => {
      const o = q[t]!.flatMap((qh, h) => {
        const kvh = Math.floor(h / g);
        const see = observe && ((p: Vec) => observe(li, t, h, p));
        return attend(qh, k.slice(0, t + 1).map((kk) => kk[kvh]!), v.slice(0, t + 1).map((vv) => vv[kvh]!), see);
      });
      const proj = linear(L.wo, o);
      const y = x.map((a, i) => a + proj[i]!);
      const f = ffn(L, rmsnorm(y, L.ffnNorm, c.rmsNormEps));
      return y.map((a, i) => a + f[i]!);
    });
  }
  return xs.map((x) => logitsOf(c, w, x));
}

/** EdgeInfinite parameters of one layer in plain arrays: maps[h][in][out], gate bias [H], gate weight [H][d] or null. */
export interface Mem64Layer {
  queryMap: number[][][];
  keyMap: number[][][];
  valueMap: number[][][];
  gateBias: number[];
  gateWeight: number[][] | null;
}

export interface Mem64Config {
  sinkTokens: number;
  windowTokens: number;
  segmentLength: number;
  rule: "linear" | "delta";
  eps: number;
  /** Overrides every gate (e.g. 0 = sink+window attention only). */
  forceGate?: number;
  /** Tokens at absolute positions below this use gate 0 (the short-input route: plain backbone). */
  plainUntil?: number;
  /**
   * "pre-rope" (default): memory reads and writes use unrotated queries/keys. "post-rope": a query reads memory
   * rotated at its position in the step's local span, and an evicted key is written rotated at the position it
   * had in the local span of the step that evicts it (docs/edgeinfinite.md).
   */
  memoryKeys?: "pre-rope" | "post-rope";
}

const mapVec = (x: Vec, W: number[][]) => W[0]!.map((_, e) => x.reduce((s, xc, cc) => s + xc * W[cc]![e]!, 0));

/**
 * EdgeInfinite forward of a long input, segment by segment, in float64: local causal attention over
 * sink + window + segment at in-span positions, memory read σ(Qm)M/(σ(Qm)z+ε), gate mix, then
 * window overflow compressed (linear or delta rule). Returns logits per position.
 * With memoryKeys "post-rope" the memory sees rotated queries and keys (positions inside the local span).
 */
export function edgeInfinite64(c: LlamaConfig, w: HostWeights, mem: Mem64Layer[], cfg: Mem64Config, ids: number[]): Vec[] {
  const d = c.headDim;
  const g = c.numHeads / c.numKvHeads;
  type Tok = { k: Vec[]; v: Vec[] };
  const st = w.layers.map(() => ({
    sink: [] as Tok[],
    win: [] as Tok[],
    M: Array.from({ length: c.numKvHeads }, () => Array.from({ length: d }, () => new Array<number>(d).fill(0))),
    z: Array.from({ length: c.numKvHeads }, () => new Array<number>(d).fill(0)),
  }));
  const logits: Vec[] = [];
  for (let s0 = 0; s0 < ids.length; s0 += cfg.segmentLength) {
    const seg = ids.slice(s0, s0 + cfg.segmentLength);
    let xs = seg.map((id) => embed(w, c, id));
    w.layers.forEach((L, li) => {
      const S = st[li]!;
      const P = mem[li]!;
      const xn = xs.map((x) => rmsnorm(x, L.attnNorm, c.rmsNormEps));
      const q = xn.map((x) => heads(linear(L.wq, x), c.numHeads, d));
      const toks: Tok[] = xn.map((x) => ({ k: heads(linear(L.wk, x), c.numKvHeads, d), v: heads(linear(L.wv, x), c.numKvHeads, d) }));
      const local = [...S.sink, ...S.win, ...toks];
      const past = S.sink.length + S.win.length;
      const postRope = cfg.memoryKeys === "post-rope";
      // keys rotated at their index in the local span, per KV head
      const kRot = local.map((tok, j) => tok.k.map((kh) => rope(kh, j, c.ropeTheta)));
      xs = xs.map((x, t) => {
        const o = q[t]!.flatMap((qh, h) => {
          const kvh = Math.floor(h / g);
          const qRot = rope(qh, past + t, c.ropeTheta);
          const aLocal = attend(
            qRot,
            kRot.slice(0, past + t + 1).map((kh) => kh[kvh]!),
            local.slice(0, past + t + 1).map((tok) => tok.v[kvh]!),
          );
          const sq = mapVec(postRope ? qRot : qh, P.queryMap[h]!).map(sigma);
          const den = dot(sq, S.z[kvh]!) + cfg.eps;
          const aMem = S.M[kvh]![0]!.map((_, e) => sq.reduce((acc, sv, cc) => acc + sv * S.M[kvh]![cc]![e]!, 0) / den);
          const gate =
            s0 + t < (cfg.plainUntil ?? 0)
              ? 0
              : (cfg.forceGate ?? sigmoid(P.gateBias[h]! + (P.gateWeight ? dot(qh, P.gateWeight[h]!) : 0)));
          return aLocal.map((a, i) => gate * aMem[i]! + (1 - gate) * a);
        });
        const proj = linear(L.wo, o);
        const y = x.map((a, i) => a + proj[i]!);
        const f = ffn(L, rmsnorm(y, L.ffnNorm, c.rmsNormEps));
        return y.map((a, i) => a + f[i]!);
      });
      // state update
      for (const tok of toks) {
        if (S.sink.length < cfg.sinkTokens) S.sink.push(tok);
        else S.win.push(tok);
      }
      const overflow = S.win.length - cfg.windowTokens;
      if (overflow > 0) {
        const evicted = S.win.splice(0, overflow);
        for (let h = 0; h < c.numKvHeads; h++) {
          // post-rope: the key as rotated in this step's local span (its index there)
          const sk = evicted.map((tok) => mapVec(postRope ? kRot[local.indexOf(tok)]![h]! : tok.k[h]!, P.keyMap[h]!).map(sigma));
          const vm = evicted.map((tok) => mapVec(tok.v[h]!, P.valueMap[h]!));
          // delta: subtract what memory (before this update) already returns for each key
          const upd = vm.map((v, n) => {
            if (cfg.rule === "linear") return v;
            const den = dot(sk[n]!, S.z[h]!) + cfg.eps;
            return v.map((vv, e) => vv - sk[n]!.reduce((acc, s, cc) => acc + s * S.M[h]![cc]![e]!, 0) / den);
          });
          for (let n = 0; n < evicted.length; n++) {
            for (let cc = 0; cc < d; cc++) {
              for (let e = 0; e < d; e++) S.M[h]![cc]![e]! += sk[n]![cc]! * upd[n]![e]!;
              S.z[h]![cc]! += sk[n]![cc]!;
            }
          }
        }
      }
    });
    for (const x of xs) logits.push(logitsOf(c, w, x));
  }
  return logits;
}
