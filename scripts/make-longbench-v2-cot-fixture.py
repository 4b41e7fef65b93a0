#!/usr/bin/env python3
"""Fixture for LongBench v2's chain-of-thought mode (test/longbench-v2-cot.test.ts).

Runs pred.py's own `get_pred` (THUDM/LongBench, top-level pred.py), taken unmodified with `ast`, with
`args.cot = True` on a few generated items. Only what it calls out to is stubbed: `query_llm` records the
prompt and max_new_tokens it is given and returns canned model outputs (the first with whitespace around
it, placeholders and Python-only whitespace in it), the tokenizer and API client are dummies, and `fout`
collects the rows it writes. So the fixture holds, for each item, both prompts pred.py builds (before
query_llm's truncation), both token budgets, and the row (response_cot, response, pred, judge).
Nothing is fetched; the official code is not committed.

    # V2_DIR holds pred.py and prompts/ (THUDM/LongBench, repository root)
    python3 scripts/make-longbench-v2-cot-fixture.py V2_DIR
"""
import argparse
import ast
import io
import json
import os
import re
import sys

if len(sys.argv) != 2:
    sys.exit("usage: make-longbench-v2-cot-fixture.py V2_DIR")
V2 = os.path.abspath(sys.argv[1])
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "longbench-v2-official", "cot.json")

source = open(os.path.join(V2, "pred.py"), encoding="utf-8").read()
tree = ast.parse(source)
functions = {n.name: ast.get_source_segment(source, n) for n in tree.body if isinstance(n, ast.FunctionDef)}


def template(name):
    return open(os.path.join(V2, "prompts", name + ".txt"), encoding="utf-8").read()


calls = []
outputs = []


def query_llm(prompt, model, tokenizer, client=None, temperature=0.5, max_new_tokens=128, stop=None):
    calls.append({"prompt": prompt, "max_new_tokens": max_new_tokens})
    return outputs.pop(0)


class Dummy:
    def __init__(self, *args, **kwargs):
        pass

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        return cls()


ns = {
    "re": re, "json": json, "tqdm": lambda x: x, "AutoTokenizer": Dummy, "OpenAI": Dummy, "tiktoken": None,
    "model_map": {"m": "m"}, "URL": "", "API_KEY": "", "query_llm": query_llm,
    "template_rag": template("0shot_rag"), "template_no_context": template("0shot_no_context"), "template_0shot": template("0shot"),
    "template_0shot_cot": template("0shot_cot"), "template_0shot_cot_ans": template("0shot_cot_ans"),
}
exec(functions["extract_answer"], ns)
exec(functions["get_pred"], ns)

ITEMS = [
    ({"question": "  Which colour was the ball?\n", "choice_A": "red", "choice_B": " blue ", "choice_C": "green", "choice_D": "gold",
      "answer": "B", "context": "\n Tom had a blue ball. Tom had a blue ball.\n\n"},
     ["\n  The ball is blue, as the text says twice.\u3000\x85 ", "  The correct answer is (B)\n"]),
    ({"question": "What does $COT$ mean in $DOC$?", "choice_A": "$Q$", "choice_B": "$COT$", "choice_C": "it’s", "choice_D": "\tnothing",
      "answer": "D", "context": "A context with $Q$ and $COT$ in it."},
     ["Step 1: $Q$ and $COT$ stay as they are in my answer. \n\nStep 2: so (D).\x1c", "**The correct answer is D**"]),
    ({"question": "Q?", "choice_A": "a", "choice_B": "b", "choice_C": "c", "choice_D": "d", "answer": "A", "context": "text"},
     [" \t\n", "I cannot tell."]),
]

records = []
for i, (fields, canned) in enumerate(ITEMS):
    item = {"_id": f"cot-{i}", "domain": "d", "sub_domain": "s", "difficulty": "easy", "length": "short", **fields}
    calls.clear()
    outputs[:] = list(canned)
    fout = io.StringIO()
    ns["get_pred"]([dict(item)], argparse.Namespace(model="m", rag=0, no_context=False, cot=True), fout)
    assert outputs == [] and len(calls) == 2, (outputs, calls)
    records.append({"item": item, "outputs": canned, "calls": calls[:], "row": json.loads(fout.getvalue())})

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w", encoding="utf-8") as f:
    json.dump({"items": records}, f, ensure_ascii=False, indent=1)
    f.write("\n")
print("wrote", len(records), "items")
