"""Punkt parameters in punkt_tab form (nltk_data tokenizers/punkt_tab/<language>/), for the fixture scripts.

nltk 3.8 (Debian's python3-nltk) has no punkt_tab reader or writer: they came with nltk 3.8.2. These two functions
write and read the format as nltk's tabdata.py does: "\\n"-joined lines, abbreviations and sentence starters one a
line, collocations and orthographic contexts tab-separated. Lines are sorted so the files diff well.
"""
import os

from nltk.tokenize.punkt import PunktParameters

FILES = ("abbrev_types.txt", "collocations.tab", "sent_starters.txt", "ortho_context.tab")


def write_punkt_tab(params, folder):
    os.makedirs(folder, exist_ok=True)
    lines = {
        "abbrev_types.txt": sorted(params.abbrev_types),
        "collocations.tab": sorted("\t".join(pair) for pair in params.collocations),
        "sent_starters.txt": sorted(params.sent_starters),
        # zero flags are what an absent type has (nltk keeps them in a defaultdict(int))
        "ortho_context.tab": sorted(f"{typ}\t{flags}" for typ, flags in params.ortho_context.items() if flags),
    }
    for name in FILES:
        with open(os.path.join(folder, name), "w", encoding="utf-8", newline="") as f:
            f.write("\n".join(lines[name]))


def read_punkt_tab(folder):
    def lines(name):
        with open(os.path.join(folder, name), encoding="utf-8", newline="") as f:
            text = f.read()
        return text.split("\n") if text else []

    params = PunktParameters()
    params.abbrev_types = set(lines("abbrev_types.txt"))
    params.collocations = {tuple(line.split("\t")) for line in lines("collocations.tab")}
    params.sent_starters = set(lines("sent_starters.txt"))
    for line in lines("ortho_context.tab"):
        typ, flags = line.split("\t")
        params.ortho_context[typ] = int(flags)
    return params
