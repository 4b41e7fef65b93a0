#!/usr/bin/env python3
"""Fixtures for LongBench v2 (test/longbench-v2-official.test.ts).

Runs LongBench v2's own code from THUDM/LongBench (top-level pred.py, result.py, prompts/): the two
`prompt = template.replace(...)` statements and `extract_answer` taken unmodified from pred.py with
`ast` (pred.py imports an API client and parses arguments at import), and result.py run as a
subprocess on generated result files. Items are generated (the real data set is the user's).
Nothing is fetched; the official code is not committed.

    # V2_DIR holds pred.py, result.py and prompts/ (THUDM/LongBench, repository root)
    python3 scripts/make-longbench-v2-fixtures.py V2_DIR
"""
import ast
import json
import os
import random
import re
import subprocess
import sys
import tempfile

if len(sys.argv) != 2:
    sys.exit("usage: make-longbench-v2-fixtures.py V2_DIR")
V2 = os.path.abspath(sys.argv[1])
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "longbench-v2-official")

source = open(os.path.join(V2, "pred.py"), encoding="utf-8").read()
tree = ast.parse(source)
extract_src = next(ast.get_source_segment(source, n) for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "extract_answer")
get_pred = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "get_pred")
prompt_exprs = [ast.get_source_segment(source, n.value) for n in ast.walk(get_pred)
                if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "prompt" and "replace" in ast.get_source_segment(source, n.value)]
assert len(prompt_exprs) == 2, prompt_exprs
ns = {"re": re}
exec(extract_src, ns)
templates = {name: open(os.path.join(V2, "prompts", name + ".txt"), encoding="utf-8").read()
             for name in ("0shot", "0shot_cot", "0shot_cot_ans", "0shot_no_context")}

rng = random.Random(20261205)
PIECES = ["alpha", " ", "\n", "  lead", "trail  ", "$Q$", "$C_A$", "$DOC$", "中文", "’", "{x}", "\t"]


def text(n):
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, n)))


items = []
for i in range(60):
    item = {"_id": str(i), "difficulty": rng.choice(["easy", "hard"]), "length": rng.choice(["short", "medium", "long"]),
            "question": text(6), "choice_A": text(3), "choice_B": text(3), "choice_C": text(3), "choice_D": text(3),
            "answer": rng.choice("ABCD"), "context": text(30)}
    cot = text(8)
    prompts = {}
    for name in ("0shot", "0shot_cot", "0shot_no_context"):
        prompts[name] = eval(prompt_exprs[0], {"template": templates[name], "context": item["context"], "item": item})
    prompts["0shot_cot_ans"] = eval(prompt_exprs[1], {"template_0shot_cot_ans": templates["0shot_cot_ans"], "context": item["context"],
                                                      "item": item, "response": cot})
    items.append({"item": item, "cot": cot, "prompts": prompts})

RESPONSES = ["The correct answer is (B)", "**The correct answer is C**", "The correct answer is (E)", "answer: A",
             "The correct answer is D.", "The correct answer is (a)", "The correct answer is *(A)*", ""]
answers = [{"response": r, "pred": ns["extract_answer"](r)} for r in RESPONSES]

work = tempfile.mkdtemp(prefix="lbv2-")
os.makedirs(os.path.join(work, "results"))
runs = {}
for model in ("m0", "m1", "m2"):
    rows = []
    for _ in range(rng.randint(40, 120)):
        pred = rng.choice(["A", "B", "C", "D", None])
        answer = rng.choice("ABCD")
        rows.append({"difficulty": rng.choice(["easy", "hard"]), "length": rng.choice(["short", "medium", "long"]),
                     "pred": pred, "answer": answer, "judge": pred == answer})
    runs[model] = rows
    with open(os.path.join(work, "results", model + ".jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
subprocess.run([sys.executable, os.path.join(V2, "result.py")], cwd=work, check=True)
result_txt = open(os.path.join(work, "result.txt"), encoding="utf-8").read()

os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "v2.json"), "w", encoding="utf-8") as f:
    json.dump({"items": items, "answers": answers, "runs": runs, "resultTxt": result_txt}, f, ensure_ascii=False, indent=0)
    f.write("\n")
print("wrote", len(items), "items")
