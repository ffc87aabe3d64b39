"""The classroom machinery: solution markers, student versions, per-student data, grading.

The round trip proves what a teacher relies on: every authored solution passes the
grader with full marks, and every untouched student version fails it with a non-zero
exit status. The forgeries prove that the grader, not the submission, decides the
points: submissions that implement nothing but attack the grader score 0.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hubrepro.classroom import (
    ASSIGNMENTS,
    Case,
    _harness,
    build_assignments,
    grade,
    grading,
    list_assignments,
    reference,
    solution_source,
    strip_solutions,
    student_data,
    student_seed,
    submission_cells,
)
from hubrepro.classroom.authoring import BEGIN_SOLUTION, END_SOLUTION, STUB
from hubrepro.classroom.core import ID_CHECK, hidden_seed
from hubrepro.classroom.isolation import bwrap_status
from hubrepro.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "assignments"


# ------------------------------------------------------------------ markers


def test_strip_solutions_hand_example():
    src = textwrap.dedent(
        """\
        import torch

        def f(x):
            y = x + 1
            ### BEGIN SOLUTION
            z = y * 2
            return z
            ### END SOLUTION

        ### BEGIN SOLUTION
        answer = f(1)
        ### END SOLUTION
        print("done")
        """
    )
    want = textwrap.dedent(
        f"""\
        import torch

        def f(x):
            y = x + 1
            {STUB}

        {STUB}
        print("done")
        """
    )
    assert strip_solutions(src) == want
    assert solution_source(src) == src.replace("    ### BEGIN SOLUTION\n", "").replace(
        "    ### END SOLUTION\n", ""
    ).replace("### BEGIN SOLUTION\n", "").replace("### END SOLUTION\n", "")


def test_strip_solutions_custom_stub_and_no_markers():
    assert strip_solutions("a = 1\n") == "a = 1\n"
    assert (
        strip_solutions("### BEGIN SOLUTION\nx = 2\n### END SOLUTION\n", stub="x = ...")
        == "x = ...\n"
    )


@pytest.mark.parametrize(
    ("src", "line"),
    [
        ("### BEGIN SOLUTION\nx = 1\n", "line 1"),  # never closed
        ("x = 1\n### END SOLUTION\n", "line 2"),  # end without begin
        (
            "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n",
            "line 2",
        ),  # nested
        (
            "def f():\n    ### BEGIN SOLUTION\n    pass\n### END SOLUTION\n",
            "lines 2 and 4",
        ),  # misaligned
    ],
)
def test_malformed_markers_name_the_line(src, line):
    for func in (strip_solutions, solution_source):
        with pytest.raises(ValueError, match=line):
            func(src)


def test_marker_functions_refuse_non_text():
    with pytest.raises(TypeError, match="`source` must be a str"):
        strip_solutions(b"### BEGIN SOLUTION")
    with pytest.raises(TypeError, match="`source` must be a str"):
        solution_source(None)


_line = st.text(alphabet="abcdefxyz =+()1234", min_size=0, max_size=12).filter(
    lambda s: "###" not in s
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(_line, max_size=4), st.lists(_line, min_size=1, max_size=4)),
        max_size=4,
    ),
    st.lists(_line, max_size=3),
)
def test_markers_property(chunks, tail):
    # source = (outside lines, solution block)* + tail
    src_lines, outside, hidden = [], [], []
    for out, sol in chunks:
        src_lines += out + [BEGIN_SOLUTION] + sol + [END_SOLUTION]
        outside += out + [STUB]
        hidden += sol
    src_lines += tail
    outside += tail
    src = "".join(line + "\n" for line in src_lines)
    assert strip_solutions(src) == "".join(line + "\n" for line in outside)
    assert strip_solutions(src).count(STUB) == len(chunks)
    kept = solution_source(src)
    assert BEGIN_SOLUTION not in kept and END_SOLUTION not in kept
    assert kept == "".join(
        line + "\n" for line in src_lines if line not in (BEGIN_SOLUTION, END_SOLUTION)
    )


# ------------------------------------------------------------------ data variants


def test_student_data_is_per_student_and_reproducible():
    a = student_data("a1_k_occurrence_skewness", "ada")
    b = student_data("a1_k_occurrence_skewness", "ada")
    c = student_data("a1_k_occurrence_skewness", "grace")
    assert torch.equal(a["sims"], b["sims"]) and a["k"] == b["k"]
    assert a["seed"] != c["seed"]
    assert a["sims"].shape != c["sims"].shape or not torch.equal(a["sims"], c["sims"])
    # the seed depends on the assignment too, and ignores surrounding blanks in the id
    assert student_seed("a1_k_occurrence_skewness", "ada") != student_seed(
        "a2_inverted_softmax", "ada"
    )
    assert student_seed("a2_inverted_softmax", " ada ") == student_seed(
        "a2_inverted_softmax", "ada"
    )


def test_student_data_variants_vary_across_a_class():
    seen = {
        (d["sims"].shape, d["k"])
        for d in (student_data("a1_k_occurrence_skewness", f"s{i}") for i in range(12))
    }
    assert len(seen) > 6


def test_student_data_bad_inputs():
    with pytest.raises(
        ValueError, match="`assignment` must be one of a1_k_occurrence_skewness"
    ):
        student_data("a9_nothing", "ada")
    with pytest.raises(ValueError, match="`student_id` must be a non-empty str"):
        student_data("a1_k_occurrence_skewness", "  ")
    with pytest.raises(TypeError, match="`student_id` must be a non-empty str"):
        student_data("a1_k_occurrence_skewness", 7)


# ------------------------------------------------------------------ build


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("assignments")
    build_assignments(SRC, out)
    return out


def test_every_authored_assignment_is_graded():
    stems = sorted(p.stem for p in SRC.glob("*.md") if p.name.lower() != "readme.md")
    assert stems == sorted(list_assignments())
    assert len(stems) >= 4


def test_build_writes_student_and_solution_versions(built):
    import nbformat

    manifest = json.loads((built / "manifest.json").read_text())
    assert sorted(manifest) == sorted(ASSIGNMENTS)
    for name, entry in manifest.items():
        assert entry["checks"] and all(c["points"] > 0 for c in entry["checks"])
        assert entry["checks"][0]["name"] == ID_CHECK
        assert entry["max_score"] == sum(c["points"] for c in entry["checks"])
        student = nbformat.read(built / entry["student"], as_version=4)
        solution = nbformat.read(built / entry["solution"], as_version=4)
        assert len(student.cells) == len(solution.cells)
        st_code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
        so_code = "\n".join(c.source for c in solution.cells if c.cell_type == "code")
        assert "SOLUTION" not in st_code and "SOLUTION" not in so_code, name
        assert STUB in st_code and STUB not in so_code, name
        authored = (SRC / f"{name}.md").read_text()
        assert st_code.count(STUB) == authored.count(BEGIN_SOLUTION)
        # the parameters tag survives, so papermill can set STUDENT_ID
        assert any("parameters" in c.metadata.get("tags", []) for c in student.cells)
        assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")


@pytest.mark.parametrize("stage", ["write", "rename"])
def test_kill_during_a_rebuild_keeps_the_previous_files(tmp_path, stage):
    # A SIGKILL while a notebook or the manifest is written leaves the previous build
    # readable (every file goes through hubrepro.io.atomic_write).
    import nbformat

    from _kill import kill_during_write, temporaries

    name = sorted(list_assignments())[0]
    out = tmp_path / "out"
    build_assignments(SRC, out, names=[name])
    student = out / "student" / f"{name}.ipynb"
    before = student.read_bytes()
    kill_during_write(
        f"from hubrepro.classroom import build_assignments\n"
        f"build_assignments({str(SRC)!r}, {str(out)!r}, names=[{name!r}])\n",
        stage,
        tmp_path,
    )
    assert student.read_bytes() == before
    nbformat.reads(before.decode("utf-8"), as_version=4)
    json.loads((out / "manifest.json").read_text())
    assert len(temporaries(out / "student")) == 1  # the killed writer's, hidden
    build_assignments(SRC, out, names=[name])  # the next build clears it
    assert temporaries(out / "student") == []


def test_build_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="`src_dir` must be an existing folder"):
        build_assignments(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(ValueError, match="`names` must be names of assignments"):
        build_assignments(SRC, tmp_path / "out", names=["a0_missing"])
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.md").write_text(
        "---\njupytext: {}\n---\n\n```{code-cell} ipython3\nx = 1\n```\n"
    )
    with pytest.raises(ValueError, match="at least one `### BEGIN SOLUTION` block"):
        build_assignments(tmp_path / "src", tmp_path / "out")
    bad = "---\njupytext: {}\n---\n\n```{code-cell} ipython3\n### BEGIN SOLUTION\nx = 1\n```\n"
    (tmp_path / "src" / "x.md").write_text(bad)
    with pytest.raises(ValueError, match=r"x\.md.*unclosed block opened on line 1"):
        build_assignments(tmp_path / "src", tmp_path / "out")


# ------------------------------------------------------------------ round trip


def test_every_reference_of_every_assignment_exists():
    # a renamed library function must fail here (and in the round trip), not be skipped
    for spec in ASSIGNMENTS.values():
        for dotted in spec.references:
            assert callable(reference(dotted)), dotted


def _assert_round_trip(name: str, built: Path) -> None:
    solved = grade(name, built / "solution" / f"{name}.ipynb", student_id="example")
    assert solved.passed, solved.to_text()
    assert solved.score == solved.max_score == ASSIGNMENTS[name].max_score > 1
    assert not solved.cell_errors, solved.cell_errors
    untouched = grade(name, built / "student" / f"{name}.ipynb", student_id="example")
    assert not untouched.passed
    assert untouched.score <= 1  # only "submitted for this student"
    assert any("NotImplementedError" in e for e in untouched.cell_errors)
    assert all(r.feedback for r in untouched.results if not r.passed)


@pytest.mark.parametrize("name", sorted(ASSIGNMENTS))
def test_solution_passes_and_student_version_fails(name, built):
    _assert_round_trip(name, built)


def test_renamed_reference_fails_the_round_trip(built, monkeypatch):
    import hubrepro.hubness

    monkeypatch.delattr(hubrepro.hubness, "skewness")
    with pytest.raises(AssertionError, match="not available in this installation"):
        _assert_round_trip("a1_k_occurrence_skewness", built)


class _LocalChild:
    """The child's side of the protocol run in this process, through the wire format.

    Only for tests: fast enough to grade the solutions for many students.
    """

    def __init__(self, cells: list[str]) -> None:
        self.ns: dict = {"__name__": "__submission__"}
        reply = _harness._run_cells(self.ns, cells)
        assert not reply["cell_errors"], reply["cell_errors"]

    @staticmethod
    def _wire(reply, bufs):
        stream = io.BytesIO(_harness.pack(reply, bufs))
        reply, bufs = _harness.unpack(stream.read)
        reply["_buffers"] = bufs
        return reply

    def call(self, function, args, kwargs, *, grad=(), return_args=False):
        bufs: list[bytes] = []
        header = {
            "function": function,
            "args": _harness.encode(tuple(args), bufs),
            "kwargs": _harness.encode(dict(kwargs), bufs),
            "grad": list(grad),
            "return_args": return_args,
        }
        header, bufs = _harness.unpack(io.BytesIO(_harness.pack(header, bufs)).read)
        return self._wire(*_harness._call(self.ns, header, bufs))

    def value(self, name):
        return self._wire(*_harness._value(self.ns, {"name": name}))


@pytest.mark.parametrize("name", sorted(ASSIGNMENTS))
def test_solutions_pass_for_every_student_and_salt(name, built):
    # hidden inputs are drawn per student (and per salt): no draw may fail a correct solution
    cells = submission_cells(built / "solution" / f"{name}.ipynb")
    assert "STUDENT_ID" in cells[0]
    spec = ASSIGNMENTS[name]
    for i in range(8):
        sid, salt = f"student-{i}", ("" if i % 2 else f"secret-{i}")
        child = _LocalChild([f"STUDENT_ID = {sid!r}", *cells[1:]])
        data, cache = student_data(name, sid), {}
        for check in spec.checks:
            case = Case(name, sid, check.name, data, salt, cache)
            result = grading._run_check(check, case, child)
            assert result.passed, (sid, salt, result)


def test_hidden_inputs_differ_between_students_checks_and_salts():
    seeds = {
        hidden_seed("a1_k_occurrence_skewness", sid, check, salt)
        for sid in ("ada", "grace")
        for check in (
            "k_occurrence matches the library",
            "skewness matches the library",
        )
        for salt in ("", "s3cret")
    }
    assert len(seeds) == 8
    spec = ASSIGNMENTS["a1_k_occurrence_skewness"]
    check = spec.checks[0]
    a, b = (
        check.inputs(Case(spec.name, sid, check.name, {})) for sid in ("ada", "grace")
    )
    assert any(
        x.args[0].shape != y.args[0].shape or not torch.equal(x.args[0], y.args[0])
        for x, y in zip(a, b, strict=True)
    )


def test_answers_are_checked_on_the_graded_students_data(built):
    name = "a1_k_occurrence_skewness"
    report = grade(
        name, built / "solution" / f"{name}.ipynb", student_id="someone-else"
    )
    by_name = {r.name: r for r in report.results}
    assert not by_name[ID_CHECK].passed
    assert "'example', not 'someone-else'" in by_name[ID_CHECK].feedback
    assert not by_name["answer_skewness on your data"].passed
    # the functions themselves are still correct
    assert (
        by_name["k_occurrence matches the library"].passed
        and by_name["skewness matches the library"].passed
    )


A1_BUGGY = """
import torch
from hubrepro.classroom import student_data

