#!/usr/bin/env python3
"""Prompt fixtures for RULER's essay NIAH, vt, cwe, fwe, qa_1 and qa_2 tasks (test/ruler-tasks.test.ts).

Runs RULER's own functions, taken unmodified from scripts/data/synthetic/{niah,variable_tracking,
common_words_extraction,freq_words_extraction,qa}.py with `ast` (those modules parse arguments and
load a tokenizer, wonderwords, nltk and data files at import), with the task template composed as
scripts/data/prepare.py composes it (base model template + answer prefix). Their random draws come
from recording stand-ins for `random` and `numpy.random`, so the test can replay them through our
builders and compare prompts and answers character by character.

What is not RULER's here, and why:
  * nltk's English punkt model is not available offline. Most essay records replace the haystack's
    `sent_tokenize` by `split_sentences` below, the same rule as our default splitter
    (src/datasets/ruler/niah.ts). The records marked "punkt" run nltk's own Punkt instead: the
    PunktSentenceTokenizer class `sent_tokenize` uses (nltk 3.8), with the parameters of
    test/fixtures/punkt/params/trained (nltk's PunktTrainer on a Gutenberg book, punkt_tab form; see
    scripts/make-punkt-fixtures.py) instead of English ones, on the stand-in essay and on an excerpt of
    a train-side Gutenberg book. Everything around it (word slicing, depth insertion, joins,
    templates) is RULER's code.
  * The inputs are small stand-ins written below: an essay in PaulGrahamEssays.json's shape, key
    words, a word pool and English words for cwe, SQuAD v2- and HotpotQA-shaped dev files. The real
    ones are the user's.
  * The tokenizer-driven size search is not run: sizes are passed, as our builders take them. For vt
    the three lines of sys_vartrack_w_noise_random that add the in-context example are repeated below
    (marked), the example itself and the task text are RULER's generate_input_output and randomize_icl.
  * `random.Random(seed).shuffle` is a fixed permutation per (seed, length): recorded once per length
    in "permutations" instead of per call (fwe's gen_text shuffles the same list twice).

    # RULER_DIR is a checkout of NVIDIA/RULER; needs numpy, scipy (fwe imports scipy's zeta) and nltk
    # (Debian's python3-nltk: /usr/bin/python3); reads ../shared/corpora/gutenberg/train
    python3 scripts/make-ruler-task-fixtures.py RULER_DIR
"""
import heapq
import json
import os
import random as real_random
import re
import string
import sys
import tempfile
import uuid
from types import SimpleNamespace

import numpy as np
from nltk.tokenize.punkt import PunktSentenceTokenizer
from scipy.special import zeta

from punkt_tab import read_punkt_tab
from ruler_recording import Official, RecordingRandom, load_module

if len(sys.argv) != 2:
    sys.exit("usage: make-ruler-task-fixtures.py RULER_DIR")
RULER = os.path.abspath(sys.argv[1])
REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(REPO, "test", "fixtures", "ruler-official")
SYNTHETIC = "scripts/data/synthetic"


TASKS = load_module(RULER, f"{SYNTHETIC}/constants.py", "ruler_data_constants").TASKS
Templates = load_module(RULER, "scripts/data/template.py", "ruler_template").Templates


def base_template(task):
    """prepare.py: the base model template around the task template, then the answer prefix."""
    return Templates["base"].format(task_template=TASKS[task]["template"]) + TASKS[task]["answer_prefix"]


SEED = 20261206
rng = real_random.Random(SEED)
np_rng = np.random.default_rng(SEED)
PERMUTATIONS = {}


def new_recorder():
    return RecordingRandom(rng, PERMUTATIONS)


def recording_numpy(recorder):
    """`np` for variable_tracking.py, which draws np.random.randint(10000, 99999) for chain values."""

    def randint(low, high):
        value = int(np_rng.integers(low, high))
        recorder.draws.append(["numpyRandint", value])
        return value

    return SimpleNamespace(random=SimpleNamespace(randint=randint))


