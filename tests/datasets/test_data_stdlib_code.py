"""Extraction of the stdlib-code benchmark: rules, leaks, determinism, splits."""

from __future__ import annotations

import ast
import gzip
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubrepro.datasets import stdlib_code as sc
from hubrepro.datasets.manifest import build_stdlib_data, sidecar_file, verify_data

SOURCE = '''
"""Module docstring that must not matter."""

def public_function(a, b):
    """Add two numbers and return the sum.

    Second paragraph is not part of the summary.
    """
    # a comment
    return a + b


def _private_helper(x):
    """Return the square of the given value."""
    def inner(y):
        """Inner docstring text that must disappear too."""
        return y
    return inner(x) * x


def short_doc(x):
    """Too short here."""
    return x


def no_doc(x):
    return x


def leaky(x):
    """Raise an error when x is negative."""
    if x < 0:
        raise ValueError("Raise an error when x is negative.")
    return x


class Outer:
    """Class docstring that is not a pair."""

    def method(self):
        """Compute something for the outer class."""
        return 1

    class Inner:
        async def deep(self):
            """Wait for the inner event loop quietly."""
            return 2
'''


def test_docstring_summary_takes_the_first_paragraph():
    doc = """  First line of
        the summary.

        Details here.
    """
    assert sc.docstring_summary(doc) == "First line of the summary."
    assert sc.docstring_summary(None) == ""
    assert sc.docstring_summary("") == ""
    assert sc.docstring_summary("One.\n\n\nTwo.") == "One."


def test_pairs_from_source_follow_the_rules():
    pairs = {p["qualname"]: p for p in sc._pairs_from_source("pkg.mod", SOURCE)}
    # kept: public, private, method, nested-class async method; dropped: short,
    # undocumented, leaky (summary repeated in a literal)
    assert set(pairs) == {
        "public_function",
        "_private_helper",
        "Outer.method",
        "Outer.Inner.deep",
    }
    assert pairs["public_function"]["query"] == "Add two numbers and return the sum."
    assert pairs["public_function"]["module"] == "pkg.mod"
    # inner functions are part of their parent's code, with their docstring removed
    code = pairs["_private_helper"]["code"]
    assert "def inner(y):" in code
    assert "Inner docstring" not in code
    assert "Return the square" not in code
    # comments are dropped by ast.unparse; the code still parses and has no docstring
    assert "# a comment" not in pairs["public_function"]["code"]
    for p in pairs.values():
        tree = ast.parse(p["code"])
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                assert ast.get_docstring(node) is None


def test_syntax_errors_are_skipped():
    assert sc._pairs_from_source("bad", "def f(:\n    pass") == []


@pytest.fixture
def fake_stdlib(tmp_path):
    root = tmp_path / "lib"
    for rel in (
        "good.py",
        "pkg/__init__.py",
        "pkg/sub.py",
        "test/test_good.py",
        "pkg/tests/helper.py",
        "test_top.py",
        "idlelib/x.py",
        "tkinter/x.py",
        "turtledemo/x.py",
        "lib2to3/x.py",
        "ensurepip/x.py",
        "site-packages/thirdparty.py",
        "not-an-identifier/x.py",
    ):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(SOURCE)
    return root


def test_iter_stdlib_files_leaves_out_tests_and_excluded_packages(fake_stdlib):
    mods = [m for m, _ in sc.iter_stdlib_files(fake_stdlib)]
    assert mods == ["good", "pkg", "pkg.sub"]


def test_extraction_is_deterministic_and_ids_unique(fake_stdlib, tmp_path):
    a = sc.extract_stdlib_pairs(fake_stdlib)
    b = sc.extract_stdlib_pairs(fake_stdlib)
    assert a == b
    assert len(a) == 3 * 4
    ids = [p["id"] for p in a]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    e1 = sc.write_pairs(a, tmp_path / "a.jsonl.gz")
    e2 = sc.write_pairs(b, tmp_path / "b.jsonl.gz")
    assert e1["sha256"] == e2["sha256"]  # byte-reproducible
    assert (
        e1["sha256"]
        == hashlib.sha256((tmp_path / "a.jsonl.gz").read_bytes()).hexdigest()
    )
    assert sc.load_pairs(tmp_path / "a.jsonl.gz") == a


def test_write_pairs_refuses_to_overwrite(tmp_path):
    p = tmp_path / "x.jsonl.gz"
    sc.write_pairs([], p)
    with pytest.raises(FileExistsError, match="overwrite"):
        sc.write_pairs([], p)
    sc.write_pairs([{"id": "a", "module": "m"}], p, overwrite=True)
    assert sc.load_pairs(p) == [{"id": "a", "module": "m"}]


