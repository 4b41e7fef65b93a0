#!/usr/bin/env python3
"""PyTorch (eager) counterpart of edgeinfinite's benchmarks: the same Llama weights, the same prefill/decode and the
same EdgeInfinite training step (segments, sink + window, compressed memory, gate, TBPTT over k segments), timed in the
same run as the tfjs numbers. Written from the formulas in docs/edgeinfinite.md; used only by bench/*.ts.
Every tensor has a batch dimension: a training step of --batch B sequences is one batched forward/backward per TBPTT
block, as edgeinfinite's sequenceGradientsBatch (training.batchSize = B).

Usage: torch_llama.py MODEL --task backbone|train|matmul [--prefill N] [--decode N] [--threads T] [--device cpu|cuda] ...
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


def sync(device):
    """Waits for the device's queued work (CUDA runs asynchronously): every timing ends with it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Rope:
    """Half-split RoPE; cos/sin tables computed in float64 on the CPU once (grown when a position is past them)."""

    def __init__(self, c, device):
        self.inv = 1.0 / (c["theta"] ** (torch.arange(0, c["hd"], 2, dtype=torch.float64) / c["hd"]))
        self.device = device
        self.n = 0
        self.grow(c["ctx"])

    def grow(self, n):
        ang = torch.arange(n, dtype=torch.float64)[:, None] * self.inv[None, :]
        self.cos, self.sin = torch.cos(ang).float().to(self.device), torch.sin(ang).float().to(self.device)
        self.n = n

    def __call__(self, x, start, end):  # x [..., T, hd], positions start..end-1
        if end > self.n:
            self.grow(max(end, 2 * self.n))
        cos, sin = self.cos[start:end], self.sin[start:end]
        h = x.shape[-1] // 2
        x1, x2 = x[..., :h], x[..., h:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def attention(q, k, v, past):  # q [B,H,T,hd], k/v [B,Hkv,S,hd] → [B,T,H·hd]
    B, H, T, hd = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    g = H // Hkv
    qg = q.reshape(B, Hkv, g * T, hd)
    s = qg @ k.transpose(-1, -2) / hd ** 0.5
    s = s.view(B, Hkv, g, T, S)
    mask = torch.arange(S, device=q.device)[None, :] > (past + torch.arange(T, device=q.device))[:, None]
    s = s.masked_fill(mask, float("-inf"))
    p = torch.softmax(s, -1).view(B, Hkv, g * T, S)
    return (p @ v).view(B, H, T, hd).transpose(1, 2).reshape(B, T, H * hd)


class Model:
    def __init__(self, c, w, device):
        self.c, self.device, self.rope = c, device, Rope(c, device)
        mv = lambda t: t.to(device)
        self.w = dict(emb=mv(w["emb"]), norm=mv(w["norm"]), head=mv(w["head"]), layers=[{k: mv(v) for k, v in L.items()} for L in w["layers"]])

    def heads(self, x, W, n):  # x [B,T,d] → [B,n,T,hd]
        return (x @ W.T).view(x.shape[0], x.shape[1], n, self.c["hd"]).transpose(1, 2)

    def layer(self, i, x, attend):
        L = self.w["layers"][i]
        c = self.c
        xn = rms(x, L["an"], c["eps"])
        out = attend(i, self.heads(xn, L["wq"], c["H"]), self.heads(xn, L["wk"], c["Hkv"]), self.heads(xn, L["wv"], c["Hkv"]))
        x = x + out @ L["wo"].T
        h = rms(x, L["fn"], c["eps"])
        return x + (F.silu(h @ L["wg"].T) * (h @ L["wu"].T)) @ L["wd"].T

    def run(self, ids, attend):  # ids: LongTensor [B,T] on the device
        x = self.w["emb"][ids]
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
        T = q.shape[2]
        k = m.rope(k, n, n + T)
        K = k if cache[i][0] is None else torch.cat([cache[i][0], k], 2)
        V = v if cache[i][1] is None else torch.cat([cache[i][1], v], 2)
        cache[i] = [K, V]
        return attention(m.rope(q, n, n + T), K, V, K.shape[2] - T)

    ids = torch.tensor([[(7 * i + 3) % m.c["vocab"] for i in range(prefill)]], device=m.device)
    with torch.no_grad():
        t0 = time.perf_counter()
        h = m.run(ids, attend)
        tok = int(m.logits(h[0, -1:]).argmax())
        ttft = time.perf_counter() - t0
        seen[0] += prefill
        t1 = time.perf_counter()
        for _ in range(decode):
            h = m.run(torch.tensor([[tok]], device=m.device), attend)
            seen[0] += 1
            tok = int(m.logits(h[0]).argmax())
        dec = time.perf_counter() - t1
    return dict(prefill_tokens=prefill, ttft_ms=ttft * 1000, prefill_tok_s=prefill / ttft, decode_tok_s=decode / dec)


def sigma(x):
    return F.elu(x) + 1


def bench_train(m, seq, seg, sink, window, k, steps, batch=1):
    """One optimiser step = `batch` sequences in one batched forward/backward per TBPTT block (loss = Σ over the
    sequences of each one's mean NLL, ÷ batch), then AdamW: edgeinfinite's train step with training.batchSize = batch.
    The untimed warm-up is one step of the same batch."""
    c, dev = m.c, m.device
    H, Hkv, hd, L = c["H"], c["Hkv"], c["hd"], c["L"]
    g_ = H // Hkv
    eye = torch.eye(hd, device=dev)
    params = []
    mod = []
    for _ in range(L):
        p = dict(qm=eye.repeat(H, 1, 1).clone().requires_grad_(), km=eye.repeat(Hkv, 1, 1).clone().requires_grad_(),
                 vm=eye.repeat(Hkv, 1, 1).clone().requires_grad_(), gb=torch.full((H,), -6.0, device=dev, requires_grad=True))
        mod.append(p)
        params += list(p.values())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    # Sequence b: the ids bench/train.ts trains on.
    ids = torch.tensor([[(11 * i + 5 + 97 * b) % c["vocab"] for i in range(seq + 1)] for b in range(batch)], device=dev)

    def step():
        opt.zero_grad()
        total = torch.zeros((), device=dev)
        state = [dict(sk=None, sv=None, wk=None, wv=None, M=torch.zeros(batch, Hkv, hd, hd, device=dev),
                      z=torch.zeros(batch, Hkv, hd, device=dev), ns=0) for _ in range(L)]
        starts = list(range(0, seq, seg))
        for b0 in range(0, len(starts), k):
            for s in state:
                for key in ("sk", "sv", "wk", "wv", "M", "z"):
                    if s[key] is not None:
                        s[key] = s[key].detach()
            loss = torch.zeros((), device=dev)
            for s0 in starts[b0:b0 + k]:
                T = min(seg, seq - s0)

                def attend(i, q, kk, vv):  # q [B,H,T,hd], kk/vv [B,Hkv,T,hd]
                    st, p = state[i], mod[i]
                    parts_k = [t for t in (st["sk"], st["wk"]) if t is not None] + [kk]
                    parts_v = [t for t in (st["sv"], st["wv"]) if t is not None] + [vv]
                    K, V = torch.cat(parts_k, 2), torch.cat(parts_v, 2)
                    S = K.shape[2]
                    local = attention(m.rope(q, S - T, S), m.rope(K, 0, S), V, S - T).view(batch, T, H, hd).transpose(1, 2)
                    sq = sigma(q @ p["qm"]).reshape(batch, Hkv, g_ * T, hd)
                    amem = ((sq @ st["M"]) / (sq @ st["z"][..., None] + 1e-6)).reshape(batch, H, T, hd)
                    g = torch.sigmoid(p["gb"]).view(1, H, 1, 1)
                    out = local + g * (amem - local)
                    to_sink = min(sink - st["ns"], T)
                    if to_sink > 0:
                        st["sk"] = kk[:, :, :to_sink] if st["sk"] is None else torch.cat([st["sk"], kk[:, :, :to_sink]], 2)
                        st["sv"] = vv[:, :, :to_sink] if st["sv"] is None else torch.cat([st["sv"], vv[:, :, :to_sink]], 2)
                        st["ns"] += to_sink
                    if T - to_sink > 0:
                        st["wk"] = kk[:, :, to_sink:] if st["wk"] is None else torch.cat([st["wk"], kk[:, :, to_sink:]], 2)
                        st["wv"] = vv[:, :, to_sink:] if st["wv"] is None else torch.cat([st["wv"], vv[:, :, to_sink:]], 2)
                        over = st["wk"].shape[2] - window
                        if over > 0:
                            sk = sigma(st["wk"][:, :, :over] @ p["km"])
                            st["M"] = st["M"] + sk.transpose(-1, -2) @ (st["wv"][:, :, :over] @ p["vm"])
                            st["z"] = st["z"] + sk.sum(2)
                            st["wk"], st["wv"] = st["wk"][:, :, over:], st["wv"][:, :, over:]
                    return out.transpose(1, 2).reshape(batch, T, H * hd)

                h = m.run(ids[:, s0:s0 + T], attend)
                logits = m.logits(h)
                nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, s0 + 1:s0 + 1 + T].reshape(-1), reduction="sum")
                loss = loss + nll / (seq * batch)
            loss.backward()
            total = total + loss.detach()
        opt.step()
        return total

    first = float(step())  # warm-up (the same batch: kernels and allocator see every shape)
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        last = step()
    sync(dev)
    dt = (time.perf_counter() - t0) / steps
    return dict(step_s=dt, train_tok_s=seq * batch / dt, batch=batch, first_loss=first, loss=float(last))


