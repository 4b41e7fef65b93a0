#!/usr/bin/env python3
"""Differential fixtures for the LongBench scorer port (test/longbench-official.test.ts).

Runs the OFFICIAL LongBench scoring code (THUDM/LongBench LongBench/metrics.py and eval.py, with
pltrdy's `rouge` package, Python jieba and fuzzywuzzy) on seeded generated cases and writes the
results as JSON into test/fixtures/longbench-official/. Nothing is fetched at run time and the
official code is not part of this repository: place it in a directory of your own and pass it.

    apt-get install python3-jieba python3-fuzzywuzzy python3-numpy   # Debian bookworm
    # OFFICIAL_DIR holds metrics.py and eval.py (THUDM/LongBench, LongBench/) and rouge/
    # (pltrdy/rouge, the rouge/ package folder)
    /usr/bin/python3 scripts/make-longbench-fixtures.py OFFICIAL_DIR

Outputs:
  cases.json       per-prediction scores, each computed by a function identical to the body of
                   eval.py's `scorer` loop and called from module level, so CPython's stack is as
                   deep as under `python eval.py` (this decides pltrdy's RecursionError); rouge
                   cases that hit it also carry `exact`, the score with the recursion limit raised.
  jieba.json       jieba.cut(text, cut_all=False) of the Chinese texts used.
  numpy-round.json round(np.float64(v), 2) for tie-prone values (scorer_e's rounding).
  pred/, pred_e/   prediction folders as pred.py writes them, plus the result.json that the
                   official eval.py (run as a subprocess, with and without --e) wrote for them.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

if len(sys.argv) != 2:
    sys.exit("usage: make-longbench-fixtures.py OFFICIAL_DIR (holding metrics.py, eval.py, rouge/)")
OFFICIAL = os.path.abspath(sys.argv[1])
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "longbench-official")

# LongBench's requirements.txt installs plain `fuzzywuzzy` (difflib); Debian's python3-fuzzywuzzy
# pulls in python3-levenshtein, which fuzzywuzzy would prefer (another formula). A stub that
# refuses to import makes fuzzywuzzy fall back to difflib, here and in the eval.py subprocesses.
NO_LEVENSHTEIN = tempfile.mkdtemp(prefix="no-levenshtein-")
with open(os.path.join(NO_LEVENSHTEIN, "Levenshtein.py"), "w") as stub:
    stub.write('raise ImportError("LongBench uses fuzzywuzzy without python-Levenshtein")\n')
PYTHONPATH = NO_LEVENSHTEIN + os.pathsep + OFFICIAL
sys.path[0:0] = [NO_LEVENSHTEIN, OFFICIAL]

import jieba  # noqa: E402
import numpy as np  # noqa: E402
from fuzzywuzzy import fuzz  # noqa: E402

assert fuzz.SequenceMatcher.__module__ == "difflib", "fuzzywuzzy must use difflib, as LongBench's install does"

jieba.setLogLevel(60)
from eval import dataset2metric  # noqa: E402  (the official eval.py; its __main__ block does not run)

SEED = 20261205
rng = random.Random(SEED)

EN_WORDS = ("the a an cat dog sat on mat river bank London Paris king queen 1999 42 report summary meeting "
            "committee budget war peace Mr. Smith said that it was not clear whether data model results "
            "show increase decrease, percent; and or of in to for with by from").split()
ZH_DICT = "/usr/lib/python3/dist-packages/jieba/dict.txt"
ZH_WORDS = [line.split(" ")[0] for line in open(ZH_DICT, encoding="utf-8")][::37]
ZH_SENTENCES = ["然", "然时", "长江", "南京市长江大桥", "我来到北京清华大学", "他来到了网易杭研大厦",
                "小明硕士毕业于中国科学院计算所，后在日本京都大学深造", "结过婚的和尚未结过婚的",
                "会议讨论了2023年的预算，增长了100%。", "中文English混合text123测试", "B超检查", "C++和AT&T的3.14%"]
ZH_PUNCT = list("，。！？；：、“”（）《》…—·,.!? \n")


def en_text(n):
    return " ".join(rng.choice(EN_WORDS) for _ in range(n))


def zh_text(n):
    parts = []
    for _ in range(n):
        r = rng.random()
        if r < 0.6:
            parts.append(rng.choice(ZH_WORDS))
        elif r < 0.75:
            parts.append(rng.choice(ZH_SENTENCES))
        elif r < 0.9:
            parts.append(rng.choice(ZH_PUNCT))
        else:
            parts.append(rng.choice(["100%", "2023年", "3.14", "a-b", "GPU", "x_y", "10.5%", "v1.2"]))
    return "".join(parts)


def perturb(text, zh):
    """A prediction near the answer: drop, repeat or insert pieces."""
    pieces = list(jieba.cut(text)) if zh else text.split(" ")
    out = []
    for piece in pieces:
        r = rng.random()
        if r < 0.15:
            continue
        out.append(piece)
        if r > 0.9:
            out.append(zh_text(1) if zh else rng.choice(EN_WORDS))
    return ("" if zh else " ").join(out)


CLASSES = ["Description", "Entity", "Abbreviation", "Human", "Location", "Numeric value", "Human being", "Entity type"]
CODE = ["    return x + 1", "def f(x):", "// comment", "int y = x * 2;", "# note", "```python", "for i in range(10):",
        "    print(i)", "x = foo(bar)", ""]


def make_case(dataset):
    metric = dataset2metric[dataset].__name__
    n_answers = rng.choice([1, 1, 1, 2, 3])
    all_classes = None
    if metric in ("qa_f1_zh_score", "rouge_zh_score"):
        answers = [zh_text(rng.randint(1, 12)) for _ in range(n_answers)]
        pred = perturb(answers[0], True) if rng.random() < 0.7 else zh_text(rng.randint(0, 15))
    elif metric in ("qa_f1_score", "rouge_score"):
        answers = [en_text(rng.randint(1, 30)) for _ in range(n_answers)]
        pred = perturb(answers[0], False) if rng.random() < 0.7 else en_text(rng.randint(0, 30))
        if rng.random() < 0.2:
            pred = "\n" * rng.randint(0, 2) + pred.replace(" ", "\n", rng.randint(0, 2))
    elif metric == "classification_score":
        all_classes = CLASSES
        answers = [rng.choice(CLASSES)]
        pred = " ".join(rng.choice(CLASSES + EN_WORDS) for _ in range(rng.randint(0, 4)))
    elif metric in ("retrieval_score", "retrieval_zh_score"):
        label = "Paragraph %d" if metric == "retrieval_score" else "段落%d"
        answers = [label % rng.randint(1, 30)]
        pred = " ".join(rng.choice([label % rng.randint(1, 30), str(rng.randint(1, 30)), "is", "答案"])
                        for _ in range(rng.randint(0, 3)))
    elif metric == "count_score":
        answers = [str(rng.randint(1, 20))]
        pred = " ".join(rng.choice([str(rng.randint(1, 20)), "paragraphs", "there are"]) for _ in range(rng.randint(0, 4)))
    else:  # code_sim_score
        answers = [rng.choice(CODE)]
        pred = "\n".join(rng.choice(CODE) for _ in range(rng.randint(0, 4)))
    return {"dataset": dataset, "pred": pred, "answers": answers, "all_classes": all_classes}


def long_rouge_cases():
    """Sentence pairs around pltrdy's RecursionError: identical n-word texts need n + 1 `_recon` calls."""
    cases = []
    for dataset, words in (("gov_report", None), ("vcsum", None)):
        for n in range(985, 996):
            if dataset == "gov_report":
                text = " ".join("w%d" % i for i in range(n))
                cases.append({"dataset": dataset, "pred": text, "answers": [text], "all_classes": None})
            else:
                text = " ".join(["中国"] * n)
                cases.append({"dataset": dataset, "pred": text, "answers": [text], "all_classes": None})
    # Unequal texts: the path mixes diagonal and straight steps.
    for _ in range(20):
        a = en_text(rng.randint(400, 700))
        cases.append({"dataset": "qmsum", "pred": perturb(a, False), "answers": [a], "all_classes": None})
    return cases


