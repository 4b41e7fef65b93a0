#!/usr/bin/env python3
"""Greedy answers of Hugging Face transformers (fp32) to the prompts of scripts/eval-prompts.mjs: the independent
reference for what a backbone answers with full attention, to hold edgeinfinite's full-KV rows against.

    node scripts/eval-prompts.mjs eval/SUITE.yaml prompts.json [--limit N]
    python3 scripts/hf_greedy.py MODEL_DIR prompts.json OUT.json [--attn eager|sdpa]

For each prompt: generate() with do_sample=False, max_new_tokens from the prompt row, no early stop (every row gets
its whole budget; edgeinfinite cuts at its stop ids, so its ids are a prefix of these), TF32 off. OUT.json: the
versions and device it ran on, the suite and limit the prompts came from, then [{sampleId, promptSha256, outputIds,
text}] (promptSha256: of the ids as JSON.stringify writes them; text: transformers' own decode, special tokens
skipped). Made test/fixtures/hf-greedy/edge-lm-2048.json (test/hf-greedy.test.ts).
"""
import argparse
import hashlib
import json
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("prompts")
    ap.add_argument("out")
    ap.add_argument("--attn", default="eager", choices=["eager", "sdpa"])
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation=a.attn).to(dev).eval()
    tok = AutoTokenizer.from_pretrained(a.model)
    rows = []
    t0 = time.time()
    given = json.load(open(a.prompts))
    for p in given["prompts"]:
        ids = torch.tensor([p["promptIds"]], device=dev)
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=p["maxNewTokens"],
                                 do_sample=False, eos_token_id=None, pad_token_id=tok.pad_token_id)
        new = out[0, ids.shape[1]:].tolist()
        sha = hashlib.sha256(json.dumps(p["promptIds"], separators=(",", ":")).encode()).hexdigest()
        rows.append(dict(sampleId=p["sampleId"], promptSha256=sha, outputIds=new, text=tok.decode(new, skip_special_tokens=True)))
    made = dict(transformers=transformers.__version__, torch=torch.__version__, attn=a.attn, dtype="float32",
                device=torch.cuda.get_device_name(0) if dev == "cuda" else "cpu")
    json.dump(dict(madeBy=made, suite=given["suite"], limit=given["limit"], rows=rows), open(a.out, "w"), indent=1)
    print(f"{len(rows)} prompts in {time.time() - t0:.1f} s → {a.out} ({made})")


if __name__ == "__main__":
    main()
