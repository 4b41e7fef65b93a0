/**
 * Independent float64 references of which tokens the scoring methods keep, written from the papers' definitions
 * (not from src/cache): per KV head, keys/values as plain arrays [S][d]; each returns the kept indices per head,
 * ascending. Ties go to the earlier token.
 */
export type Mat = number[][];

const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);
const norm = (a: number[]) => Math.sqrt(dot(a, a));

/** The n best indices by score (stable: earlier wins ties), ascending. */
export function topN(scores: number[], n: number): number[] {
  return scores
    .map((s, i) => [s, i] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, n)
    .map(([, i]) => i)
    .sort((a, b) => a - b);
}

/** KNorm (arXiv 2406.11430): keep the budget keys of smallest L2 norm. */
export function knorm64(keys: Mat, budget: number): number[] {
  return topN(keys.map((k) => -norm(k)), budget);
}

/** KeyDiff (arXiv 2504.15364): keep the keys of lowest cosine similarity to the mean unit key. */
export function keydiff64(keys: Mat, budget: number): number[] {
  const d = keys[0]!.length;
  const anchor = Array.from({ length: d }, (_, c) => keys.reduce((s, k) => s + k[c]! / norm(k), 0) / keys.length);
  return topN(keys.map((k) => -dot(k, anchor) / (norm(k) * norm(anchor))), budget);
}

/** std over channels (n − 1) of x min-max normalised by ref's per-channel range. */
function lagStd(x: number[], ref: Mat): number {
  const z = x.map((v, c) => {
    const col = ref.map((r) => r[c]!);
    return (v - Math.min(...col)) / (Math.max(...col) - Math.min(...col));
  });
  const m = z.reduce((a, b) => a + b, 0) / z.length;
  return Math.sqrt(z.reduce((a, b) => a + (b - m) ** 2, 0) / (z.length - 1));
}