def score_one(dataset, prediction, ground_truths, all_classes):
    # Identical to the body of eval.py's `scorer` loop, and like it one frame below module level.
    score = 0.
    if dataset in ["trec", "triviaqa", "samsum", "lsht"]:
        prediction = prediction.lstrip('\n').split('\n')[0]
    for ground_truth in ground_truths:
        score = max(score, dataset2metric[dataset](prediction, ground_truth, all_classes=all_classes))
    return score


DATASETS = list(dataset2metric.keys())
ZH_DATASETS = ["multifieldqa_zh", "dureader", "vcsum"]
cases = [make_case(d) for d in DATASETS for _ in range(80)]
cases += [make_case(d) for d in ZH_DATASETS for _ in range(400)]
cases += long_rouge_cases()

# Module level on purpose (see score_one).
for case in cases:
    case["score"] = score_one(case["dataset"], case["pred"], case["answers"], case["all_classes"])
sys.setrecursionlimit(100000)
for case in cases:
    if dataset2metric[case["dataset"]].__name__ in ("rouge_score", "rouge_zh_score"):
        case["exact"] = score_one(case["dataset"], case["pred"], case["answers"], case["all_classes"])
sys.setrecursionlimit(1000)

os.makedirs(OUT, exist_ok=True)


def dump(name, value):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=0)
        f.write("\n")


