#!/usr/bin/env python3
"""Fixtures for InfiniteBench's longbook_sum_eng metric (test/infinitebench-rouge.test.ts).

compute_scores.py (OpenBMB/InfiniteBench) scores longbook_sum_eng as

    ROUGE_SCORER = evaluate.load("rouge")
    score = ROUGE_SCORER.compute(predictions=[pred], references=[label], use_aggregator=False)
    return score["rougeLsum"][0]

with `label` the row's answer, a list of strings. HF evaluate's metrics/rouge/rouge.py `_compute` (defaults
rouge_types = rouge1, rouge2, rougeL, rougeLsum; use_stemmer=False; tokenizer=None) builds
`rouge_scorer.RougeScorer(rouge_types=rouge_types, use_stemmer=use_stemmer, tokenizer=tokenizer)` and, since
`references[0]` is a list, calls `scorer.score_multi(ref, pred)` per item and returns the fmeasure list per key.
`evaluate_rouge` below is that call, written out here (evaluate and datasets are not installed).

The scorer itself is google-research's rouge_score, run from a copy OUTSIDE this repository (never committed):
ROUGE_SRC holds the package `rouge/` (rouge_scorer.py, scoring.py, tokenize.py, tokenizers.py and an empty
__init__.py from google-research/google-research rouge/). Needs Debian's python3-nltk, python3-absl,
python3-numpy, python3-six (/usr/bin/python3).

    /usr/bin/python3 scripts/make-infinitebench-rouge-fixtures.py --rouge-src ROUGE_SRC
"""
import argparse
import json
import os
import random
import sys

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--rouge-src", required=True, help="folder holding google-research's rouge/ package")
args = ap.parse_args()
sys.path.insert(0, os.path.abspath(args.rouge_src))
from rouge import rouge_scorer  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "infinitebench-official", "rouge.json")


def evaluate_rouge(predictions, references, rouge_types=None, use_aggregator=True, use_stemmer=False, tokenizer=None):
    """huggingface/evaluate metrics/rouge/rouge.py Rouge._compute, the use_aggregator=False path."""
    assert not use_aggregator and tokenizer is None
    if rouge_types is None:
        rouge_types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    multi_ref = isinstance(references[0], list)
    scorer = rouge_scorer.RougeScorer(rouge_types=rouge_types, use_stemmer=use_stemmer, tokenizer=tokenizer)
    scores = []
    for ref, pred in zip(references, predictions):
        if multi_ref:
            if hasattr(scorer, "score_multi"):
                score = scorer.score_multi(ref, pred)
            else:
                # The stored rouge_scorer.py predates score_multi; rouge_score 0.1.2's, verbatim in behaviour:
                # per rouge type, the Score of the target with np.argmax of the fmeasures.
                dicts = [scorer.score(t, pred) for t in ref]
                score = {k: dicts[int(np.argmax([s[k].fmeasure for s in dicts]))][k] for k in scorer.rouge_types}
        else:
            score = scorer.score(ref, pred)
        scores.append(score)
    return {key: list(s[key].fmeasure for s in scores) for key in scores[0]}


def get_score_one_longbook_sum_eng(pred, label):
    """compute_scores.py, with ROUGE_SCORER.compute replaced by evaluate_rouge."""
    score = evaluate_rouge(predictions=[pred], references=[label], use_aggregator=False)
    return score["rougeLsum"][0]


rng = random.Random(20261206)
WORDS = ["the", "a", "Dorothea", "married", "Casaubon", "Will", "Ladislaw", "town", "Middlemarch", "money", "doctor",
         "Lydgate", "is", "was", "and", "of", "to", "in", "her", "his", "love", "book", "The", "THE", "it's", "don't",
         "1832", "3rd", "co-operate", "naïve", "café", "Straße", "İstanbul", "\u212a", "ﬁne", "日本", "–", "—", "...",
         "e.g.", "U.S.A.", "x2", "A1", "ok!", "(yes)", "\"quoted\"", "a_b", "αβγ", "ǅ", "ß", "\u00a0", "\t", "\r"]