function softmax(xs: number[]): number[] {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/**
 * LagKV (arXiv 2504.04704): sinks and the tail (last full partition + remainder) always kept; each earlier
 * partition's tokens ranked by the mean of their key and value softmaxed lag-std against the next partition.
 */
export function lagkv64(keys: Mat, values: Mat, budget: number, sinks: number, lag: number): number[] {
  const S = keys.length;
  const score = new Array<number>(S).fill(1);
  if (S < sinks + 2 * lag) {
    for (let i = sinks; i < S; i++) score[i] = (i - sinks) / (S - sinks);
    return topN(score, budget);
  }
  const partitions = Math.floor((S - sinks) / lag) - 1;
  for (let p = 0; p < partitions; p++) {
    const at = (m: Mat, q: number) => m.slice(sinks + q * lag, sinks + (q + 1) * lag);
    const ks = softmax(at(keys, p).map((k) => lagStd(k, at(keys, p + 1))));
    const vs = softmax(at(values, p).map((v) => lagStd(v, at(values, p + 1))));
    const mean = ks.map((k, i) => (k + vs[i]!) / 2);
    const order = mean.map((_, i) => i).sort((a, b) => mean[a]! - mean[b]! || a - b);
    order.forEach((i, rank) => (score[sinks + p * lag + i] = rank / lag));
  }
  return topN(score, budget);
}

/**
 * ChunkKV (arXiv 2502.00299) over per-head scores scores[h][i]: summed over heads, chunks ranked by mean; whole
 * chunks in that order, then the best tokens of the next chunk, until the budget is full. Same for every head.
 */
export function chunkkv64(scores: number[][], budget: number, chunkLength: number): number[] {
  const S = scores[0]!.length;
  const summed = Array.from({ length: S }, (_, i) => scores.reduce((s, row) => s + row[i]!, 0));
  const chunks: number[][] = [];
  for (let s = 0; s < S; s += chunkLength) chunks.push(Array.from({ length: Math.min(S, s + chunkLength) - s }, (_, j) => s + j));
  const mean = (c: number[]) => c.reduce((a, i) => a + summed[i]!, 0) / c.length;
  const ranked = chunks.map((c, i) => [mean(c), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  const kept: number[] = [];
  for (const [, ci] of ranked) {
    const c = chunks[ci]!;
    if (kept.length + c.length <= budget) kept.push(...c);
    else {
      kept.push(...topN(c.map((i) => summed[i]!), budget - kept.length).map((j) => c[j]!));
      break;
    }
  }
  return kept.sort((a, b) => a - b);
}

/** Asymmetric round-to-nearest quantisation of a group to `bits` (KIVI, arXiv 2402.02750), dequantised. */
export function quantize64(xs: number[], bits: number): number[] {
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  const levels = 2 ** bits - 1;
  const scale = (hi - lo) / levels;
  if (scale === 0) return xs.slice();
  return xs.map((x) => Math.round((x - lo) / scale) * scale + lo);
}

/** RoPE rotation matrix at position p (rotate_half pairing i ↔ i + d/2, inverse frequencies θ^(−2i/d)). */
function ropeMatrix(p: number, d: number, theta: number): Mat {
  const R = Array.from({ length: d }, () => new Array<number>(d).fill(0));
  const h = d / 2;
  for (let i = 0; i < h; i++) {
    const a = p * Math.pow(theta, (-2 * i) / d);
    R[i]![i] = Math.cos(a);
    R[i]![i + h] = -Math.sin(a);
    R[i + h]![i + h] = Math.cos(a);
    R[i + h]![i] = Math.sin(a);
  }
  return R;
}

const mul = (A: Mat, B: Mat): Mat => A.map((row) => B[0]!.map((_, j) => row.reduce((s, x, l) => s + x * B[l]![j]!, 0)));
const tr = (A: Mat): Mat => A[0]!.map((_, j) => A.map((row) => row[j]!));

/**
 * Expected Attention (arXiv 2510.00636): qPre [H][T][d] pre-RoPE queries of the prompt, keys (rotated) and values
 * [Hkv][S][d]. Gaussian future queries: mean/covariance over queries t ≥ sinks, moved by the mean rotation over
 * positions T … T + future − 1; score = softmax_i(μ̄·k_i/√d + k_iᵀΣ̄k_i/(2d)) over non-sink keys, averaged over the
 * group, times ‖v_i‖; sinks always kept. Returns kept indices per KV head.
 */
export function expectedAttention64(qPre: Mat[], keys: Mat[], values: Mat[], budget: number, sinks: number, future: number, theta: number): number[][] {
  const H = qPre.length;
  const Hkv = keys.length;
  const g = H / Hkv;
  const T = qPre[0]!.length;
  const d = qPre[0]![0]!.length;
  const S = keys[0]!.length;
  let Rbar: Mat = Array.from({ length: d }, () => new Array<number>(d).fill(0));
  for (let p = T; p < T + future; p++) Rbar = Rbar.map((row, i) => row.map((x, j) => x + ropeMatrix(p, d, theta)[i]![j]! / future));
  const scores = Array.from({ length: Hkv }, () => new Array<number>(S).fill(0));
  for (let h = 0; h < H; h++) {
    const qs = qPre[h]!.slice(sinks);
    const mu = Array.from({ length: d }, (_, i) => qs.reduce((s, q) => s + q[i]!, 0) / qs.length);
    const cov = Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => qs.reduce((s, q) => s + (q[i]! - mu[i]!) * (q[j]! - mu[j]!), 0) / qs.length));
    const muR = Rbar.map((row) => dot(row, mu));
    const covR = mul(mul(Rbar, cov), tr(Rbar));
    const kv = Math.floor(h / g);
    const logits = keys[kv]!.slice(sinks).map((k) => dot(muR, k) / Math.sqrt(d) + dot(k, covR.map((row) => dot(row, k))) / d / 2);
    softmax(logits).forEach((p, i) => (scores[kv]![sinks + i]! += p / g));
  }
  return scores.map((row, kv) => {
    const scaled = row.map((s, i) => (i < sinks ? 0 : s * norm(values[kv]![i]!)));
    const top = Math.max(...scaled);
    return topN(scaled.map((s, i) => (i < sinks ? top + 1 : s)), budget);
  });
}

/**
 * SnapKV (arXiv 2404.14469) per KV head: q [H][T][d] rotated queries, k [Hkv][S][d] rotated keys (the last T are the
 * queries' own). Each of the last `window` queries: softmax(q·k/√d) over the keys it sees (all earlier ones and the
 * window up to itself); the first S − window columns averaged over the window, max-pooled over `kernel` neighbours
 * (same padding) per query head, then averaged over the KV head's group. Returns scores[kv][i], i < S − window.
 */
export function snapkv64(q: Mat[], k: Mat[], window: number, kernel: number): number[][] {
  const H = q.length;
  const Hkv = k.length;
  const g = H / Hkv;
  const T = q[0]!.length;
  const S = k[0]!.length;
  const E = S - window;
  const out: number[][] = [];
  for (let kv = 0; kv < Hkv; kv++) {
    const score = new Array<number>(E).fill(0);
    for (let j = 0; j < g; j++) {
      const mean = new Array<number>(E).fill(0);
      for (let t = 0; t < window; t++) {
        const query = q[kv * g + j]![T - window + t]!;
        const p = softmax(k[kv]!.slice(0, E + t + 1).map((key) => dot(query, key) / Math.sqrt(query.length)));
        for (let i = 0; i < E; i++) mean[i]! += p[i]! / window;
      }
      const r = (kernel - 1) / 2;
      for (let i = 0; i < E; i++) score[i]! += Math.max(...mean.slice(Math.max(0, i - r), Math.min(E, i + r + 1))) / g;
    }
    out.push(score);
  }
  return out;
}

/**
 * AdaKV (arXiv 2407.11550) as kvpress's AdaKVPress computes it, over scores[h][i] of the S − protect older tokens of
 * each KV head: the `protect` newest tokens score +∞ (kvpress pads the window with the maximum); per head the top
 * ⌊alpha · budget⌋ tokens are raised to +∞ (the safeguard); then the top numKvHeads · budget scores of the whole
 * layer, flattened head-major (ties: the earlier flat index), stay. Returns the kept indices per head, ascending.
 */
export function adakv64(scores: number[][], budget: number, protect: number, alpha: number): number[][] {
  const S = scores[0]!.length + protect;
  const raised = scores.map((row) => [...row, ...new Array<number>(protect).fill(Infinity)]);
  const safe = Math.floor(alpha * budget);
  for (const row of raised) {
    const order = row.map((s, i) => [s, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    for (const [, i] of order.slice(0, safe)) row[i] = Infinity;
  }
  const flat = raised.flatMap((row, h) => row.map((s, i) => [s, h * S + i] as const));
  flat.sort((a, b) => (b[0] === a[0] ? a[1] - b[1] : b[0] - a[0]));
  const kept = raised.map(() => [] as number[]);
  for (const [, x] of flat.slice(0, raised.length * budget)) kept[Math.floor(x / S)]!.push(x % S);
  return kept.map((k) => k.sort((a, b) => a - b));
}