def split_sentences(text):
    """Stand-in for nltk's sent_tokenize: a sentence ends with a word ending in . ! ? (closing quotes or brackets may follow)."""
    sentences, current = [], []
    for word in text.split():
        current.append(word)
        if re.search(r"[.!?][\"'\u201d\u2019)\]]*$", word):
            sentences.append(" ".join(current))
            current = []
    if current:
        sentences.append(" ".join(current))
    return sentences


# --- inputs (stand-ins for the user's files) -------------------------------------------------------

ESSAY = ("How to Start   a Startup\n\nMarch 2005\t(This essay is derived from a talk.) You need three things to create a "
         "successful startup: to start with good people, to make something customers actually want, and to spend as "
         "little money as possible. Most startups that fail do it because they fail at one of these!  Why?\u00a0Because "
         "\"the hard part is the people.\" Mr. Smith said so, e.g. in his letter\u2028of 1999.  Did it matter? Perhaps "
         "not\u2026 The best ideas look bad at first\u2019s glance; they grow on you.\r\nA startup is a company designed "
         "to grow fast.\x1fBeing newly founded does not in itself make a company a startup.\x85Nor is it necessary "
         "for a startup to work on technology, or take venture funding (or have some sort of \"exit\"). The only "
         "essential thing is growth. Everything else we associate with startups follows from growth. \ufeffIf you want "
         "to start one it's important to understand that [growth matters.] Caf\u00e9s don't count ... usually. "
         "\U0001F680 Rockets do. 100.5 percent is not a growth rate.")
KEY_WORDS = ["happy-cat", "blue-river", "quiet-forest", "brave-lion", "old-mountain", "tiny-star", "red-fox", "calm-sea"]
CWE_RAW = ("apple river stone cloud forest garden window bottle candle mirror pencil rocket silver spider tiger violin "
           "wagon yellow zebra anchor basket castle dragon engine falcon glacier harbor island jungle kettle lantern "
           "meadow needle orange palace quartz ribbon saddle temple umbrella valley walnut bright quick brave calm eager "
           "gentle happy jolly kind lively run jump swim climb write read sing dance build carry apple river Zebra "
           "caf\u00e9 \u00e9clair \U0001F600smile \uff01bang").split(" ")
ENGLISH_WORDS = {f"w{i}": word for i, word in enumerate(
    f"{a}{b}" for a in ("al", "be", "co", "de", "ex", "fo", "gr", "hu", "in", "jo", "ke") for b in ("ta", "ro", "mi", "su", "ne", "pa", "lo", "vi", "da", "ku"))}
SQUAD = {"version": "v2.0", "data": [
    {"title": "Normans", "paragraphs": [
        {"context": "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy.",
         "qas": [{"question": "In what country is Normandy located?", "id": "q1", "is_impossible": False,
                  "answers": [{"text": "France", "answer_start": 0}, {"text": "France", "answer_start": 1}]},
                 {"question": "Who gave their name to Normandy in the 1000s?", "id": "q2", "is_impossible": True,
                  "answers": [], "plausible_answers": [{"text": "Normans", "answer_start": 4}]}]},
        {"context": "The Norman dynasty had a major political, cultural and military impact on medieval Europe.",
         "qas": [{"question": "What is the original meaning of the word Norman?", "id": "q3", "is_impossible": False,
                  "answers": [{"text": "Norseman", "answer_start": 0}, {"text": "Viking", "answer_start": 5}]}]},
        {"context": "Caf\u00e9 culture \u2014 {braces} stay as they are \U0001F600.",
         "qas": [{"question": "What stays as it is in {braces}?", "id": "q4", "is_impossible": False,
                  "answers": [{"text": "{braces}", "answer_start": 14}]}]},
        {"context": "\uff01 Fullwidth marks sort before astral characters in Python.",
         "qas": []}]},
    {"title": "Computational complexity", "paragraphs": [
        {"context": "Complexity theory classifies computational problems according to their inherent difficulty.",
         "qas": [{"question": "What does complexity theory classify?", "id": "q5", "is_impossible": False,
                  "answers": [{"text": "computational problems", "answer_start": 30}]}]},
        {"context": "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy.",
         "qas": [{"question": "Which centuries?", "id": "q6", "is_impossible": False,
                  "answers": [{"text": "10th and 11th", "answer_start": 40}]}]},
        {"context": "A problem is regarded as inherently difficult if its solution requires significant resources.",
         "qas": [{"question": "What makes a problem difficult?", "id": "q7", "is_impossible": False,
                  "answers": [{"text": "significant resources", "answer_start": 60}]}]}]},
    {"title": "Amazon", "paragraphs": [
        {"context": "The Amazon rainforest covers most of the Amazon basin of South America.",
         "qas": [{"question": "Where is the Amazon basin?", "id": "q8", "is_impossible": False,
                  "answers": [{"text": "South America", "answer_start": 55}]}]}]}]}
