#!/usr/bin/env python3
"""Punkt fixtures for test/punkt.test.ts: what nltk's own PunktSentenceTokenizer makes of a set of texts.

nltk's English Punkt data (nltk_data tokenizers/punkt_tab/english) is not available offline, so two parameter sets
stand in for it, both written in punkt_tab form (the folder layout nltk >= 3.8.2 reads) and read back from those
files before tokenizing, so the sentences are those of the parameters on disk:

  * params/trained: nltk's PunktTrainer on one public-domain book of ../shared/corpora/gutenberg/train (the train
    side only), with INCLUDE_ALL_COLLOCS so that collocations are learnt for every period-final word, not only
    abbreviations and initials: abbreviations, collocations, sentence starters and orthographic contexts all
    non-trivial.
  * params/handmade: a few entries written below so that each decision of the second pass is taken on purpose
    (abbreviation + orthographic heuristic, abbreviation + sentence starter, collocation, initial + orthographic
    heuristic, initial + special heuristic, number + orthographic heuristic).

The texts: adversarial strings (abbreviations, initials, numbers, ellipses, quotes and brackets after a period,
"?!", whitespace of every kind, unicode, empty), paragraphs and RULER-style haystacks (words joined by single
spaces) from the train books, and seeded random strings assembled from tricky pieces. For whole books only the
number of sentences and a sha256 of them are kept ("books").

nltk 3.8's punkt.py has no punkt_tab reader or writer (those came with 3.8.2): scripts/punkt_tab.py writes and reads
the format as nltk's tabdata.py does.

    apt-get install python3-nltk   # Debian's nltk 3.8
    /usr/bin/python3 scripts/make-punkt-fixtures.py
"""
import hashlib
import json
import os
import random
import re
import sys
import unicodedata

import nltk
from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer, PunktTrainer

from punkt_tab import read_punkt_tab, write_punkt_tab

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TRAIN = os.path.join(ROOT, "..", "shared", "corpora", "gutenberg", "train")
OUT = os.path.join(ROOT, "test", "fixtures", "punkt")
TRAIN_BOOK = "The_Adventures_of_Sherlock_Holmes.txt"
SEED = 20261206

BEG_UC, MID_UC, UNK_UC, BEG_LC, MID_LC, UNK_LC = (1 << i for i in range(1, 7))


def read_book(name):
    """The file's text as it is (CRLF kept: the test reads the same bytes)."""
    with open(os.path.join(TRAIN, name), encoding="utf-8", newline="") as f:
        return f.read()


# --- parameters ----------------------------------------------------------------------------------------------------

trainer = PunktTrainer()
trainer.INCLUDE_ALL_COLLOCS = True
trainer.train(read_book(TRAIN_BOOK), finalize=True)
write_punkt_tab(trainer.get_params(), os.path.join(OUT, "params", "trained"))

handmade = PunktParameters()
handmade.abbrev_types = {"mr", "mrs", "dr", "st", "e.g", "i.e", "etc", "vs", "u.s", "inc", "no", "jan", "fig", "p.m", "a.m", "οδ"}
handmade.collocations = {("s", "bach"), ("##number##", "century"), ("jan", "##number##"), ("dr", "who"), ("st", "john"),
                         ("e.g", "the"), ("ibm", "corp"), (".", "world")}
handmade.sent_starters = {"however", "but", "the", "then", "it", "we", "ibm"}
for typ, flags in {
    "the": BEG_UC | MID_LC,                 # capitalized after an abbreviation: a sentence starts (ortho heuristic)
    "then": BEG_UC | BEG_LC | MID_LC,
    "however": BEG_UC | MID_LC,
    "but": BEG_UC | MID_LC | MID_UC,        # seen capitalized mid-sentence: only the sentence-starter list breaks
    "it": BEG_UC | MID_LC | MID_UC,
    "smith": BEG_UC | MID_UC,               # a name: "unknown", the abbreviation stays
    "bach": MID_UC,
    "tolkien": MID_UC,
    "london": BEG_UC | MID_UC,
    "who": BEG_UC | MID_LC,
    "john": BEG_UC | MID_LC,
    "ibm": UNK_UC,
    "and": MID_LC,                          # lower case, never sentence-initial: not a sentence start
    "said": BEG_LC | MID_LC,                # lower case, seen sentence-initial: unknown
    "apple": MID_LC | UNK_UC,               # lower case, also seen capitalized: not a sentence start
    "century": MID_LC,
    "r": MID_UC | UNK_UC,
    "j": BEG_UC | MID_UC,
    "δεν": BEG_UC | MID_LC,
    "café": BEG_UC | MID_LC | BEG_LC,
}.items():
    handmade.ortho_context[typ] = flags