dump("cases.json", {"seed": SEED, "cases": cases})

zh_texts = ZH_SENTENCES + [zh_text(rng.randint(1, 30)) for _ in range(1500)]
dump("jieba.json", [{"text": t, "words": list(jieba.cut(t, cut_all=False))} for t in zh_texts])

round_values = [(k + 0.5) / 100 for k in range(0, 10000, 7)] + [100 * k / n for n in (3, 7, 9, 11, 13, 40, 160) for k in range(n + 1)]
round_values += [rng.uniform(0, 100) for _ in range(500)]
dump("numpy-round.json", [{"x": v, "round": float(round(np.float64(v), 2))} for v in round_values])


def write_pred_dirs(root, with_length):
    """Three models × every dataset, rows as pred.py writes them; then the official eval.py on each."""
    results = {}
    for model in ("m0", "m1", "m2"):
        folder = os.path.join(root, "pred_e" if with_length else "pred", model)
        os.makedirs(folder, exist_ok=True)
        for dataset in DATASETS:
            n_rows = rng.randint(5, 60)
            with open(os.path.join(folder, dataset + ".jsonl"), "w", encoding="utf-8") as f:
                for _ in range(n_rows):
                    case = make_case(dataset)
                    row = {"pred": case["pred"], "answers": case["answers"], "all_classes": case["all_classes"],
                           "length": rng.choice([rng.randint(100, 3999), rng.randint(4000, 7999), rng.randint(8000, 20000)])}
                    json.dump(row, f, ensure_ascii=False)
                    f.write("\n")
        args = [sys.executable, os.path.join(OFFICIAL, "eval.py"), "--model", model] + (["--e"] if with_length else [])
        subprocess.run(args, cwd=root, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONPATH": PYTHONPATH})


def write_rounding_tie_model(root):
    """pred_e/ties: passage_count buckets whose 100·mean is a decimal tie not exact in binary
    (0.015 → Python's round 0.01, numpy's 0.02): 125 rows, one scoring a/160 (a of 160 numbers right)."""
    folder = os.path.join(root, "pred_e", "ties")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "passage_count.jsonl"), "w", encoding="utf-8") as f:
        for length, ones, a in ((1000, 0, 3), (5000, 0, 13), (9000, 7, 5)):
            rows = [{"pred": "5 " * a + "7 " * (160 - a)}] + [{"pred": "5"}] * ones + [{"pred": "7"}] * (124 - ones)
            for row in rows:
                json.dump({**row, "answers": ["5"], "all_classes": None, "length": length}, f)
                f.write("\n")
    subprocess.run([sys.executable, os.path.join(OFFICIAL, "eval.py"), "--model", "ties", "--e"], cwd=root, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": PYTHONPATH})


for sub in ("pred", "pred_e"):
    shutil.rmtree(os.path.join(OUT, sub), ignore_errors=True)
write_pred_dirs(OUT, False)
write_pred_dirs(OUT, True)
write_rounding_tie_model(OUT)
print("wrote", OUT, len(cases), "cases,", len(zh_texts), "jieba texts,", len(round_values), "round values")