HOTPOTQA = [
    {"_id": "h1", "question": "Which magazine was started first, Arthur's Magazine or First for Women?", "answer": "Arthur's Magazine",
     "type": "comparison", "level": "medium", "supporting_facts": [["Arthur's Magazine", 0]],
     "context": [["Radio City (Indian radio station)", ["Radio City is India's first private FM radio station.", " It was started on 3 July 2001."]],
                 ["Arthur's Magazine", ["Arthur's Magazine (1844\u20131846) was an American literary periodical.", " It was edited by T.S. Arthur."]],
                 ["First for Women", ["First for Women is a woman's magazine published by Bauer Media Group.", " It was started in 1989."]]]},
    {"_id": "h2", "question": "Were Scott Derrickson and Ed Wood of the same nationality?", "answer": "yes",
     "type": "comparison", "level": "hard", "supporting_facts": [["Scott Derrickson", 0]],
     "context": [["Scott Derrickson", ["Scott Derrickson (born July 16, 1966) is an American director."]],
                 ["Ed Wood", ["Edward Davis Wood Jr. was an American filmmaker.", " He made {low-budget} films."]],
                 ["Arthur's Magazine", ["Arthur's Magazine (1844\u20131846) was an American literary periodical.", " It was edited by T.S. Arthur."]],
                 ["\u00c9cole", ["\u00c9cole is French for school."]]]},
    {"_id": "h3", "question": "What government position was held by the woman who portrayed Corliss Archer?", "answer": "Chief of Protocol",
     "type": "bridge", "level": "hard", "supporting_facts": [["Kiss and Tell", 0]],
     "context": [["Kiss and Tell", ["Kiss and Tell is a 1945 comedy film starring Shirley Temple as Corliss Archer."]],
                 ["Shirley Temple", ["Shirley Temple Black was an actress and diplomat.", " She was Chief of Protocol."]]]}]

# --- tasks -------------------------------------------------------------------------------------------

records = []


def add(task, kind, size, recorder, prompt, answers, **extra):
    records.append({"task": task, "kind": kind, "size": size, **extra, "draws": recorder.draws, "prompt": prompt, "answers": answers})


niah = Official(RULER, f"{SYNTHETIC}/niah.py")
NEEDLE = niah.literal("needle")
DEPTHS = {"np": np}
exec(niah.assignment("DEPTHS"), DEPTHS)


def essay_haystack(essay):
    """niah.py's module-level `haystack` for an essay text."""
    namespace = {"re": re, "essay": essay}
    exec(niah.assignment("haystack", "re.sub"), namespace)
    return namespace["haystack"]


def add_essay_record(task, config, num_haystack, haystack, sent_tokenize, **extra):
    """RULER's generate_input_output for an essay NIAH task, its draws recorded."""
    recorder = new_recorder()
    args = SimpleNamespace(random_seed=42, template=base_template("niah"), type_haystack="essay", **config)
    args.num_needle_k = max(args.num_needle_k, args.num_needle_q)
    namespace = niah.namespace(
        ("generate_random_number", "generate_random_word", "generate_random_uuid", "generate_random", "generate_input_output"),
        args=args, random=recorder, needle=NEEDLE, haystack=haystack, words=KEY_WORDS, uuid=uuid,
        DEPTHS=DEPTHS["DEPTHS"], sent_tokenize=sent_tokenize)
    text, answers = namespace["generate_input_output"](num_haystack)
    add(task, "niah", num_haystack, recorder, text, answers, **extra)