STUDENT_ID = "ada"
data = student_data("a1_k_occurrence_skewness", STUDENT_ID)

# %%
def k_occurrence(sims, k):
    return torch.bincount(sims.topk(k, dim=1).indices.reshape(-1), minlength=sims.shape[1])

# %%
def skewness(n_k):
    # the unbiased (sample) moments: not what the assignment asks for
    x = n_k.double()
    d = x - x.mean()
    return float((d**3).sum() / (len(x) - 1) / ((d**2).sum() / (len(x) - 1)) ** 1.5)

# %%
n_k = k_occurrence(data["sims"], data["k"])
answer_skewness = skewness(n_k)
answer_top_hub = int(n_k.argmax())
"""


def test_partly_wrong_submission_gets_partial_credit(tmp_path):
    name = "a1_k_occurrence_skewness"
    sub = tmp_path / "ada.py"
    sub.write_text(A1_BUGGY)
    report = grade(name, sub)
    assert report.student_id == "ada"
    by_name = {r.name: r for r in report.results}
    assert by_name["k_occurrence matches the library"].passed
    assert by_name["answer_top_hub on your data"].passed
    assert not by_name["skewness matches the library"].passed
    assert (
        "expected" in by_name["skewness matches the library"].feedback
        and "got" in by_name["skewness matches the library"].feedback
    )
    assert not by_name["answer_skewness on your data"].passed
    assert 0 < report.score < report.max_score and not report.passed


A5_BUGGY = """
import math
import torch
from hubrepro.classroom import student_data

