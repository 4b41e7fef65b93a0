"""Shared by scripts/make-ruler-*-fixtures.py: reading RULER's scripts with `ast`, and a recording
stand-in for `random` whose draws the tests replay through our builders (test/fixtures/ruler-replay.ts)."""
import ast
import importlib.util
import os
import random as real_random


def load_module(ruler_dir, path, name):
    """A RULER module that is safe to import (constants.py, template.py)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ruler_dir, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RecordingRandom:
    """`random` as RULER's generators use it, drawing from `rng` and recording every draw.

    `shuffles`: a dict to keep each `random.Random(seed).shuffle` permutation in by "seed:length"
    (they are fixed per seed and length), or None to record them as draws in call order.
    """

    def __init__(self, rng, shuffles=None):
        self.rng = rng
        self.shuffles = shuffles
        self.draws = []

    def _record(self, kind, value, recorded=None):
        self.draws.append([kind, value if recorded is None else recorded])
        return value

    def randint(self, low, high):
        return self._record("randint", self.rng.randint(low, high))

    def choice(self, seq):
        return self._record("choice", self.rng.choice(seq))

    def choices(self, population, k):
        value = self.rng.choices(population, k=k)
        return self._record("choices", value, "".join(value))

    def getrandbits(self, bits):
        value = self.rng.getrandbits(bits)
        return self._record("getrandbits", value, str(value))

    def sample(self, population, k):
        """Recorded as the indexes picked (our builders sample indexes and look the items up)."""
        indexes = self._record("sample", self.rng.sample(range(len(population)), k))
        return [population[i] for i in indexes]

    def Random(self, seed):
        """RULER's seeded shuffles: the real shuffle, its permutation recorded."""
        recorder = self

        class Seeded:
            def shuffle(self, items):
                permutation = list(range(len(items)))
                real_random.Random(seed).shuffle(permutation)
                items[:] = [items[i] for i in permutation]
                if recorder.shuffles is None:
                    recorder.draws.append(["shuffle", permutation])
                else:
                    recorder.shuffles[f"{seed}:{len(items)}"] = permutation

        return Seeded()


class Official:
    """One of RULER's generator scripts, read with `ast`: its functions and module-level statements as source."""

    def __init__(self, ruler_dir, path):
        self.source = open(os.path.join(ruler_dir, path), encoding="utf-8").read()
        self.tree = ast.parse(self.source)
        self.functions = {node.name: ast.get_source_segment(self.source, node)
                          for node in self.tree.body if isinstance(node, ast.FunctionDef)}

    def assignment(self, target, contains=""):
        """The (possibly nested) `target = ...` statement whose source contains `contains`."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == target:
                segment = ast.get_source_segment(self.source, node)
                if contains in segment:
                    return segment
        raise LookupError(f"no {target} = ...{contains}...")

    def literal(self, target, contains=""):
        """The value of a `target = <literal>` statement."""
        return ast.literal_eval(self.assignment(target, contains).split("=", 1)[1].strip())

    def top_level(self, starts):
        """Top-level statements whose source starts with one of `starts`, in file order."""
        return [ast.get_source_segment(self.source, node) for node in self.tree.body
                if ast.get_source_segment(self.source, node).startswith(starts)]

    def namespace(self, names, **globals_):
        """A module namespace holding `globals_` and the named functions of the script."""
        for name in names:
            exec(self.functions[name], globals_)
        return globals_
