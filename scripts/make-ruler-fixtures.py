#!/usr/bin/env python3
"""Differential fixtures for RULER's scorer (test/ruler-official.test.ts).

Runs RULER's official metric functions (NVIDIA/RULER scripts/eval/synthetic/constants.py) and its
`postprocess_pred` (taken unmodified from scripts/eval/evaluate.py with `ast`, since that module
parses arguments and imports NeMo at import time) on seeded generated prediction files, and writes
test/fixtures/ruler-official/scores.json. Nothing is fetched; the official code is not committed.

    # RULER_DIR holds scripts/eval/evaluate.py and scripts/eval/synthetic/constants.py (NVIDIA/RULER)
    python3 scripts/make-ruler-fixtures.py RULER_DIR
"""
import ast
import importlib.util
import json
import os
import random
import re
import sys

if len(sys.argv) != 2:
    sys.exit("usage: make-ruler-fixtures.py RULER_DIR")
RULER = os.path.abspath(sys.argv[1])
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "ruler-official")

spec = importlib.util.spec_from_file_location("ruler_constants", os.path.join(RULER, "scripts/eval/synthetic/constants.py"))
constants = importlib.util.module_from_spec(spec)
spec.loader.exec_module(constants)

source = open(os.path.join(RULER, "scripts/eval/evaluate.py"), encoding="utf-8").read()
tree = ast.parse(source)
postprocess_src = next(ast.get_source_segment(source, node) for node in tree.body
                       if isinstance(node, ast.FunctionDef) and node.name == "postprocess_pred")
namespace = {"re": re}
exec(postprocess_src, namespace)
postprocess_pred = namespace["postprocess_pred"]

SEED = 20261205
rng = random.Random(SEED)
PIECES = ["1234567", "7654321", "Apple-Tree", "apple-tree", "uuid-3f2a", "the answer is", " ", "\n", "\t", "\x00",
          "\x1f", "\u00a0", "\u3000", "İ", "ß", "ÄÖ", "x", ", and ", "\r\n"]
WORDS = ["1234567", "7654321", "apple-tree", "APPLE-TREE", "uuid-3f2a", "ß", "äö", "x", "answer", "\u00a0"]


def pred():
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 8)))


def refs():
    return [rng.choice(WORDS) for _ in range(rng.randint(1, 4))]


files = []
for _ in range(400):
    n = rng.randint(1, 12)
    preds = [pred() for _ in range(n)]
    references = [refs() for _ in range(n)]
    processed = [postprocess_pred(p, {}) for p in preds]
    files.append({
        "preds": preds,
        "refs": references,
        "postprocessed": processed,
        "string_match_all": constants.string_match_all(processed, references),
        "string_match_part": constants.string_match_part(processed, references),
    })
os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "scores.json"), "w", encoding="utf-8") as f:
    json.dump({"seed": SEED, "files": files}, f, ensure_ascii=False, indent=0)
    f.write("\n")
print("wrote", len(files), "prediction files")