STUDENT_ID = "example"
data = student_data("a5_centrality_weight", STUDENT_ID)

# %%
def centrality_weights(global_emb, local, kappa):
    # the sample's own local feature kept in the mean: not what the assignment asks for
    g = global_emb / global_emb.norm(dim=1, keepdim=True)
    t = local / local.norm(dim=1, keepdim=True)
    return torch.exp(kappa * (g @ t.T).mean(dim=1))

# %%
def antihub_rate(sims, k):
    n_k = torch.bincount(sims.topk(k, dim=1).indices.reshape(-1), minlength=sims.shape[1])
    return float((n_k == 0).double().mean())

# %%
w = centrality_weights(data["batch_global"], data["batch_local"], data["kappa"])
answer_weight_ratio = float(w.max() / w.min())
answer_infonce_rates = [antihub_rate(s, data["k"]) for s in data["sims_infonce"]]
answer_weighted_rates = [antihub_rate(s, data["k"]) for s in data["sims_weighted"]]
d = [b - a for a, b in zip(answer_infonce_rates, answer_weighted_rates)]
answer_delta = sum(d) / 2
# the standard error without the t quantile: far too narrow an interval
half = math.sqrt(sum((x - answer_delta) ** 2 for x in d)) / math.sqrt(2)
answer_interval = (answer_delta - half, answer_delta + half)
"""


def test_a5_wrong_centrality_and_interval_lose_their_points(tmp_path):
    # a submission that keeps each sample's own feature in its centrality and forgets the
    # t quantile loses exactly the checks that depend on those, and keeps the others
    name = "a5_centrality_weight"
    sub = tmp_path / "example.py"
    sub.write_text(A5_BUGGY)
    report = grade(name, sub)
    by_name = {r.name: r for r in report.results}
    assert by_name[ID_CHECK].passed
    weight = by_name["centrality_weights matches the library"]
    assert not weight.passed and "own local feature left out" in weight.feedback
    assert not by_name["answer_weight_ratio on your data"].passed
    assert by_name["antihub_rate matches the library"].passed
    assert by_name["answer_infonce_rates and answer_weighted_rates on your data"].passed
    # this student's two seeds change the anti-hub rate differently (a non-zero
    # spread), so the missing t quantile shows in the interval
    d = student_data(name, "example")
    changes = {
        float(
            reference("hubrepro.hubness.antihub_rate")(
                reference("hubrepro.hubness.k_occurrence")(w, k=d["k"])
            )
            - reference("hubrepro.hubness.antihub_rate")(
                reference("hubrepro.hubness.k_occurrence")(i, k=d["k"])
            )
        )
        for i, w in zip(d["sims_infonce"], d["sims_weighted"], strict=True)
    }
    assert len(changes) == 2
    interval = by_name["answer_delta and answer_interval on your data"]
    assert "answer_interval" in interval.feedback
    lost = {n for n, r in by_name.items() if not r.passed}
    assert report.score == report.max_score - sum(
        r.points for r in report.results if r.name in lost
    )
    assert lost == {
        "centrality_weights matches the library",
        "answer_weight_ratio on your data",
        "answer_delta and answer_interval on your data",
    }


def test_mutating_submission_is_caught(tmp_path):
    sub = tmp_path / "m.py"
    sub.write_text(
        "import torch\nSTUDENT_ID = 'x'\n"
        "def inverted_softmax(sims, bank_query_sims, beta):\n"
        "    sims.mul_(beta)\n"
        "    return sims - torch.logsumexp(beta * bank_query_sims, dim=0)\n"
    )
    by_name = {r.name: r for r in grade("a2_inverted_softmax", sub).results}
    assert not by_name["inputs are not modified"].passed
    assert (
        "modified its input argument 1" in by_name["inputs are not modified"].feedback
    )
    # the function itself is right: mutation is the only fault
    assert by_name["rankings match the library's IS"].passed


def test_grade_bad_inputs(tmp_path):
    with pytest.raises(
        FileNotFoundError, match="`submission` must be an existing file"
    ):
        grade("a1_k_occurrence_skewness", tmp_path / "missing.ipynb")
    with pytest.raises(ValueError, match="`assignment` must be one of"):
        grade("nope", tmp_path / "missing.ipynb")
    (tmp_path / "s.txt").write_text("x = 1\n")
    with pytest.raises(ValueError, match="`submission` must be a .ipynb notebook"):
        grade("a1_k_occurrence_skewness", tmp_path / "s.txt")
    (tmp_path / "s.ipynb").write_text('{"not": "a notebook"}')
    with pytest.raises(ValueError, match="`submission` must be a notebook jupytext"):
        grade("a1_k_occurrence_skewness", tmp_path / "s.ipynb")
    (tmp_path / "s.py").write_text("x = 1\n")
    for bad in (0, -5, float("nan"), float("inf"), "3"):
        with pytest.raises(ValueError, match="`timeout` must be a positive number"):
            grade("a1_k_occurrence_skewness", tmp_path / "s.py", timeout=bad)
    with pytest.raises(ValueError, match="`memory_mb` must be an integer"):
        grade("a1_k_occurrence_skewness", tmp_path / "s.py", memory_mb=10)
    with pytest.raises(ValueError, match="`sandbox` must be one of auto, bwrap, none"):
        grade("a1_k_occurrence_skewness", tmp_path / "s.py", sandbox="docker")
    with pytest.raises(ValueError, match="`student_id` must be a non-empty str"):
        grade("a1_k_occurrence_skewness", tmp_path / "s.py", student_id=" ")


def test_missing_student_id_is_a_failed_check(tmp_path):
    sub = tmp_path / "anon.py"
    sub.write_text("x = 1\n")
    report = grade("a3_hubness_vs_dimension", sub)
    assert report.results[0].name == ID_CHECK and not report.results[0].passed
    assert report.student_id == "unknown"
    assert report.score == 0


# ------------------------------------------------------------------ wire format


def test_wire_format_round_trips_plain_data():
    import numpy as np

    value = {
        "t": torch.arange(6, dtype=torch.float32).reshape(2, 3).requires_grad_(True),
        "bf": torch.ones(2, dtype=torch.bfloat16),
        "a": np.array([1, 2], dtype=">i4"),
        "s": np.int64(3),
        "loss": torch.tensor(1.5, dtype=torch.float64),
        "f": np.float64(2.5),  # a float subclass: a plain float
        "nested": [1, 2.5, "x", None, True, (3, complex(1, 2))],
        "odd": object(),
    }
    bufs: list[bytes] = []
    node = _harness.encode(value, bufs)
    header, bufs = _harness.unpack(io.BytesIO(_harness.pack({"v": node}, bufs)).read)
    back = _harness.decode(header["v"], bufs)
    assert (
        torch.equal(back["t"].detach(), value["t"].detach()) and back["t"].requires_grad
    )
    assert back["bf"].dtype == torch.bfloat16
    assert back["a"].tolist() == [1, 2] and back["a"].dtype.isnative
    assert isinstance(back["s"], np.int64) and back["s"] == 3
    assert back["loss"].shape == () and float(back["loss"]) == 1.5
    assert type(back["f"]) is float and back["f"] == 2.5
    assert back["nested"] == [1, 2.5, "x", None, True, (3, complex(1, 2))]
    assert isinstance(back["odd"], _harness.Unsupported)
    assert back["odd"].type_name == "object"


def test_wire_format_refuses_headers_nested_too_deep():
    deep = b"[" * 100_000 + b"]" * 100_000
    msg = _harness.MAGIC + len(deep).to_bytes(4, "little") + bytes(4) + deep
    with pytest.raises(_harness.ProtocolError, match="not JSON"):
        _harness.unpack(io.BytesIO(msg).read)
    bufs: list[bytes] = []
    nested: list = []
    for _ in range(100):
        nested = [nested]
    node = _harness.encode(nested, bufs)  # cut at MAX_DEPTH, not a RecursionError
    assert "nesting deeper" in json.dumps(node)


def test_wire_format_never_unpickles():
    import pickle

    import numpy as np

    obj = io.BytesIO()
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(_harness.ProtocolError, match="not a valid .npy"):
        _harness.decode({"t": "ndarray", "buf": 0}, [obj.getvalue()])
    with pytest.raises(_harness.ProtocolError):
        _harness.decode({"t": "tensor", "buf": 0}, [pickle.dumps(torch.ones(2))])
    with pytest.raises(_harness.ProtocolError, match="not in the grader's format"):
        _harness.unpack(io.BytesIO(pickle.dumps({"op": "result"}) + b"\0" * 12).read)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["t", "v", "items", "buf", "re"]), inner)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_json, st.lists(st.binary(max_size=64), max_size=2))
def test_decode_of_anything_is_a_value_or_a_protocol_error(node, bufs):
    # what the child sends is untrusted: decoding may refuse it, never crash otherwise
    try:
        _harness.decode(node, bufs)
    except _harness.ProtocolError:
        pass


# ------------------------------------------------------------------ forgeries


def _pids_with(token: str) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if token.encode() in f.read():
                        pids.append(int(name))
            except OSError:
                continue
    return pids


_FAKE_REPORT = {
    "assignment": "a1_k_occurrence_skewness",
    "student_id": "ada",
    "submission": "forged.py",
    "results": [
        {
            "name": "k_occurrence matches the library",
            "points": 10,
            "earned": 10,
            "feedback": "",
            "error": False,
        }
    ],
    "cell_errors": [],
    "score": 10,
    "max_score": 10,
    "passed": True,
}

FORGERIES = {
    # the old grader read the child's last stdout line as the report
    "atexit_stdout_report": f"""
