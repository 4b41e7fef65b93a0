#!/usr/bin/env python3
"""Tiny checkpoints of every model family edgeinfinite loads, made by Hugging Face transformers itself.

For each family: a config from transformers' own config class (hidden 48, 2 layers, vocab 304), weights with every
1-D tensor (norm weights, biases) randomised away from its init so conventions such as Gemma's (1 + w) show, saved
with save_pretrained in fp32, fp16 and bf16; a byte-level BPE tokenizer.json trained here; and references from
transformers' fp32 eager forward of each saved file (read back as fp32): per-token NLL, last-position logits, a
greedy continuation by full re-forward and one by generate() with its KV cache, and the tokenizer's ids for a text.

Run where transformers and torch are installed:  OUT=/tmp/out python3 scripts/make-family-fixtures.py
Writes $OUT/families.tar.gz (unpack into test/fixtures/families/) and $OUT/log.txt.
"""
import copy
import json
import os
import shutil
import sys
import tarfile
import traceback

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

OUT = os.environ.get("OUT", "out")
WORK = os.path.join(OUT, "families")
LOG = []

TEXT = (
    "Once upon a time there was a little robot who lived in a quiet town by the sea. Every morning it walked to "
    "the harbour, counted the boats, and wrote their names in a small blue book. The fishermen laughed at first, "
    "but soon they asked the robot which boats had come home and which were still out at sea."
)
PROMPT = "The robot walked to the"
SPECIALS = ["<pad>", "<s>", "</s>", "<eot>"]  # ids 0..3
VOCAB = 304  # tokenizer has at most 300 entries; the model pads its vocabulary like real checkpoints do


def log(msg):
    print(msg, flush=True)
    LOG.append(msg)


def train_tokenizer():
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([TEXT, PROMPT, TEXT.lower()], trainer=trainer)
    return tok


def save_tokenizer(base, dest, bos, eos, add_bos):
    tok = Tokenizer.from_str(base.to_str())
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token="<pad>")
    fast.save_pretrained(dest)
    return fast


