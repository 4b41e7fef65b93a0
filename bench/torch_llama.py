#!/usr/bin/env python3
"""PyTorch (CPU) counterpart of edgeinfinite's benchmarks: the same Llama weights, the same prefill/decode and the same
EdgeInfinite training step (segments, sink + window, compressed memory, gate, TBPTT over k segments), timed in the
same run as the tfjs numbers. Written from the formulas in docs/edgeinfinite.md; used only by bench/*.ts.

Usage: torch_llama.py MODEL --task backbone|train|matmul [--prefill N] [--decode N] [--threads T] ...
Prints one JSON object.
"""
import argparse, json, os, struct, sys, time

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        dt = {"F32": np.float32, "F16": np.float16, "BF16": None}[info["dtype"]]
        raw = data[a:b]
        if dt is None:
            arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=dt).astype(np.float32)
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out


def load_hf(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    tensors = {}
    idx = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["model.safetensors"]
    for f in files:
        tensors.update(read_safetensors(os.path.join(d, f)))
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    c = dict(d=cfg["hidden_size"], L=cfg["num_hidden_layers"], H=H, Hkv=Hkv, hd=cfg.get("head_dim") or cfg["hidden_size"] // H,
             theta=cfg.get("rope_theta", 10000.0), eps=cfg.get("rms_norm_eps", 1e-5), vocab=cfg["vocab_size"], ctx=cfg["max_position_embeddings"])
    layers = []
    for i in range(c["L"]):
        p = f"model.layers.{i}."
        layers.append(dict(an=tensors[p + "input_layernorm.weight"], wq=tensors[p + "self_attn.q_proj.weight"], wk=tensors[p + "self_attn.k_proj.weight"],
                           wv=tensors[p + "self_attn.v_proj.weight"], wo=tensors[p + "self_attn.o_proj.weight"], fn=tensors[p + "post_attention_layernorm.weight"],
                           wg=tensors[p + "mlp.gate_proj.weight"], wu=tensors[p + "mlp.up_proj.weight"], wd=tensors[p + "mlp.down_proj.weight"]))
    emb = tensors["model.embed_tokens.weight"]
    return c, dict(emb=emb, layers=layers, norm=tensors["model.norm.weight"], head=tensors.get("lm_head.weight", emb))


def load_llama2c(path):
    raw = open(path, "rb").read()
    dim, hidden, L, H, Hkv, vocab, ctx = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    hd = dim // H
    a = np.frombuffer(raw, dtype=np.float32, offset=28)
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        t = torch.from_numpy(a[pos:pos + n].reshape(shape).copy())
        pos += n
        return t

    emb = take(vocab, dim)
    an = take(L, dim); wq = take(L, H * hd, dim); wk = take(L, Hkv * hd, dim); wv = take(L, Hkv * hd, dim); wo = take(L, dim, H * hd)
    fn = take(L, dim); w1 = take(L, hidden, dim); w2 = take(L, dim, hidden); w3 = take(L, hidden, dim); norm = take(dim)
    take(ctx * hd // 2); take(ctx * hd // 2)
    head = take(vocab, dim) if not shared else emb

    def perm(w, heads):  # interleaved RoPE pairs -> half-split (as edgeinfinite's loader)
        w = w.view(heads, hd // 2, 2, dim)
        return w.transpose(1, 2).reshape(heads * hd, dim)

    layers = [dict(an=an[i], wq=perm(wq[i], H), wk=perm(wk[i], Hkv), wv=wv[i], wo=wo[i], fn=fn[i], wg=w1[i], wu=w3[i], wd=w2[i]) for i in range(L)]
    c = dict(d=dim, L=L, H=H, Hkv=Hkv, hd=hd, theta=10000.0, eps=1e-5, vocab=vocab, ctx=ctx)
    return c, dict(emb=emb, layers=layers, norm=norm, head=head)


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


class Rope:
    def __init__(self, c):
        self.inv = 1.0 / (c["theta"] ** (torch.arange(0, c["hd"], 2, dtype=torch.float64) / c["hd"]))

    def __call__(self, x, positions):  # x [heads, T, hd]
        ang = positions.to(torch.float64)[:, None] * self.inv[None, :]
        cos, sin = torch.cos(ang).float(), torch.sin(ang).float()
        h = x.shape[-1] // 2
        x1, x2 = x[..., :h], x[..., h:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def attention(q, k, v, past):  # q [H,T,hd], k/v [Hkv,S,hd]
    H, T, hd = q.shape
    Hkv, S, _ = k.shape
    g = H // Hkv
    qg = q.reshape(Hkv, g * T, hd)
    s = qg @ k.transpose(1, 2) / hd ** 0.5
    s = s.view(Hkv, g, T, S)
    mask = torch.arange(S)[None, :] > (past + torch.arange(T))[:, None]
    s = s.masked_fill(mask, float("-inf"))
    p = torch.softmax(s, -1).view(Hkv, g * T, S)
    return (p @ v).view(H, T, hd).transpose(0, 1).reshape(T, H * hd)


class Model:
    def __init__(self, c, w):
        self.c, self.w, self.rope = c, w, Rope(c)

    def heads(self, x, W, n):
        return (x @ W.T).view(x.shape[0], n, self.c["hd"]).transpose(0, 1)

    def layer(self, i, x, attend):
        L = self.w["layers"][i]
        c = self.c
        xn = rms(x, L["an"], c["eps"])
        out = attend(i, self.heads(xn, L["wq"], c["H"]), self.heads(xn, L["wk"], c["Hkv"]), self.heads(xn, L["wv"], c["Hkv"]))
        x = x + out @ L["wo"].T
        h = rms(x, L["fn"], c["eps"])
        return x + (F.silu(h @ L["wg"].T) * (h @ L["wu"].T)) @ L["wd"].T

    def run(self, ids, attend):
        x = self.w["emb"][torch.tensor(ids)]
        for i in range(self.c["L"]):
            x = self.layer(i, x, attend)
        return rms(x, self.w["norm"], self.c["eps"])

    def logits(self, h):
        return h @ self.w["head"].T


def bench_backbone(m, prefill, decode):
    cache = [[None, None] for _ in range(m.c["L"])]
    seen = [0]

    def attend(i, q, k, v):
        n = seen[0]
        T = q.shape[1]
        pos = torch.arange(n, n + T)
        k = m.rope(k, pos)
        K = k if cache[i][0] is None else torch.cat([cache[i][0], k], 1)
        V = v if cache[i][1] is None else torch.cat([cache[i][1], v], 1)
        cache[i] = [K, V]
        return attention(m.rope(q, pos), K, V, K.shape[1] - T)

    ids = [(7 * i + 3) % m.c["vocab"] for i in range(prefill)]
    with torch.no_grad():
        t0 = time.perf_counter()
        h = m.run(ids, attend)
        tok = int(m.logits(h[-1:]).argmax())
        ttft = time.perf_counter() - t0
        seen[0] += prefill
        t1 = time.perf_counter()
        for _ in range(decode):
            h = m.run([tok], attend)
            seen[0] += 1
            tok = int(m.logits(h).argmax())
        dec = time.perf_counter() - t1
    return dict(prefill_tokens=prefill, ttft_ms=ttft * 1000, prefill_tok_s=prefill / ttft, decode_tok_s=decode / dec)


def sigma(x):
    return F.elu(x) + 1


def bench_train(m, seq, seg, sink, window, k, steps, batch=1):
    """One optimiser step = `batch` sequences, one after another (gradients accumulated, loss = mean over them), as
    edgeinfinite's train step with gradAccumulation; warm-up is a one-sequence step."""
    c = m.c
    H, Hkv, hd, L = c["H"], c["Hkv"], c["hd"], c["L"]
    eye = torch.eye(hd)
    params = []
    mod = []
    for _ in range(L):
        p = dict(qm=eye.repeat(H, 1, 1).clone().requires_grad_(), km=eye.repeat(Hkv, 1, 1).clone().requires_grad_(),
                 vm=eye.repeat(Hkv, 1, 1).clone().requires_grad_(), gb=torch.full((H,), -6.0, requires_grad=True))
        mod.append(p)
        params += list(p.values())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)

    def step(n):
        opt.zero_grad()
        for b in range(n):
            sequence(b, n)
        opt.step()

    def sequence(b, n):
        ids = [(11 * i + 5 + 97 * b) % c["vocab"] for i in range(seq + 1)]
        state = [dict(sk=None, sv=None, wk=None, wv=None, M=torch.zeros(Hkv, hd, hd), z=torch.zeros(Hkv, hd), ns=0, nw=0) for _ in range(L)]
        segs = [ids[i:i + seg] for i in range(0, seq, seg)]
        for b0 in range(0, len(segs), k):
            for s in state:
                for key in ("sk", "sv", "wk", "wv", "M", "z"):
                    if s[key] is not None:
                        s[key] = s[key].detach()
            loss = 0.0
            for si in range(b0, min(b0 + k, len(segs))):
                sg = segs[si]

                def attend(i, q, kk, vv):
                    st, p = state[i], mod[i]
                    T = q.shape[1]
                    parts_k = [t for t in (st["sk"], st["wk"]) if t is not None] + [kk]
                    parts_v = [t for t in (st["sv"], st["wv"]) if t is not None] + [vv]
                    K, V = torch.cat(parts_k, 1), torch.cat(parts_v, 1)
                    S = K.shape[1]
                    local = attention(m.rope(q, torch.arange(S - T, S)), m.rope(K, torch.arange(S)), V, S - T).view(T, H, hd).transpose(0, 1)
                    sq = sigma(q @ p["qm"]).reshape(Hkv, -1, hd)
                    amem = ((sq @ st["M"]) / (sq @ st["z"][:, :, None] + 1e-6)).reshape(H, T, hd)
                    g = torch.sigmoid(p["gb"]).view(H, 1, 1)
                    out = local + g * (amem - local)
                    to_sink = min(sink - st["ns"], T)
                    if to_sink > 0:
                        st["sk"] = kk[:, :to_sink] if st["sk"] is None else torch.cat([st["sk"], kk[:, :to_sink]], 1)
                        st["sv"] = vv[:, :to_sink] if st["sv"] is None else torch.cat([st["sv"], vv[:, :to_sink]], 1)
                        st["ns"] += to_sink
                    if T - to_sink > 0:
                        st["wk"] = kk[:, to_sink:] if st["wk"] is None else torch.cat([st["wk"], kk[:, to_sink:]], 1)
                        st["wv"] = vv[:, to_sink:] if st["wv"] is None else torch.cat([st["wv"], vv[:, to_sink:]], 1)
                        over = st["wk"].shape[1] - window
                        if over > 0:
                            sk = sigma(st["wk"][:, :over] @ p["km"])
                            st["M"] = st["M"] + sk.transpose(1, 2) @ (st["wv"][:, :over] @ p["vm"])
                            st["z"] = st["z"] + sk.sum(1)
                            st["wk"], st["wv"] = st["wk"][:, over:], st["wv"][:, over:]
                    return out.transpose(0, 1).reshape(T, H * hd)

                h = m.run(sg, attend)
                tgt = torch.tensor(ids[si * seg + 1: si * seg + 1 + len(sg)])
                loss = loss + F.cross_entropy(m.logits(h), tgt, reduction="sum") / (seq * n)
            loss.backward()

    step(1)  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step(batch)
    dt = (time.perf_counter() - t0) / steps
    return dict(step_s=dt, train_tok_s=seq * batch / dt, batch=batch)


def bench_matmul(n=512, repeats=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t0)
    return dict(matmul_gflops=2 * n ** 3 / sorted(ts)[len(ts) // 2] / 1e9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--task", choices=["backbone", "train", "matmul"], required=True)
    ap.add_argument("--prefill", type=int, default=512)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--segment", type=int, default=128)
    ap.add_argument("--sink", type=int, default=4)
    ap.add_argument("--window", type=int, default=252)
    ap.add_argument("--tbptt", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1, help="sequences per optimiser step (accumulated)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = dict(torch=torch.__version__, threads=a.threads)
    if a.task == "matmul":
        out.update(bench_matmul())
    else:
        c, w = load_hf(a.model) if os.path.isdir(a.model) else load_llama2c(a.model)
        m = Model(c, w)
        if a.task == "backbone":
            out.update(bench_backbone(m, a.prefill, a.decode))
        else:
            out.update(bench_train(m, a.seq, a.segment, a.sink, a.window, a.tbptt, a.steps, a.batch))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