write_punkt_tab(handmade, os.path.join(OUT, "params", "handmade"))

PARAMS = {name: read_punkt_tab(os.path.join(OUT, "params", name)) for name in ("trained", "handmade")}
TOKENIZERS = {name: PunktSentenceTokenizer(params) for name, params in PARAMS.items()}

# --- texts ---------------------------------------------------------------------------------------------------------

ADVERSARIAL = [
    "", " ", "\n\n", "Hello", "Hello.", "No final period here", "x.", "?", "!?!", "...", ". . .", "Hello .  World",
    "Mr. Smith went to Washington. He arrived at noon.",
    "I saw Dr. Who and Mrs. Jones. Then we left. St. John came. St. Paul did not.",
    "Fruits, e.g. apples, are good. I.e. they are tasty. E.g. The end.",
    "J. R. R. Tolkien wrote books. J. Bach did not. J. Then again. R. and so on.",
    "Johann S. Bach composed. S. Bach again. The S. Bach.",
    "Pi is 3.14 roughly. It was 1999. And then 2000. Page 5. and on. The 19. Century. In the 5. century there.",
    "It cost $3.50. Prices rose 2.5% in 2020. On Jan. 5 we met. Jan. The month. No. 5 is here. Fig. 3. shows it.",
    "Wait... What? Really?! Yes!!! No?? ok... and so on. . . The end.... Next.. one.",
    'He said "Stop." Then he left. (This is a parenthetical.) [And a bracket.] \'Quoted.\' Next.',
    '"(And the same with this one.)" (\'And this one!\') "(\'(And (this)) \'?)" [(and this. )]',
    '(How does it deal with this parenthesis?)  "It should be part of the\nprevious sentence." ...',
    "One.  Two.\n\nThree.\tFour.\r\nFive.\u00a0Six.\u2028Seven.\x85Eight.\x1fNine.\u3000Ten.\ufeffEleven.\x0bTwelve.\x0cThirteen.",
    "Multiple   spaces.   Between   sentences.     ",
    "Trailing whitespace. \n\n \t",
    "  Leading whitespace. Here.",
    "Unicode: Café. café. Ölfass. Ñandú. Σοφία είπε. ΟΔΟΣ. Δεν ξέρω. Οδ. Δεν. 日本語。次の文。 Emoji 🚀. Next 🙂 sentence. 🚀. Ⅻ. Done.",
    "Ellipsis at end...",
    "Very bad acting!!! I promise.",
    "Hyphen--dash. Another -- one. Ex-Mr. Smith. --Quoted. Dash.--Then.",
    "etc. However, it ended. etc. but it went on. etc. The end. etc. and more. etc. But then. etc. It is.",
    "U.S. Army. The U.S. is big. u.s. and them. The U.S. The end.",
    "a.m. and p.m. times. At 5 p.m. We left. At 6 a.m. the sun.",
    "Numbers 1. 2. 3. items. 1. First. 2. Second. 3.5. Third.",
    'End with quote." Start. End paren.) Start. End bracket.] Start. End brace.} Start.',
    "Question? \"Answer.\" 'Quote!' (Paren.) [Bracket?] {Brace.} Done.",
    ".I am a sentence .I am another sentence",
    "1. This is R .\n2. This is A .\n3. That's all",
    "Mr.Smith no space.Next sentence.",
    "word. , comma after period. ; semicolon. : colon. ! bang. ? what.",
    "Abbrev at end Mr.",
    "Dr. Who. Dr. Smith. IBM Inc. IBM Corp. is big. Inc. The.",
    'Quotes: "Hello." "World!" \u201cCurly.\u201d \u2018Single.\u2019 Next. \u00abGuillemets.\u00bb Next.',
    "Line one.\nLine two\nstill two. Line three.\n\n\nParagraph.",
    "A sentence.)\" Another.\")) Third.'\") Fourth.",
    "Ends with ?\" Yes.' No.)\nOk.",
    "Mixed!? Case. lowercase start. UPPERCASE START. 123 start. _underscore start.",
    "Tabs\tbetween.\tWords.\t\tHere.",
    "S.E.C. filing. The F.B.I. agent. a.b.c. def.",
    "He was No. 1. And No. 2.",
    "Apple. apple. APPLE. Said. said. And. and.",
]


