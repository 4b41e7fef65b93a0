/**
 * An independent float64 forward of every supported family, written from transformers' modeling files
 * (modeling_llama/mistral/qwen2/qwen3/phi3/gemma2/gemma3/smollm3.py and modeling_rope_utils.py), reading the
 * raw checkpoint tensors by their Hugging Face names and config.json keys directly: no code of src/ is used, so
 * the loader's conversions (fused splits, Gemma's 1 + w, per-layer RoPE) are checked too. Plain loops over arrays.
 */
type Json = Record<string, unknown>;
type Vec = number[];
interface Raw {
  shape: number[];
  data: Float32Array;
}

function linear(W: Raw, x: Vec, rowStart = 0, rows = W.shape[0]!): Vec {
  const inp = W.shape[1]!;
  const y = new Array<number>(rows).fill(0);
  for (let o = 0; o < rows; o++) {
    let acc = 0;
    for (let i = 0; i < inp; i++) acc += W.data[(rowStart + o) * inp + i]! * x[i]!;
    y[o] = acc;
  }
  return y;
}

const add = (a: Vec, b: Vec) => a.map((v, i) => v + b[i]!);

/** transformers' RMSNorm; Gemma's scales by (1 + w). */
function rmsnorm(x: Vec, w: Raw, eps: number, gemma: boolean): Vec {
  const ms = x.reduce((a, v) => a + v * v, 0) / x.length;
  const r = 1 / Math.sqrt(ms + eps);
  return x.map((v, i) => v * r * (gemma ? 1 + w.data[i]! : w.data[i]!));
}

const silu = (x: number) => x / (1 + Math.exp(-x));
const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/** inv_freq and attention factor of one layer's rotary embedding at sequence length seqLen (modeling_rope_utils). */
function ropeParams(cfg: Json, scaling: Json | null, theta: number, dim: number, seqLen: number): { inv: Vec; factor: number } {
  const maxPos = cfg.max_position_embeddings as number;
  const base = (b: number) => Array.from({ length: dim / 2 }, (_, i) => 1 / b ** ((2 * i) / dim));
  const type = scaling ? String(scaling.rope_type ?? scaling.type) : "default";
  if (type === "default") return { inv: base(theta), factor: 1 };
  const f = scaling!.factor as number;
  if (type === "linear") return { inv: base(theta).map((v) => v / f), factor: 1 };
  if (type === "dynamic") {
    const b = seqLen > maxPos ? theta * ((f * seqLen) / maxPos - (f - 1)) ** (dim / (dim - 2)) : theta;
    return { inv: base(b), factor: 1 };
  }
  if (type === "llama3") {
    const old = scaling!.original_max_position_embeddings as number;
    const lo = old / (scaling!.low_freq_factor as number);
    const hi = old / (scaling!.high_freq_factor as number);
    return {
      inv: base(theta).map((v) => {
        const wl = (2 * Math.PI) / v;
        if (wl < hi) return v;
        if (wl > lo) return v / f;
        const s = (old / wl - (scaling!.low_freq_factor as number)) / ((scaling!.high_freq_factor as number) - (scaling!.low_freq_factor as number));
        return (1 - s) * (v / f) + s * v;
      }),
      factor: 1,
    };
  }
  if (type === "yarn") {
    const orig = (scaling!.original_max_position_embeddings as number | undefined) ?? maxPos;
    const factor = scaling!.original_max_position_embeddings !== undefined ? maxPos / orig : f;
    const corr = (rot: number) => (dim * Math.log(orig / (rot * 2 * Math.PI))) / (2 * Math.log(theta));
    const low = Math.max(Math.floor(corr(32)), 0);
    let high = Math.min(Math.ceil(corr(1)), dim - 1);
    if (low === high) high += 0.001;
    const inv = base(theta).map((v, i) => {
      const extrap = 1 - Math.min(1, Math.max(0, (i - low) / (high - low)));
      return (v / factor) * (1 - extrap) + v * extrap;
    });
    return { inv, factor: 0.1 * Math.log(factor) + 1 };
  }
  if (type === "longrope" || type === "su") {
    const orig = cfg.original_max_position_embeddings as number;
    const ext = (seqLen > orig ? scaling!.long_factor : scaling!.short_factor) as number[];
    const scale = maxPos / orig;
    return { inv: base(theta).map((v, i) => v / ext[i]!), factor: scale <= 1 ? 1 : Math.sqrt(1 + Math.log(scale) / Math.log(orig)) };
  }
  throw new Error(`reference: rope type ${type}`);
}

