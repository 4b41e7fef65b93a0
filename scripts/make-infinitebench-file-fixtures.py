#!/usr/bin/env python3
"""Fixtures for InfiniteBench's file-based tasks (test/infinitebench-sources.test.ts).

Runs InfiniteBench's own code, taken unmodified with `ast` from OpenBMB/InfiniteBench:
  - src/eval_utils.py create_prompt (with src/prompt.py's templates) and get_answer on made-up rows of every
    file-based task this toolkit runs, for every model whose template Python can fill;
  - src/compute_scores.py get_score_one_<task> (but longbook_sum_eng's evaluate rouge: make-infinitebench-rouge-fixtures.py) on generated predictions (the answer, near misses, prefixes,
    letters, numbers, noise) against those answers.
Nothing is fetched; the official code is not committed.

    # IB_DIR holds src/compute_scores.py, src/eval_utils.py and src/prompt.py (OpenBMB/InfiniteBench)
    python3 scripts/make-infinitebench-file-fixtures.py IB_DIR
"""
import json
import os
import random
import re
import string
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import infinitebench_official as official  # noqa: E402

if len(sys.argv) != 2:
    sys.exit("usage: make-infinitebench-file-fixtures.py IB_DIR")
IB = os.path.abspath(sys.argv[1])
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "infinitebench-official", "files.json")


def functions(path):
    return official.functions(IB, path)


prompt = official.prompt_module(IB)

env = {"re": re, "string": string, "Counter": Counter, "Path": Path, "json": json}
env.update(
    MODEL_TO_PROMPT_TEMPLATE={
        "gpt4": prompt.gpt4_templates,
        "claude2": prompt.claude2_templates,
        "kimi": prompt.kimi_templates,
        "yarn-mistral": prompt.yarn_mistral_templates,
    }
)
for name, code in functions("src/eval_utils.py").items():
    if name in ("create_prompt", "get_answer"):
        exec(code, env)
scores = {}
for name, code in functions("src/compute_scores.py").items():
    if name in ("normalize_answer", "normalize_zh_answer", "f1_score", "qa_f1_score", "qa_f1_score_zh", "first_int_match") or name.startswith("get_score_one_"):
        exec(code, env)
        scores[name] = env[name]

rng = random.Random(20261205)
TASKS = ["longbook_qa_eng", "longbook_choice_eng", "longbook_qa_chn", "longdialogue_qa_eng", "math_find", "math_calc", "code_run", "code_debug", "longbook_sum_eng"]
MODELS = ["gpt4", "claude2", "kimi", "yarn-mistral"]
WORDS = ["the", "a", "Alice", "Bob", "river", "answer", "is", "option", "Option", "B.", "C:", "D", "func_3", "42", "-7", "3.5", "{x}", "$$MASK$$", "河流", "答案", "，", "ß"]


def row(task, i):
    options = [f"func_{rng.randint(1, 9)}" if task == "code_debug" else f"choice {c} {rng.choice(WORDS)}" for c in "ABCD"]
    options = list(dict.fromkeys(options)) + [f"extra {k}" for k in range(4)]
    options = options[:4]
    answer = {
        "longbook_qa_eng": [" ".join(rng.choice(WORDS) for _ in range(3)), "the river"],
        "longbook_choice_eng": [rng.choice(options)] if i % 2 else rng.choice(options),
        "longbook_qa_chn": ["河流的答案", rng.choice(WORDS)],
        "longdialogue_qa_eng": [rng.choice(["ALICE", "BOB", "JANE"])],
        "math_find": [rng.choice([rng.randint(0, 99), round(rng.uniform(0, 99), 2)])],
        "math_calc": [[rng.randint(0, 30) for _ in range(rng.randint(1, 6))]] if i % 2 else [rng.randint(0, 30) for _ in range(rng.randint(1, 6))],
        "code_run": [rng.randint(-50, 50)],
        "code_debug": rng.choice(options),
    }.get(task)
    if task == "longbook_sum_eng":  # drawn only for this task, so the other tasks' rows keep their draws
        answer = [" ".join(rng.choice(WORDS) for _ in range(12)) + "\n" + " ".join(rng.choice(WORDS) for _ in range(8))]
    inp = {
        "math_find": f"The {rng.choice(['largest', 'smallest', 'median'])} number of the list is",
        "code_run": f"Please compute func_{rng.randint(1, 99)}({rng.randint(-9, 9)}) for me",
    }.get(task, f"Who {{crossed}} the river {i}?")
    context = f"Some {{braces}} context {i}.\n" + " ".join(rng.choice(WORDS) for _ in range(20))
    return {"id": i, "context": context, "input": inp, "answer": answer, "options": options}


def predictions(task, label):
    flat = label[0] if isinstance(label, list) and label and isinstance(label[0], list) else label
    flat = flat if isinstance(flat, list) else [flat]
    out = ["", "  ", "nothing", " ".join(str(x) for x in flat), ", ".join(str(x) for x in flat) + ".", str(flat[0]), f"The answer is: {flat[0]}", f"answer is {flat[-1]}"]
    if task in ("code_debug", "longbook_choice_eng"):
        for c in "ABCD":
            out += [f"{c}. because", f"{c}: yes", f"The correct option is: {c}", f"Option {c}", f"the answer: {c} or", f"I think {c}", f"answer is: {flat[0]}"]
        out += ["AB is it", "answer is:", "is: " + str(flat[0])]
    out += [f"[{', '.join(str(x) for x in flat)}]", f"{flat[0]}.0 then", "-3 12", f"The value is {flat[0]}"] if task in ("math_find", "math_calc", "code_run") else []
    for _ in range(6):
        out.append(" ".join(rng.choice(WORDS + [str(x) for x in flat]) for _ in range(rng.randint(1, 6))))
    return out


prompts, cases = [], []
for task in TASKS:
    for i in range(6):
        eg = row(task, i)
        entry = {"task": task, "row": eg, "answer": env["get_answer"](dict(eg), task), "prompts": {}}
        for model in MODELS:
            try:
                entry["prompts"][model] = env["create_prompt"](dict(eg), task, model, ".")
            except (KeyError, IndexError, ValueError):
                entry["prompts"][model] = None  # Python's str.format cannot fill this template
        prompts.append(entry)
        if task == "longbook_sum_eng":
            continue  # its rougeLsum is checked against rouge_score by scripts/make-infinitebench-rouge-fixtures.py
        for pred in predictions(task, entry["answer"]):
            for model in (["gpt4", "yarn-mistral"] if task == "math_calc" else ["yarn-mistral"]):
                try:
                    score = float(scores[f"get_score_one_{task}"](pred, entry["answer"], model))
                except ValueError:
                    continue  # int("3.5") against an int label raises in compute_scores.py; not a case
                cases.append({"task": task, "model": model, "pred": pred, "label": entry["answer"], "score": score})

with open(OUT, "w", encoding="utf-8") as f:
    json.dump({"prompts": prompts, "scores": cases}, f, ensure_ascii=False, indent=1)
print(f"{len(prompts)} rows, {len(cases)} scores -> {OUT}")