import atexit, json, sys
fake = {_FAKE_REPORT!r}
atexit.register(lambda: sys.__stdout__.write(json.dumps(fake) + "\\n"))
print(json.dumps(fake))
""",
    # the old grader ran its checks in the submission's process
    "patched_grading_module": """
import sys
g = sys.modules["hubrepro.classroom.grading"]
g._run_check = lambda c, ctx: g.CheckResult(c.name, c.points, c.points, "")
""",
    "patched_grading_module_by_import": """
import hubrepro.classroom.grading as g
g._run_check = lambda c, ctx: g.CheckResult(c.name, c.points, c.points, "")
""",
    # the old grader only scanned the source text for `hubrepro.hubness`
    "reference_through_importlib": """
import importlib
h = importlib.import_module("hubrepro." + "hubness")
def k_occurrence(sims, k):
    return h.k_occurrence(sims, k=k)
skewness = h.skewness
""",
    # a report written into every descriptor, the grader's channel among them
    "forged_channel_messages": f"""
import json, os
fake = json.dumps({_FAKE_REPORT!r}).encode() + b"\\n"
msg = json.dumps({{"op": "ran", "cell_errors": []}}).encode()
frame = b"HRG1" + len(msg).to_bytes(4, "little") + bytes(4) + msg
for fd in range(1, 256):
    for data in (fake, frame):
        try:
            os.write(fd, data)
        except OSError:
            pass