/** rotate_half RoPE of the first `dim` entries of a head vector. */
function rotate(x: Vec, p: number, rp: { inv: Vec; factor: number }): Vec {
  const half = rp.inv.length;
  const out = x.slice();
  for (let i = 0; i < half; i++) {
    const c = Math.cos(p * rp.inv[i]!) * rp.factor;
    const s = Math.sin(p * rp.inv[i]!) * rp.factor;
    out[i] = x[i]! * c - x[i + half]! * s;
    out[i + half] = x[i + half]! * c + x[i]! * s;
  }
  return out;
}

/** Logits [T][vocab] of the whole sequence (full causal forward, as transformers' model(ids) computes them). */
export function familyForward64(
  cfg: Json,
  t: Map<string, Raw>,
  ids: readonly number[],
  /** Sees query i's attention probabilities in layer li, head h, over all positions (0 where masked). */
  observe?: (li: number, i: number, h: number, probs: Vec) => void,
): Vec[] {
  const type = cfg.model_type as string;
  const gemma = type === "gemma2" || type === "gemma3_text";
  const d = cfg.hidden_size as number;
  const H = cfg.num_attention_heads as number;
  const Hkv = cfg.num_key_value_heads as number;
  const hd = (cfg.head_dim as number | undefined) ?? d / H;
  const eps = cfg.rms_norm_eps as number;
  const nLayers = cfg.num_hidden_layers as number;
  const T = ids.length;
  const get = (n: string): Raw => {
    const r = t.get(n);
    if (!r) throw new Error(`reference: no tensor ${n}`);
    return r;
  };
  const E = get("model.embed_tokens.weight");
  let xs: Vec[] = ids.map((id) => Array.from(E.data.slice(id * d, (id + 1) * d)).map((v) => (gemma ? v * Math.sqrt(d) : v)));
  const layerTypes = cfg.layer_types as string[] | undefined;
  for (let li = 0; li < nLayers; li++) {
    const p = `model.layers.${li}`;
    // sliding window of this layer (transformers' config classes)
    let window: number | null = null;
    const sw = cfg.sliding_window as number | null | undefined;
    if (sw) {
      if (layerTypes) window = layerTypes[li] === "sliding_attention" ? sw : null;
      else if (type === "gemma2") window = li % 2 === 0 ? sw : null;
      else if (type === "mistral" || type === "phi3") window = sw;
      else if (cfg.use_sliding_window === true) window = li >= (cfg.max_window_layers as number) ? sw : null;
    }
    // rotary embedding of this layer
    const rotDim = Math.floor(hd * ((cfg.partial_rotary_factor as number | undefined) ?? 1));
    let theta = cfg.rope_theta as number;
    let scaling = (cfg.rope_scaling as Json | null | undefined) ?? null;
    if (type === "gemma3_text" && window !== null) {
      theta = cfg.rope_local_base_freq as number;
      scaling = null;
    }
    const noRope = type === "smollm3" && (cfg.no_rope_layers as number[])[li] === 0;
    const rp = noRope ? null : ropeParams(cfg, scaling, theta, rotDim, T);
    const rot = (x: Vec, pos: number) => (rp ? [...rotate(x.slice(0, rotDim), pos, rp), ...x.slice(rotDim)] : x);
    const qkvFused = type === "phi3" ? get(`${p}.self_attn.qkv_proj.weight`) : null;
    const proj = (which: "q" | "k" | "v", x: Vec): Vec => {
      const rows = (which === "q" ? H : Hkv) * hd;
      const start = which === "q" ? 0 : which === "k" ? H * hd : (H + Hkv) * hd;
      const y = qkvFused ? linear(qkvFused, x, start, rows) : linear(get(`${p}.self_attn.${which}_proj.weight`), x);
      return type === "qwen2" ? add(y, Array.from(get(`${p}.self_attn.${which}_proj.bias`).data)) : y;
    };
    const headsOf = (v: Vec, n: number) => Array.from({ length: n }, (_, h) => v.slice(h * hd, (h + 1) * hd));
    const qkNorm = type === "qwen3" || type === "gemma3_text";
    const xn = xs.map((x) => rmsnorm(x, get(`${p}.input_layernorm.weight`), eps, gemma));
    const q = xn.map((x, pos) => headsOf(proj("q", x), H).map((h) => rot(qkNorm ? rmsnorm(h, get(`${p}.self_attn.q_norm.weight`), eps, gemma) : h, pos)));
    const k = xn.map((x, pos) => headsOf(proj("k", x), Hkv).map((h) => rot(qkNorm ? rmsnorm(h, get(`${p}.self_attn.k_norm.weight`), eps, gemma) : h, pos)));
    const v = xn.map((x) => headsOf(proj("v", x), Hkv));
    const scaleQk = gemma ? (cfg.query_pre_attn_scalar as number) ** -0.5 : hd ** -0.5;
    const cap = gemma ? ((cfg.attn_logit_softcapping as number | null | undefined) ?? null) : null;
    xs = xs.map((x, i) => {
      const o = q[i]!.flatMap((qh, h) => {
        const kv = Math.floor(h / (H / Hkv));
        const js = Array.from({ length: i + 1 }, (_, j) => j).filter((j) => window === null || i - j < window);
        let s = js.map((j) => qh.reduce((a, qv, c) => a + qv * k[j]![kv]![c]!, 0) * scaleQk);
        if (cap) s = s.map((z) => cap * Math.tanh(z / cap));
        const m = Math.max(...s);
        const e = s.map((z) => Math.exp(z - m));
        const Z = e.reduce((a, b) => a + b, 0);
        const out = new Array<number>(hd).fill(0);
        js.forEach((j, n) => v[j]![kv]!.forEach((vv, c) => (out[c]! += (e[n]! / Z) * vv)));
        if (observe) {
          const probs = new Array<number>(T).fill(0);
          js.forEach((j, n) => (probs[j] = e[n]! / Z));
          observe(li, i, h, probs);
        }
        return out;
      });
      let a = linear(get(`${p}.self_attn.o_proj.weight`), o);
      if (gemma) a = rmsnorm(a, get(`${p}.post_attention_layernorm.weight`), eps, true);
      const y = add(x, a);
      const yn = rmsnorm(y, get(gemma ? `${p}.pre_feedforward_layernorm.weight` : `${p}.post_attention_layernorm.weight`), eps, gemma);
      const ffn = cfg.intermediate_size as number;
      const gu = type === "phi3" ? get(`${p}.mlp.gate_up_proj.weight`) : null;
      const g = gu ? linear(gu, yn, 0, ffn) : linear(get(`${p}.mlp.gate_proj.weight`), yn);
      const u = gu ? linear(gu, yn, ffn, ffn) : linear(get(`${p}.mlp.up_proj.weight`), yn);
      let f = linear(get(`${p}.mlp.down_proj.weight`), g.map((z, c) => (gemma ? geluTanh(z) : silu(z)) * u[c]!));
      if (gemma) f = rmsnorm(f, get(`${p}.post_feedforward_layernorm.weight`), eps, true);
      return add(y, f);
    });
  }
  const head = cfg.tie_word_embeddings === true ? E : get("lm_head.weight");
  const finalCap = gemma ? ((cfg.final_logit_softcapping as number | null | undefined) ?? null) : null;
  return xs.map((x) => {
    const l = linear(head, rmsnorm(x, get("model.norm.weight"), eps, gemma));
    return finalCap ? l.map((z) => finalCap * Math.tanh(z / finalCap)) : l;
  });
}

/** Per-token NLL of ids[t+1] under logits[t]. */
export function nll64(logits: Vec[], ids: readonly number[]): Vec {
  return logits.slice(0, -1).map((l, t) => {
    const m = Math.max(...l);
    const lse = m + Math.log(l.reduce((a, z) => a + Math.exp(z - m), 0));
    return lse - l[ids[t + 1]!]!;
  });
}
