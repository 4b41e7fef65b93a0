"""Reading OpenBMB/InfiniteBench's own code for the fixture scripts (make-infinitebench-fixtures.py,
make-infinitebench-file-fixtures.py): its top-level functions as source text, to exec without the imports its
modules make at load time, and src/prompt.py as a module."""
import ast
import importlib.util
import os


def functions(ib, path):
    """Every top-level function of IB_DIR/path, by name, as its source text."""
    source = open(os.path.join(ib, path), encoding="utf-8").read()
    tree = ast.parse(source)
    return {node.name: ast.get_source_segment(source, node) for node in tree.body if isinstance(node, ast.FunctionDef)}


def prompt_module(ib):
    """IB_DIR/src/prompt.py, loaded (it imports nothing)."""
    spec = importlib.util.spec_from_file_location("ib_prompt", os.path.join(ib, "src/prompt.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
