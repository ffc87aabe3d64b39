"""Doctest outputs never print a float with more digits than every CPU and BLAS agree on.

The last bits of a floating-point result depend on the BLAS kernel and the CPU, so a
doctest that prints a full-precision repr (``1.4142135623730951``) passes on one
machine and fails on another. Examples round (``round(x, 6)``), print a tensor (4
decimals) or use ``# doctest: +ELLIPSIS``.
"""

from __future__ import annotations

import ast
import doctest
import re
from pathlib import Path

import hubrepro

SRC = Path(hubrepro.__file__).parent
# a float printed with 7 or more decimals: more than an example may promise
LONG_FLOAT = re.compile(r"(?<![\w.])-?\d+\.\d{7,}")


def _docstrings(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = [tree, *ast.walk(tree)]
    for node in nodes:
        if isinstance(
            node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        ):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield getattr(node, "name", path.stem), doc


def _long_float_examples():
    parser = doctest.DocTestParser()
    for path in sorted(SRC.rglob("*.py")):
        for name, doc in _docstrings(path):
            for ex in parser.get_examples(doc):
                if ex.options.get(doctest.ELLIPSIS):
                    continue
                if LONG_FLOAT.search(ex.want):
                    rel = path.relative_to(SRC.parent)
                    yield f"{rel}::{name}: {ex.source.strip()} -> {ex.want.strip()}"


def test_no_doctest_prints_a_full_precision_float():
    bad = list(_long_float_examples())
    assert not bad, "round these examples or use ELLIPSIS:\n" + "\n".join(bad)


def test_the_pattern_catches_a_full_precision_repr():
    assert LONG_FLOAT.search("1.4142135623730951")
    assert LONG_FLOAT.search("(0.5, -0.333333333)")
    assert not LONG_FLOAT.search("1.154701")
    assert not LONG_FLOAT.search("tensor([0.5000, 1.0000])")


KNOWN_CONTROL_CHARACTERS: set[str] = set()


def _control_characters():
    # a TeX command in a non-raw docstring becomes a control character: "\rm" a carriage
    # return, "\beta" a backspace, "\frac" a form feed, "\alpha" a bell
    bad = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f]|\r")
    for path in sorted(SRC.rglob("*.py")):
        for name, doc in _docstrings(path):
            if bad.search(doc):
                where = f"{path.relative_to(SRC.parent)}::{name}"
                if where not in KNOWN_CONTROL_CHARACTERS:
                    yield where


def test_no_docstring_holds_a_control_character():
    bad = list(_control_characters())
    assert not bad, 'make these docstrings raw (r"""..."""):\n' + "\n".join(bad)