ESSAY_TASKS = {
    "niah_single_2": dict(type_needle_k="words", type_needle_v="numbers", num_needle_k=1, num_needle_v=1, num_needle_q=1),
    "niah_single_3": dict(type_needle_k="words", type_needle_v="uuids", num_needle_k=1, num_needle_v=1, num_needle_q=1),
    "niah_multikey_1": dict(type_needle_k="words", type_needle_v="numbers", num_needle_k=4, num_needle_v=1, num_needle_q=1),
    "niah_multivalue": dict(type_needle_k="words", type_needle_v="numbers", num_needle_k=1, num_needle_v=4, num_needle_q=1),
    "niah_multiquery": dict(type_needle_k="words", type_needle_v="numbers", num_needle_k=1, num_needle_v=1, num_needle_q=4),
}
for task, config in ESSAY_TASKS.items():
    for num_haystack in (25, 120, 400):  # 400 > the essay's words: RULER repeats the essay
        add_essay_record(task, config, num_haystack, essay_haystack(ESSAY), split_sentences)

vt = Official(RULER, f"{SYNTHETIC}/variable_tracking.py")
VT_NOISE = vt.literal("haystack", "grass")
for num_noises, icl_noises in ((5, 15), (12, 15), (30, 15)):  # 15: our default for the example (RULER fits it to 500 tokens)
    recorder = new_recorder()
    args = SimpleNamespace(type_haystack="noise", num_hops=4, template=base_template("variable_tracking"))
    namespace = vt.namespace(("generate_chains", "shuffle_sublists_heap", "generate_input_output", "randomize_icl"),
                             args=args, random=recorder, np=recording_numpy(recorder), string=string, heapq=heapq,
                             TASKS=TASKS, haystack=VT_NOISE, sent_tokenize=split_sentences)
    icl_input, icl_outputs = namespace["generate_input_output"](icl_noises, 1, 4, is_icl=True)
    # sys_vartrack_w_noise_random (not run: its size search needs a tokenizer), these lines as there:
    icl_example = icl_input + " " + ' '.join(icl_outputs) + '\n'
    input_text, answer = namespace["generate_input_output"](num_noises, 1, 4, is_icl=False)
    cutoff = input_text.index(TASKS['variable_tracking']['template'][:20])
    input_text = input_text[:cutoff] + namespace["randomize_icl"](icl_example) + '\n' + input_text[cutoff:]
    # end of the repeated lines
    add("vt", "vt", num_noises, recorder, input_text, answer, iclNumNoises=icl_noises)

cwe = Official(RULER, f"{SYNTHETIC}/common_words_extraction.py")
cwe_recorder = new_recorder()
CWE_WORDS = {"nouns": CWE_RAW[:30], "adjs": CWE_RAW[30:50], "verbs": CWE_RAW[50:], "random": cwe_recorder,
             "args": SimpleNamespace(random_seed=42)}
for statement in cwe.top_level(("words =", "random.Random(args.random_seed).shuffle(words)")):
    exec(statement, CWE_WORDS)
assert not cwe_recorder.draws  # the pool's shuffle is a seeded permutation, not a draw
for max_seq_length, num_words in ((8192, 45), (8192, 60), (2048, 25), (4096, 80)):  # 80 > the pool: English words
    recorder = new_recorder()
    args = SimpleNamespace(random_seed=42, template=base_template("common_words_extraction"), max_seq_length=max_seq_length,
                           num_fewshot=1, num_cw=10, freq_cw=30, freq_ucw=3)
    namespace = cwe.namespace(("get_example", "generate_input_output"), args=args, random=recorder,
                              words=CWE_WORDS["words"], randle_words=list(ENGLISH_WORDS.values()))
    text, answers = namespace["generate_input_output"](num_words)
    add("cwe", "cwe", num_words, recorder, text, answers, maxSeqLength=max_seq_length)