""",
    # objects that claim to equal anything, and a float that claims to be the answer
    "always_equal_objects": """
class Anything(float):
    def __eq__(self, other):
        return True
    __ne__ = lambda self, other: False
    long = cpu = double = lambda self: self
    sum = max = lambda self, *a, **k: self
class Blob:
    __eq__ = lambda self, other: True
    __float__ = lambda self: 0.0
    __index__ = __int__ = lambda self: 0
def k_occurrence(sims, k):
    return Blob()
def skewness(n_k):
    return Anything(-1.0)
answer_skewness = Anything(-1.0)
answer_top_hub = Blob()
""",
    "sys_exit_zero": "import sys\nsys.exit(0)\n",
    "os_exit_zero": "import os\nos._exit(0)\n",
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forged_submissions_score_zero(tmp_path, forgery):
    sub = tmp_path / f"{forgery}.py"
    sub.write_text(FORGERIES[forgery])
    report = grade("a1_k_occurrence_skewness", sub, student_id="ada", sandbox="none")
    assert report.score == 0, report.to_text()
    assert [r.name for r in report.results][1:] == [
        c.name for c in ASSIGNMENTS["a1_k_occurrence_skewness"].checks
    ]
    assert all(r.feedback for r in report.results)
    if forgery == "reference_through_importlib":
        assert (
            "hubrepro.hubness is not available while grading" in report.cell_errors[0]
        )
    if forgery == "sys_exit_zero":
        assert (
            "SystemExit: 0 (sys.exit() does not stop the grader"
            in report.cell_errors[0]
        )
    if forgery == "os_exit_zero":
        assert "ended with exit status 0" in report.results[1].feedback


def test_submission_cannot_read_files_by_relative_path(tmp_path):
    # the teacher's answer key next to the submissions folder
    name = "a1_k_occurrence_skewness"
    d = student_data(name, "ada")
    key = reference("hubrepro.hubness.skewness")(
        reference("hubrepro.hubness.k_occurrence")(d["sims"], k=d["k"])
    )
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "teacher_secret.txt").write_text(repr(key))
    (tmp_path / "sub").mkdir()
    sub = tmp_path / "sub" / "peek.py"
    sub.write_text(
        'answer_skewness = float(open("../other/teacher_secret.txt").read())\n'
    )
    report = grade(name, sub, student_id="ada", sandbox="none")
    assert report.score == 0, report.to_text()
    assert "FileNotFoundError" in report.cell_errors[0]


def test_library_is_hidden_from_the_submission(tmp_path):
    d = student_data("a1_k_occurrence_skewness", "ada")
    total, shape = float(d["sims"].double().sum()), tuple(d["sims"].shape)
    cells = [
        "from hubrepro.hubness import k_occurrence",
        "import hubrepro.hubness as h",
        "from hubrepro import similarity, hubness",
        "import hubrepro\nf = hubrepro.hubness.skewness",
        "import importlib\nimportlib.import_module('hubrepro.' + 'retrieval')",
        "from hubrepro.classroom import student_data\nd = student_data('a1_k_occurrence_skewness', 'ada')",
        # the grader serves the student's own data
        f"assert tuple(d['sims'].shape) == {shape!r} and float(d['sims'].double().sum()) == {total!r}",
        "student_data('a9_nothing', 'ada')",
    ]
    sub = tmp_path / "imports.py"
    sub.write_text("".join(f"# %%\n{c}\n" for c in cells))
    report = grade("a1_k_occurrence_skewness", sub, student_id="ada", sandbox="none")
    assert len(report.cell_errors) == 6, report.cell_errors
    for i, err in enumerate(report.cell_errors[:5], start=1):
        assert err.startswith(f"cell {i}: ") and "not available while grading" in err
    assert report.cell_errors[5].startswith(
        "cell 8: ValueError: student_data: `assignment` must be one of"
    )


def test_properties_earn_nothing_for_a_wrong_function(tmp_path):
    # keeping the shape, or leaving the inputs alone, is no achievement for `return sims`
    sub = tmp_path / "lazy.py"
    sub.write_text(
        "STUDENT_ID = 'x'\n"
        "def inverted_softmax(sims, bank_query_sims, beta):\n"
        "    return sims.clone()\n"
    )
    report = grade("a2_inverted_softmax", sub, sandbox="none")
    assert report.score == 1, report.to_text()  # the STUDENT_ID only
    by_name = {r.name: r for r in report.results}
    assert (
        "ranks the gallery differently" in by_name["inputs are not modified"].feedback
    )


@pytest.mark.parametrize("sandbox", ["none", "bwrap"])
def test_grandchild_does_not_survive_the_timeout(tmp_path, sandbox):
    if sandbox == "bwrap" and bwrap_status()[0] is None:
        pytest.skip(bwrap_status()[1])
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("needs /proc to find the grandchild")
    token = f"hubrepro-grandchild-{uuid.uuid4().hex}"
    sub = tmp_path / "spawn.py"
    sub.write_text(
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {token!r}],"
        " start_new_session=True, stdin=subprocess.DEVNULL,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "while True:\n    time.sleep(0.05)\n"
    )
    seen, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            if _pids_with(token):
                seen.append(True)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        report = grade(
            "a1_k_occurrence_skewness", sub, student_id="x", timeout=8, sandbox=sandbox
        )
    finally:
        stop.set()
        watcher.join()
    assert seen, "the grandchild never started: the test proves nothing"
    assert not _pids_with(token), "a grandchild survived the grading"
    assert "ran longer than 8 s" in report.results[0].feedback
    assert report.score == 0


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="address-space limits are Linux's"
)
def test_resource_limits_reach_the_submission(tmp_path):
    sub = tmp_path / "greedy.py"
    sub.write_text(
        "# %%\nhoard = bytearray(1 << 30)\n"  # 1 GB beyond a 256 MB allowance
        "# %%\nwith open('big.bin', 'wb') as f:\n    f.write(bytes(100 << 20))\n"
        "# %%\nimport os\nprint(sorted(os.environ))\nenv = sorted(os.environ)\n"
    )
    os.environ["HUBREPRO_TEACHER_TOKEN"] = "do-not-leak"
    try:
        report = grade(
            "a1_k_occurrence_skewness",
            sub,
            student_id="x",
            memory_mb=256,
            sandbox="none",
        )
    finally:
        del os.environ["HUBREPRO_TEACHER_TOKEN"]
    assert report.cell_errors[0].startswith("cell 1: MemoryError")
    assert report.cell_errors[1].startswith(
        "cell 2: OSError: [Errno 27] File too large"
    )
    assert len(report.cell_errors) == 2


@pytest.mark.skipif(bwrap_status()[0] is None, reason=bwrap_status()[1])
def test_bwrap_hides_files_outside_the_sandbox(tmp_path):
    import hubrepro.hubness

    secret = tmp_path / "teacher_secret.txt"
    secret.write_text("42")
    sub = tmp_path / "abs.py"
    sub.write_text(
        f"# %%\nanswer_skewness = float(open({str(secret)!r}).read())\n"
        f"# %%\nexec(open({hubrepro.hubness.__file__!r}).read())\n"
        "# %%\nimport socket\nsocket.create_connection(('192.0.2.1', 80), timeout=2)\n"
    )
    report = grade("a1_k_occurrence_skewness", sub, student_id="x", sandbox="bwrap")
    assert report.score == 0
    assert report.sandbox.startswith("bwrap")
    assert "FileNotFoundError" in report.cell_errors[0]
    assert "FileNotFoundError" in report.cell_errors[1]
    assert (
        "Network is unreachable" in report.cell_errors[2]
    )  # no route out of the sandbox


# ------------------------------------------------------------------ command line


def test_cli_exit_status_and_feedback(built, capsys):
    name = "a1_k_occurrence_skewness"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hubrepro.classroom",
            "grade",
            name,
            str(built / "student" / f"{name}.ipynb"),
            "--student-id",
            "example",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert (
        "score: 1/10" in proc.stdout
        and "[FAIL ] k_occurrence matches the library" in proc.stdout
    )
    assert (
        cli_main(
            [
                "classroom",
                "grade",
                name,
                str(built / "solution" / f"{name}.ipynb"),
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["passed"] and out["score"] == out["max_score"] == 10
    assert out["sandbox"]


def test_cli_sys_exit_in_the_submission_is_reported(tmp_path):
    sub = tmp_path / "quit.py"
    sub.write_text("import sys\nsys.exit(0)\n")
    cmd = [
        sys.executable,
        "-m",
        "hubrepro.classroom",
        "grade",
        "a1_k_occurrence_skewness",
        str(sub),
        "--student-id",
        "ada",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "score: 0/10" in proc.stdout and "SystemExit: 0" in proc.stdout
    # the in-process mode, which a submission could end with exit 0, is gone
    proc = subprocess.run(cmd + ["--in-process"], capture_output=True, text=True)
    assert (
        proc.returncode == 2 and "unrecognized arguments: --in-process" in proc.stderr
    )


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_cli_refuses_a_timeout_that_is_not_positive(tmp_path, capsys, value):
    sub = tmp_path / "s.py"
    sub.write_text("x = 1\n")
    argv = [
        "classroom",
        "grade",
        "a1_k_occurrence_skewness",
        str(sub),
        f"--timeout={value}",
    ]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "`timeout` must be a positive number of seconds" in err


def test_sandbox_choice_without_bubblewrap(tmp_path, monkeypatch, capsys):
    from hubrepro import classroom
    from hubrepro.classroom import isolation

    monkeypatch.setattr(
        isolation, "bwrap_status", lambda: (None, "bwrap is not installed")
    )
    sub = tmp_path / "s.py"
    sub.write_text("STUDENT_ID = 'x'\n")
    with pytest.raises(ValueError, match="`sandbox` must be usable on this machine"):
        grade("a1_k_occurrence_skewness", sub, sandbox="bwrap")
    report = grade("a1_k_occurrence_skewness", sub, sandbox="auto")
    assert report.sandbox.startswith("none (bwrap is not installed; ")
    assert "could read your files by absolute path" in report.to_text()

    def no_sandbox(*args, **kwargs):
        raise RuntimeError("the grading sandbox did not start: exit status 127")

    monkeypatch.setattr(classroom, "grade", no_sandbox)
    assert cli_main(["classroom", "grade", "a1_k_occurrence_skewness", str(sub)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "hubrepro classroom: error: the grading sandbox did not start: exit status 127"
    )


def test_cli_usage_errors(tmp_path, capsys):
    assert cli_main(["classroom", "grade", "zzz", str(tmp_path / "x.py")]) == 2
    assert "`assignment` must be one of" in capsys.readouterr().err
    assert cli_main(["classroom", "list"]) == 0
    out = capsys.readouterr().out
    assert "a2_inverted_softmax" in out and ID_CHECK in out


def test_endless_submission_is_stopped(tmp_path):
    sub = tmp_path / "loop.py"
    sub.write_text("STUDENT_ID = 'x'\nwhile True:\n    pass\n")
    report = grade("a1_k_occurrence_skewness", sub, timeout=4, sandbox="none")
    assert not report.passed and report.score == 0
    assert "longer than 4 s" in report.results[0].feedback


def test_checks_before_a_looping_function_keep_their_points(tmp_path):
    sub = tmp_path / "slow.py"
    sub.write_text(
        "import torch\nSTUDENT_ID = 'x'\n"
        "def k_occurrence(sims, k):\n"
        "    top = sims.topk(k, dim=1).indices.reshape(-1)\n"
        "    return torch.bincount(top, minlength=sims.shape[1])\n"
        "def skewness(n_k):\n"
        "    while True:\n        pass\n"
    )
    report = grade("a1_k_occurrence_skewness", sub, timeout=10, sandbox="none")
    by_name = {r.name: r for r in report.results}
    assert by_name["k_occurrence matches the library"].passed
    assert "ran longer than 10 s" in by_name["skewness matches the library"].feedback
    assert by_name["answer_top_hub on your data"].feedback.startswith("not graded: ")
    assert report.score == 4  # STUDENT_ID and k_occurrence
