#!/usr/bin/env python3
"""Prompt fixtures for RULER's NIAH tasks (test/ruler-niah.test.ts).

Runs RULER's own `generate_input_output` (taken unmodified from scripts/data/synthetic/niah.py
with `ast`; that module parses arguments, loads a tokenizer and the wonderwords lists at import)
with the task template composed as scripts/data/prepare.py composes it (base model template +
answer prefix), for the noise and needle haystacks. Its random draws (keys, values, insertion
points, query choice) come from a recording stand-in for `random`, so the test can replay them
through our builder and compare the prompt character by character. The essay haystack needs Paul
Graham's essays and nltk's sentence splitter and is not covered. Nothing is fetched; the official
code is not committed.

    # RULER_DIR holds scripts/data/synthetic/niah.py, scripts/data/synthetic/constants.py and
    # scripts/data/template.py (NVIDIA/RULER)
    python3 scripts/make-ruler-niah-fixtures.py RULER_DIR
"""
import json
import os
import random as real_random
import sys
from types import SimpleNamespace

from ruler_recording import Official, RecordingRandom, load_module

if len(sys.argv) != 2:
    sys.exit("usage: make-ruler-niah-fixtures.py RULER_DIR")
RULER = os.path.abspath(sys.argv[1])
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "ruler-official")

TASKS = load_module(RULER, "scripts/data/synthetic/constants.py", "ruler_data_constants").TASKS
Templates = load_module(RULER, "scripts/data/template.py", "ruler_template").Templates
niah = Official(RULER, "scripts/data/synthetic/niah.py")
NEEDLE = niah.literal("needle")
FUNCTIONS = niah.functions

SEED = 20261205
rng = real_random.Random(SEED)
KEY_WORDS = ["happy-cat", "blue-river", "quiet-forest", "brave-lion", "old-mountain", "tiny-star"]


# RULER's synthetic.yaml configs without an essay haystack, then variants of the essay tasks on the
# noise/needle haystacks (more keys, values and queries) to exercise the other branches.
CONFIGS = {
    "niah_single_1": dict(type_haystack="noise", type_needle_k="words", type_needle_v="numbers", num_needle_k=1, num_needle_v=1, num_needle_q=1),
    "niah_multikey_2": dict(type_haystack="needle", type_needle_k="words", type_needle_v="numbers", num_needle_k=1, num_needle_v=1, num_needle_q=1),
    "niah_multikey_3": dict(type_haystack="needle", type_needle_k="uuids", type_needle_v="uuids", num_needle_k=1, num_needle_v=1, num_needle_q=1),
    "variant_needle_4keys": dict(type_haystack="needle", type_needle_k="words", type_needle_v="numbers", num_needle_k=4, num_needle_v=1, num_needle_q=1),
    "variant_noise_multivalue": dict(type_haystack="noise", type_needle_k="words", type_needle_v="numbers", num_needle_k=1, num_needle_v=4, num_needle_q=1),
    "variant_noise_multiquery": dict(type_haystack="noise", type_needle_k="words", type_needle_v="numbers", num_needle_k=1, num_needle_v=1, num_needle_q=4),
}

template = Templates["base"].format(task_template=TASKS["niah"]["template"]) + TASKS["niah"]["answer_prefix"]
records = []
for task, config in CONFIGS.items():
    for num_haystack in (5, 10, 25):
        recorder = RecordingRandom(rng)  # seeded shuffles recorded as draws, in call order
        haystack = ("The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
                    if config["type_haystack"] == "noise" else NEEDLE)
        args = SimpleNamespace(random_seed=42, template=template, **config)
        args.num_needle_k = max(args.num_needle_k, args.num_needle_q)
        namespace = {"args": args, "random": recorder, "needle": NEEDLE, "haystack": haystack, "words": KEY_WORDS,
                     "uuid": __import__("uuid")}
        for name in ("generate_random_number", "generate_random_word", "generate_random_uuid", "generate_random",
                     "generate_input_output"):
            exec(FUNCTIONS[name], namespace)
        text, answers = namespace["generate_input_output"](num_haystack)
        records.append({"task": task, "config": config, "numHaystack": num_haystack, "draws": recorder.draws,
                        "prompt": text, "answers": answers})

os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "niah-prompts.json"), "w", encoding="utf-8") as f:
    json.dump({"seed": SEED, "template": template, "records": records}, f, ensure_ascii=False, indent=0)
    f.write("\n")
print("wrote", len(records), "prompts")