def randomise(model, seed, norm_offset):
    """Every 1-D parameter (norm weights, biases) moved away from its init; matrices keep transformers' init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                noise = torch.randn(p.shape, generator=g) * 0.3
                if "norm" in name or "layernorm" in name:
                    p.copy_(noise + norm_offset)
                else:
                    p.copy_(noise)


BASE = dict(vocab_size=VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=128, initializer_range=0.1, bos_token_id=1, eos_token_id=2, pad_token_id=0)

# name: (model_type, config overrides, norm offset (1 for x·w norms, 0 for Gemma's x·(1 + w)), bos, eos tokens, add_bos, generation eos ids)
FAMILIES = {
    "llama": ("llama", dict(tie_word_embeddings=True, rope_theta=10000.0), 1.0, "<s>", "</s>", True, None),
    "llama3": ("llama", dict(tie_word_embeddings=True, rope_theta=500000.0, eos_token_id=[2, 3],
                             rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=16)),
               1.0, "<s>", "</s>", True, [2, 3]),
    "llama-yarn": ("llama", dict(rope_theta=10000.0, rope_scaling=dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=32)), 1.0, "<s>", "</s>", True, None),
    "llama-dynamic": ("llama", dict(rope_theta=10000.0, max_position_embeddings=32, rope_scaling=dict(rope_type="dynamic", factor=2.0)), 1.0, "<s>", "</s>", True, None),
    "mistral-sliding": ("mistral", dict(sliding_window=6, rope_theta=10000.0), 1.0, "<s>", "</s>", True, None),
    "qwen2": ("qwen2", dict(tie_word_embeddings=True, rope_theta=1000000.0, use_sliding_window=False, eos_token_id=3), 1.0, None, "<eot>", False, [3, 2]),
    "qwen2-sliding": ("qwen2", dict(rope_theta=10000.0, use_sliding_window=True, sliding_window=6, max_window_layers=1, eos_token_id=3), 1.0, None, "<eot>", False, [3, 2]),
    "qwen3": ("qwen3", dict(tie_word_embeddings=True, head_dim=16, rope_theta=1000000.0, eos_token_id=3), 1.0, None, "<eot>", False, [3, 2]),
    "phi3": ("phi3", dict(partial_rotary_factor=0.5, rope_theta=10000.0, original_max_position_embeddings=64, sliding_window=None,
                          rope_scaling=dict(type="longrope", short_factor=[1.0 + 0.2 * i for i in range(3)], long_factor=[1.0 + 2.0 * i for i in range(3)]),
                          eos_token_id=3), 1.0, "<s>", "<eot>", False, [3, 2]),
    "gemma2": ("gemma2", dict(head_dim=16, query_pre_attn_scalar=20, sliding_window=6, attn_logit_softcapping=3.0, final_logit_softcapping=2.0,
                              hidden_activation="gelu_pytorch_tanh", rope_theta=10000.0, eos_token_id=[2, 3]), 0.0, "<s>", "</s>", True, [2, 3]),
    "gemma3": ("gemma3_text", dict(head_dim=16, query_pre_attn_scalar=20, sliding_window=6, rope_theta=1000000.0, rope_local_base_freq=10000.0,
                                   layer_types=["sliding_attention", "full_attention"], sliding_window_pattern=2, rope_scaling=dict(rope_type="linear", factor=2.0),
                                   hidden_activation="gelu_pytorch_tanh", eos_token_id=[2, 3]), 0.0, "<s>", "</s>", True, [2, 3]),
    "smollm3": ("smollm3", dict(tie_word_embeddings=True, rope_theta=10000.0, no_rope_layers=[1, 0], use_sliding_window=False, eos_token_id=3), 1.0, "<s>", "<eot>", False, [3]),
}


ROPE_VARIANTS = {"llama-yarn", "llama-dynamic", "qwen2-sliding", "llama"}


def nll_and_logits(model, ids):
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    nll = [-logp[t, ids[t + 1]].item() for t in range(len(ids) - 1)]
    return nll, logits[-1].tolist()


def greedy_full(model, ids, n):
    ids = list(ids)
    out = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(torch.tensor([ids])).logits[0, -1].argmax())
            out.append(nxt)
            ids.append(nxt)
    return out


def greedy_generate(model, ids, n):
    """generate() with its KV cache and no EOS stop, so it is comparable with greedy_full."""
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = None
    try:
        with torch.no_grad():
            gen = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, pad_token_id=0)
    finally:
        model.generation_config.eos_token_id = saved
    return gen[0, len(ids):].tolist()


def load_fp32(d):
    try:
        return AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    except TypeError:
        return AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager").eval()


def make_family(name, spec, base_tok, seed):
    model_type, overrides, norm_offset, bos, eos, add_bos, gen_eos = spec
    dest = os.path.join(WORK, name)
    os.makedirs(dest, exist_ok=True)
    kw = dict(BASE)
    kw.update(overrides)
    config = AutoConfig.for_model(model_type, **kw)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").float().eval()
    randomise(model, seed, norm_offset)
    if gen_eos is not None:
        model.generation_config.eos_token_id = gen_eos
    fp32 = os.path.join(dest, "fp32")
    model.save_pretrained(fp32, safe_serialization=True)
    fast = save_tokenizer(base_tok, fp32, bos, eos, add_bos)
    refs = {"family": name, "model_type": model_type, "transformers": transformers.__version__, "torch": torch.__version__,
            "text": TEXT, "prompt": PROMPT, "dtypes": {}}
    refs["text_ids_transformers"] = fast(TEXT)["input_ids"]
    refs["prompt_ids_transformers"] = fast(PROMPT)["input_ids"]
    ids = refs["text_ids_transformers"][:40]
    prompt = refs["prompt_ids_transformers"]
    g = torch.Generator().manual_seed(seed + 1)
    long_ids = [int(x) for x in torch.randint(4, 300, (80,), generator=g)]
    refs["ids"] = ids
    refs["long_ids"] = long_ids
    dtypes = (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16))
    if name in ROPE_VARIANTS:  # these check RoPE only; the dtype files of the main families check fp16/bf16 loading
        dtypes = dtypes[:1]
    for dtype_name, dtype in dtypes:
        d = os.path.join(dest, dtype_name)
        if dtype_name != "fp32":
            # the fp16/bf16 folders keep only weights and config; tests read the fp32 folder's tokenizer files
            copy.deepcopy(model).to(dtype).save_pretrained(d, safe_serialization=True)
        m = load_fp32(d)
        nll, last = nll_and_logits(m, ids)
        lnll, llast = nll_and_logits(m, long_ids)
        entry = {"nll": nll, "last_logits": last, "long_nll": lnll, "long_last_logits": llast, "greedy_full": greedy_full(m, prompt, 8)}
        try:
            entry["greedy_generate"] = greedy_generate(m, prompt, 8)
        except Exception as e:  # noqa: BLE001 - recorded, not fatal
            entry["greedy_generate_error"] = str(e).split("\n")[0]
        refs["dtypes"][dtype_name] = entry
        if dtype_name != "fp32":
            for f in os.listdir(d):
                if f not in ("model.safetensors", "config.json"):
                    os.remove(os.path.join(d, f))
    with open(os.path.join(dest, "reference.json"), "w") as f:
        json.dump(refs, f)
    log(f"ok {name}: {len(ids)} ids, nll[0]={refs['dtypes']['fp32']['nll'][0]:.5f}, greedy={refs['dtypes']['fp32']['greedy_full']}")


def main():
    os.makedirs(WORK, exist_ok=True)
    log(f"transformers {transformers.__version__} torch {torch.__version__} python {sys.version.split()[0]}")
    torch.set_grad_enabled(False)
    base_tok = train_tokenizer()
    only = sys.argv[1:]
    for i, (name, spec) in enumerate(FAMILIES.items()):
        if only and name not in only:
            continue
        try:
            make_family(name, spec, base_tok, 1000 + i)
        except Exception:  # noqa: BLE001 - one family failing must not lose the others
            log(f"FAILED {name}:\n{traceback.format_exc()}")
            shutil.rmtree(os.path.join(WORK, name), ignore_errors=True)
    with open(os.path.join(OUT, "log.txt"), "w") as f:
        f.write("\n".join(LOG) + "\n")
    with tarfile.open(os.path.join(OUT, "families.tar.gz"), "w:gz") as tar:
        tar.add(WORK, arcname="families")
    shutil.rmtree(WORK)


if __name__ == "__main__":
    main()