fwe = Official(RULER, f"{SYNTHETIC}/freq_words_extraction.py")
for num_words, vocab_size in ((60, 8), (150, 20), (400, 40)):
    recorder = new_recorder()
    args = SimpleNamespace(random_seed=42, template=base_template("freq_words_extraction"))
    short_text = SimpleNamespace(text_to_tokens=lambda text: [])  # the size search is not run: every text "fits"
    namespace = fwe.namespace(("generate_input_output",), args=args, random=recorder, np=np, zeta=zeta, string=string,
                              TOKENIZER=short_text)
    text, answers, _ = namespace["generate_input_output"](10**9, num_words=num_words, coded_wordlen=6,
                                                          vocab_size=vocab_size, incremental=10, alpha=2.0)
    add("fwe", "fwe", num_words, recorder, text, answers, vocabSize=vocab_size)

qa = Official(RULER, f"{SYNTHETIC}/qa.py")
DOCUMENT_PROMPT = qa.literal("DOCUMENT_PROMPT")
with tempfile.TemporaryDirectory() as tmp:
    for task, dataset, reader, cases in (
            ("qa_1", SQUAD, "read_squad", ((0, 2), (1, 3), (2, 5), (3, 4), (4, 7), (6, 8), (5, 12))),
            ("qa_2", HOTPOTQA, "read_hotpotqa", ((0, 3), (1, 4), (2, 5), (0, 6), (1, 9)))):
        path = os.path.join(tmp, f"{task}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dataset, f, ensure_ascii=False)
        read = qa.namespace((reader,), json=json)[reader]
        qas, docs = read(path)
        for index, num_docs in cases:
            recorder = new_recorder()
            args = SimpleNamespace(random_seed=42, template=base_template("qa"))
            namespace = qa.namespace(("generate_input_output",), args=args, random=recorder, QAS=qas, DOCS=docs,
                                     DOCUMENT_PROMPT=DOCUMENT_PROMPT)
            text, answers = namespace["generate_input_output"](index, num_docs)
            add(task, "qa", num_docs, recorder, text, answers, index=index)

# --- essay NIAH split by nltk's Punkt (after every other record: their draws stay as they were) --------------------
PUNKT_PARAMS = "test/fixtures/punkt/params/trained"
punkt_tokenize = PunktSentenceTokenizer(read_punkt_tab(os.path.join(REPO, PUNKT_PARAMS))).tokenize
with open(os.path.join(REPO, "..", "shared", "corpora", "gutenberg", "train", "The_Adventures_of_Sherlock_Holmes.txt"),
          encoding="utf-8", newline="") as f:
    book = f.read()
# About 1000 words of the book, cut at line ends (RULER collapses the whitespace anyway): "Mr.", "Mrs.", "Dr.", "St."
PUNKT_ESSAY = book[book.index("\n", 150000) + 1:book.index("\n", 156000) + 1]
for task, config in ESSAY_TASKS.items():
    for essay_name, essay, sizes in (("essay", ESSAY, (120,)), ("punktEssay", PUNKT_ESSAY, (300, 1500))):
        for num_haystack in sizes:  # 1500 > the excerpt's words: RULER repeats it
            add_essay_record(task, config, num_haystack, essay_haystack(essay), punkt_tokenize, punkt=PUNKT_PARAMS, essay=essay_name)

os.makedirs(OUT, exist_ok=True)
fixture = {
    "seed": SEED,
    "templates": {task: base_template(task) for task in TASKS},
    "depths": [int(depth) for depth in DEPTHS["DEPTHS"]],
    "inputs": {"essay": ESSAY, "punktEssay": PUNKT_ESSAY, "keyWords": KEY_WORDS, "cweRawWords": CWE_RAW, "cwePool": CWE_WORDS["words"],
               "englishWords": list(ENGLISH_WORDS.values()), "squad": SQUAD, "hotpotqa": HOTPOTQA},
    "permutations": PERMUTATIONS,
    "records": records,
}
with open(os.path.join(OUT, "task-prompts.json"), "w", encoding="utf-8") as f:
    json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
    f.write("\n")
print("wrote", len(records), "records,", len(PERMUTATIONS), "permutations")