PUNCT = [".", ",", "!", "?", ";", ":", "-", "'", "\"", "(", ")", "…", "*", "#", "  "]


def sentence(k):
    out = []
    for _ in range(k):
        w = rng.choice(WORDS)
        if rng.random() < 0.2:
            w += rng.choice(PUNCT)
        out.append(w)
    return " ".join(out)


def summary(sentences, words):
    sep = rng.choice(["\n", "\n", "\n\n", " ", "\n \n", "\r\n"])
    text = sep.join(sentence(rng.randint(0, words)) for _ in range(sentences))
    if rng.random() < 0.2:
        text = "\n" + text
    if rng.random() < 0.2:
        text += "\n"
    return text


def mutate(text):
    """A prediction near the reference: words dropped, swapped, repeated, lines merged or split."""
    lines = text.split("\n")
    out = []
    for line in lines:
        ws = line.split(" ")
        ws = [w for w in ws if rng.random() > 0.2]
        if len(ws) > 1 and rng.random() < 0.3:
            i, j = rng.randrange(len(ws)), rng.randrange(len(ws))
            ws[i], ws[j] = ws[j], ws[i]
        if ws and rng.random() < 0.2:
            ws.insert(rng.randrange(len(ws) + 1), rng.choice(ws))
        out.append(" ".join(ws))
    if len(out) > 1 and rng.random() < 0.3:
        rng.shuffle(out)
    return rng.choice(["\n", " ", "\n\n"]).join(out) if rng.random() < 0.3 else "\n".join(out)


cases = []
fixed = [
    ("", ["a summary"]), ("a summary", [""]), ("", [""]), ("...", ["!!!"]), ("?!", ["a b"]), ("\n\n\n", ["x\ny"]),
    ("the the the", ["the"]), ("the", ["the the the"]), ("a b c\n", ["\na b c"]), ("a b\nc", ["a\nb c"]),
    ("İstanbul \u212aelvin ﬁne", ["i stanbul kelvin fine"]), ("Straße café naïve", ["strasse cafe naive"]),
    ("a b a b a b", ["b a b a"]), ("x y z\nz y x\nx z y", ["x y z\nx y z"]), ("one\r\ntwo", ["one two"]),
    ("a\tb\u00a0c\u2003d", ["a b c d"]), ("A1 b2 C3", ["a1 B2 c3"]), ("a_b-c", ["a b c"]),
    ("a b", ["c d", "a b", "a"]), ("a b c", ["a", "a b", ""]), ("word", ["other", "thing"]),
]
for pred, label in fixed:
    cases.append({"pred": pred, "label": label})
for i in range(2600):
    ref = summary(rng.randint(0, 6), rng.randint(0, 14))
    kind = i % 5
    if kind == 0:
        pred = summary(rng.randint(0, 6), rng.randint(0, 14))
    elif kind in (1, 2):
        pred = mutate(ref)
    elif kind == 3:
        pred = ref if rng.random() < 0.3 else ref.replace("\n", rng.choice([" ", "\n\n", ". "]))
    else:
        pred = " ".join([rng.choice(["the", "a", "of", "and"]) for _ in range(rng.randint(0, 30))])
    label = [ref] if rng.random() < 0.85 else [ref, summary(rng.randint(1, 3), 8)]
    cases.append({"pred": pred, "label": label})
# A few long multi-line summaries (book-summary sized: hundreds of words, dozens of lines).
for _ in range(12):
    ref = summary(rng.randint(20, 40), 25)
    cases.append({"pred": mutate(ref) if rng.random() < 0.7 else summary(rng.randint(10, 40), 25), "label": [ref]})

for c in cases:
    c["score"] = float(get_score_one_longbook_sum_eng(c["pred"], c["label"]))

with open(OUT, "w", encoding="utf-8") as f:
    json.dump({"cases": cases}, f, ensure_ascii=False, indent=0)
print(f"{len(cases)} cases, {sum(c['score'] > 0 for c in cases)} with a positive score -> {OUT}")