def paragraphs(book, count, start):
    """`count` paragraphs (CRLF line ends kept) of at least 200 characters, from `start` paragraphs into the book."""
    found = [p for p in re.split(r"(?:\r?\n){2,}", read_book(book)) if len(p) >= 200]
    return found[start:start + count]


def haystack(book, start_word, num_words):
    """RULER's essay haystack text: words joined by single spaces, stripped (niah.py + sent_tokenize(text.strip()))."""
    words = read_book(book).split()
    return " ".join(words[start_word:start_word + num_words]).strip()


PIECES = ["Mr.", "Mrs.", "Dr.", "St.", "e.g.", "i.e.", "etc.", "U.S.", "Inc.", "No.", "Jan.", "S.", "J.", "R.", "x.",
          "3.", "3.14", "1999.", "5", "$3.50.", "...", "..", ". . .", ".", "?", "!", "?!", "!!!", "--", "-", ",", ";", ":",
          '"', "'", "(", ")", "[", "]", "{", "}", "\u201c", "\u201d", "\u2019", ")\"", ".)", '."', ".'", "?)", "!]",
          "The", "the", "THE", "Then", "then", "However", "however", "But", "but", "It", "it", "Smith", "smith", "Bach",
          "Tolkien", "London", "Who", "who", "John", "IBM", "Corp", "And", "and", "Said", "said", "Apple", "apple",
          "century", "Century", "holmes", "Holmes", "Watson", "I", "i", "Café", "Δεν", "ΟΔΟΣ.", "🚀", "日本語。",
          "word", "Word", "words.", "Words.", "a.b.", "ex-mr.", "Ex-Dr."]
SPACES = [" ", " ", " ", " ", "", "  ", "\n", "\n\n", "\t", "\u00a0", "\x85", "\u2028", "\x1c", "\r\n", " \n "]


def random_text(rng):
    parts = []
    for _ in range(rng.randint(1, 30)):
        parts.append(rng.choice(PIECES))
        parts.append(rng.choice(SPACES))
    if rng.random() < 0.5:
        parts.pop()
    return "".join(parts)


cases = []


def add(name, text):
    for params, tokenizer in TOKENIZERS.items():
        cases.append({"params": params, "name": name, "text": text, "sentences": tokenizer.tokenize(text)})


for i, text in enumerate(ADVERSARIAL):
    add(f"adversarial {i}", text)
for book, start in (("The_Adventures_of_Sherlock_Holmes.txt", 40), ("Emma.txt", 30), ("Peter_Pan.txt", 20),
                    ("The_Call_of_the_Wild.txt", 10), ("Kidnapped.txt", 25)):
    for j, text in enumerate(paragraphs(book, 8, start)):
        add(f"{book} paragraph {start + j}", text)
for book, start in (("The_Adventures_of_Sherlock_Holmes.txt", 5000), ("Pride_and_Prejudice.txt", 20000),
                    ("Anne_of_Green_Gables.txt", 3000)):
    add(f"{book} haystack words {start}..{start + 1500}", haystack(book, start, 1500))
rng = random.Random(SEED)
for i in range(250):
    add(f"random {i}", random_text(rng))


def digest(sentences):
    return hashlib.sha256("\0".join(sentences).encode("utf-8")).hexdigest()


BOOKS = ("The_Adventures_of_Sherlock_Holmes.txt", "Alices_Adventures_in_Wonderland.txt", "The_Call_of_the_Wild.txt")
books = []
for book in BOOKS:
    text = read_book(book)
    for params, tokenizer in TOKENIZERS.items():
        sentences = tokenizer.tokenize(text)
        books.append({"params": params, "file": book, "count": len(sentences), "sha256": digest(sentences)})

fixture = {
    "nltk": nltk.__version__,
    "python": sys.version.split()[0],
    "unicode": unicodedata.unidata_version,
    "seed": SEED,
    "trainedOn": TRAIN_BOOK,
    "cases": cases,
    "books": books,
}
with open(os.path.join(OUT, "sentences.json"), "w", encoding="utf-8") as f:
    json.dump(fixture, f, ensure_ascii=False, indent=0)
    f.write("\n")
print("wrote", len(cases), "cases,", len(books), "books;",
      {name: (len(p.abbrev_types), len(p.collocations), len(p.sent_starters), len(p.ortho_context)) for name, p in PARAMS.items()})
