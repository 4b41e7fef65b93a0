#!/usr/bin/env python3
"""Fixtures for InfiniteBench's generated tasks (test/infinitebench-official.test.ts).

Runs InfiniteBench's own code, taken unmodified with `ast` from OpenBMB/InfiniteBench (its modules
import HF `evaluate`, jieba, jsonlines and argument parsing at import time):
  - data/construct_synthetic_dataset.py build_passkey / build_number_string / build_kv_retrieval,
    with `random` drawing from a seeded generator (kv_retrieval: recording its shuffle as a
    permutation) and `jsonlines` captured in memory; a few records of each are kept;
  - src/eval_utils.py create_prompt with src/prompt.py's templates for every model;
  - src/compute_scores.py get_score_one_{passkey,number_string,kv_retrieval} on generated predictions.
Nothing is fetched; the official code is not committed.

    # IB_DIR holds src/compute_scores.py, src/eval_utils.py, src/prompt.py and
    # data/construct_synthetic_dataset.py (OpenBMB/InfiniteBench)
    python3 scripts/make-infinitebench-fixtures.py IB_DIR
"""
import json
import os
import random as real_random
import re
import string
import sys
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import infinitebench_official as official  # noqa: E402

if len(sys.argv) != 2:
    sys.exit("usage: make-infinitebench-fixtures.py IB_DIR")
IB = os.path.abspath(sys.argv[1])
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "infinitebench-official")


def functions(path):
    return official.functions(IB, path)


prompt = official.prompt_module(IB)
MODEL_TO_PROMPT_TEMPLATE = {"gpt4": prompt.gpt4_templates, "claude2": prompt.claude2_templates,
                            "kimi": prompt.kimi_templates, "yarn-mistral": prompt.yarn_mistral_templates}

SEED = 20261205
rng = real_random.Random(SEED)


class SeededRandom:
    def __init__(self):
        self.shuffles = []

    def randint(self, a, b):
        return rng.randint(a, b)

    def shuffle(self, items):
        permutation = list(range(len(items)))
        rng.shuffle(permutation)
        items[:] = [items[i] for i in permutation]
        self.shuffles.append(permutation)


written = {}


class Writer:
    def __init__(self, name):
        self.name = name

    def write_all(self, rows):
        written[self.name] = list(rows)

    def close(self):
        pass


KV_KEYS = [["%08x-%04x" % (rng.getrandbits(32), rng.getrandbits(16)), "%08x-%04x" % (rng.getrandbits(32), rng.getrandbits(16))] for _ in range(2600)]


class KvReader:
    """kv-retrieval-3000_keys.jsonl stand-in: three lines of 2600 generated key/value pairs."""

    def __init__(self, *args):
        self.lines = [{"ordered_kv_records": [list(kv) for kv in KV_KEYS]} for _ in range(3)]

    def __enter__(self):
        return iter(self.lines)

    def __exit__(self, *args):
        return False


jsonlines = SimpleNamespace(open=lambda name, mode="r": Writer(name) if mode == "w" else KvReader())
random = SeededRandom()
namespace = {"random": random, "jsonlines": jsonlines, "print": lambda *a, **k: None}
build = functions("data/construct_synthetic_dataset.py")
for name in ("build_passkey", "build_number_string", "build_kv_retrieval"):
    exec(build[name], namespace)
namespace["build_passkey"]()
namespace["build_number_string"]()
namespace["build_kv_retrieval"]()

records = []
for row in written["passkey_8192.jsonl"][::40] + written["number_string.jsonl"][::150]:
    task = "passkey" if "pass key" in row["input"] else "number_string"
    records.append({"task": task, **row})
kv_rows = written["kv_retrieval.jsonl"]
for row, permutation in zip(kv_rows, random.shuffles):
    records.append({"task": "kv_retrieval", **row, "permutation": permutation})

utils = functions("src/eval_utils.py")
ns = {"MODEL_TO_PROMPT_TEMPLATE": MODEL_TO_PROMPT_TEMPLATE, "Path": __import__("pathlib").Path, "re": re}
exec(utils["create_prompt"], ns)
for record in records:
    eg = {"context": record["context"], "input": record["input"]}
    record["prompts"] = {model: ns["create_prompt"](dict(eg), record["task"], model, ".") for model in MODEL_TO_PROMPT_TEMPLATE}

scores_src = functions("src/compute_scores.py")
sns = {"re": re, "string": string}
for name in ("first_int_match", "get_score_one_kv_retrieval", "get_score_one_passkey", "get_score_one_number_string"):
    exec(scores_src[name], sns)
PIECES = ["12345", "54321", "The pass key is", " ", "\n", ":", '"', "'", ".", ",", "?", "!", "{", "}", "abc-12", "٣", "12\u00a034", "x"]
score_cases = []
for _ in range(1500):
    task = rng.choice(["passkey", "number_string", "kv_retrieval"])
    label = rng.choice(["12345", "54321", "abc-12", "٣"])
    pred = "".join(rng.choice(PIECES + [label]) for _ in range(rng.randint(0, 6)))
    score = float(sns["get_score_one_" + task](pred, [label] if task != "kv_retrieval" and rng.random() < 0.5 else label, "m"))
    score_cases.append({"task": task, "pred": pred, "label": label, "score": score})

# Contexts run to 470k characters: keep their SHA-256 (and the prompts'), the test rebuilds them.
import hashlib  # noqa: E402


def digest(text):
    return {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "chars": len(text)}


for record in records:
    record["context"] = digest(record["context"])
    record["prompts"] = {model: digest(text) for model, text in record["prompts"].items()}

os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "generated.json"), "w", encoding="utf-8") as f:
    json.dump({"seed": SEED, "kvKeys": KV_KEYS, "records": records, "scores": score_cases}, f, ensure_ascii=False, indent=0)
    f.write("\n")
print("wrote", len(records), "records,", len(score_cases), "score cases")