def bench_matmul(device, n=512, repeats=5):
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    ts = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        ts.append(time.perf_counter() - t0)
    return dict(matmul_gflops=2 * n ** 3 / sorted(ts)[len(ts) // 2] / 1e9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--task", choices=["backbone", "train", "matmul"], required=True)
    ap.add_argument("--prefill", type=int, default=512)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (PyTorch eager either way)")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--segment", type=int, default=128)
    ap.add_argument("--sink", type=int, default=4)
    ap.add_argument("--window", type=int, default=252)
    ap.add_argument("--tbptt", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1, help="sequences per optimiser step, in one batched forward")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device {a.device}: torch {torch.__version__} sees no CUDA device")
    out = dict(torch=torch.__version__, threads=a.threads, device=str(device))
    if device.type == "cuda":
        out["device_name"] = torch.cuda.get_device_name(device)
        out["cuda"] = torch.version.cuda
    if a.task == "matmul":
        out.update(bench_matmul(device))
    else:
        c, w = load_hf(a.model) if os.path.isdir(a.model) else load_llama2c(a.model)
        m = Model(c, w, device)
        if a.task == "backbone":
            out.update(bench_backbone(m, a.prefill, a.decode))
        else:
            out.update(bench_train(m, a.seq, a.segment, a.sink, a.window, a.tbptt, a.steps, a.batch))
        if device.type == "cuda":
            out["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    print(json.dumps(out))


if __name__ == "__main__":
    main()