def test_build_refuses_to_overwrite_and_missing_file_is_clear(fake_stdlib, tmp_path):
    out = tmp_path / "d" / "pairs.jsonl.gz"
    entry = build_stdlib_data(stdlib_dir=fake_stdlib, out=out, manifest=None)
    assert entry["n_pairs"] == 12 and entry["n_modules"] == 3
    assert (
        json.loads(out.with_suffix("").with_suffix(".json").read_text())["sha256"]
        == entry["sha256"]
    )
    with pytest.raises(FileExistsError, match="overwrite"):
        build_stdlib_data(stdlib_dir=fake_stdlib, out=out, manifest=None)
    with pytest.raises(FileNotFoundError, match="hubrepro data build"):
        sc.load_pairs(tmp_path / "nope.jsonl.gz")


# the shipped file ------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    return sc.load_pairs()


def test_shipped_file_matches_its_checksums():
    assert verify_data() == []
    side = json.loads(sidecar_file().read_text())
    assert side["version"] == sc.DATA_VERSION
    assert side["extractor_version"] == sc.EXTRACTOR_VERSION


def test_verify_reports_a_checksum_mismatch(tmp_path):
    bad = tmp_path / "manifest.yml"
    bad.write_text("datasets:\n  stdlib-code:\n    sha256: deadbeef\n")
    problems = verify_data(bad)
    assert len(problems) == 1 and "deadbeef" in problems[0]


def test_shipped_pairs_obey_the_rules(shipped):
    assert 4000 <= len(shipped) <= 6000
    assert len({p["id"] for p in shipped}) == len(shipped)
    excluded = sc.EXCLUDED_TOP_LEVEL
    for p in shipped:
        assert p["module"].split(".")[0] not in excluded
        assert len(p["query"].split()) >= sc.MIN_WORDS
        # no docstring text leaks into the code side
        assert sc._norm(p["query"]) not in sc._norm(p["code"])


def test_shipped_code_holds_no_docstring(shipped):
    for p in shipped[::7]:  # a seventh of the file keeps the test fast
        tree = ast.parse(p["code"])
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                assert ast.get_docstring(node) is None, p["id"]


def test_shipped_file_is_gzip_jsonl_sorted(shipped):
    with gzip.open(sc.data_file(), "rt", encoding="utf-8") as fh:
        first = json.loads(fh.readline())
    assert first == shipped[0]
    assert [p["id"] for p in shipped] == sorted(p["id"] for p in shipped)


@pytest.mark.parametrize("protocol", sc.PROTOCOLS)
def test_splits_are_leak_free(shipped, protocol):
    test, bank = sc.split_pairs(shipped, protocol=protocol, seed=0)
    assert len(test) == sc.N_TEST
    assert not set(test) & set(bank)
    assert len(set(test)) == len(test) and len(set(bank)) == len(bank)
    assert len(test) + len(bank) >= 0.9 * len(
        shipped
    )  # only a boundary group is dropped
    for key in ("query", "code"):
        assert not {shipped[i][key] for i in test} & {shipped[i][key] for i in bank}
    if protocol == "by-module":
        tops = [
            {shipped[i]["module"].split(".")[0] for i in idx} for idx in (test, bank)
        ]
        assert not tops[0] & tops[1]
        mods = [{shipped[i]["module"] for i in idx} for idx in (test, bank)]
        assert not mods[0] & mods[1]


def test_splits_are_deterministic_and_seeded(shipped):
    a = sc.split_pairs(shipped, seed=3)
    assert a == sc.split_pairs(shipped, seed=3)
    assert a[0] != sc.split_pairs(shipped, seed=4)[0]


def test_split_rejects_bad_arguments(shipped):
    with pytest.raises(ValueError, match="`protocol` must be one of"):
        sc.split_pairs(shipped, protocol="by-file")
    with pytest.raises(ValueError, match="`n_test`"):
        sc.split_pairs(shipped, n_test=0)
    with pytest.raises(TypeError, match="`seed`"):
        sc.split_pairs(shipped, seed="0")


records = st.lists(
    st.tuples(
        st.sampled_from("abcdef"),
        st.sampled_from("uvwxyz"),
        st.sampled_from(["m1", "m2.a", "m2.b", "m3"]),
    ),
    min_size=3,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(recs=records, seed=st.integers(0, 2**16), protocol=st.sampled_from(sc.PROTOCOLS))
def test_groups_never_straddle_splits(recs, seed, protocol):
    pairs = [{"query": q, "code": c, "module": m} for q, c, m in recs]
    n_test = max(1, len(pairs) // 3)
    test, bank = sc.split_pairs(pairs, protocol=protocol, n_test=n_test, seed=seed)
    assert len(test) == n_test
    assert not set(test) & set(bank)
    keys = ["query", "code"] + (["top"] if protocol == "by-module" else [])
    for key in keys:

        def val(i, key=key):
            return pairs[i]["module"].split(".")[0] if key == "top" else pairs[i][key]

        assert not {val(i) for i in test} & {val(i) for i in bank}


def test_cli_build_keeps_the_shipped_file(capsys):
    from hubrepro.cli import main

    before = sc.data_file().read_bytes()
    assert main(["data", "build", "--no-embed"]) == 0
    assert "kept" in capsys.readouterr().out
    assert sc.data_file().read_bytes() == before
