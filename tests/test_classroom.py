"""The classroom machinery: solution markers, student versions, per-student data, grading.

The round trip proves what a teacher relies on: every authored solution passes the
grader with full marks, and every untouched student version fails it with a non-zero
exit status.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hubrepro.classroom import (
    ASSIGNMENTS,
    build_assignments,
    grade,
    list_assignments,
    solution_source,
    strip_solutions,
    student_data,
    student_seed,
)
from hubrepro.classroom.authoring import BEGIN_SOLUTION, END_SOLUTION, STUB
from hubrepro.classroom.grading import ReferenceUnavailable, reference
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


def _require_references(name: str) -> None:
    for dotted in ASSIGNMENTS[name].references:
        try:
            reference(dotted)
        except ReferenceUnavailable as err:
            pytest.skip(str(err))


@pytest.mark.parametrize("name", sorted(ASSIGNMENTS))
def test_solution_passes_and_student_version_fails(name, built):
    _require_references(name)
    solved = grade(name, built / "solution" / f"{name}.ipynb", student_id="example")
    assert solved.passed, solved.to_text()
    assert solved.score == solved.max_score > 1
    assert not solved.cell_errors, solved.cell_errors
    untouched = grade(name, built / "student" / f"{name}.ipynb", student_id="example")
    assert not untouched.passed
    assert (
        untouched.score <= 2
    )  # "submitted for this student", "without the reference module"
    assert any("NotImplementedError" in e for e in untouched.cell_errors)
    assert all(r.feedback for r in untouched.results if not r.passed)


def test_answers_are_checked_on_the_graded_students_data(built):
    name = "a1_k_occurrence_skewness"
    _require_references(name)
    report = grade(
        name, built / "solution" / f"{name}.ipynb", student_id="someone-else"
    )
    by_name = {r.name: r for r in report.results}
    assert not by_name["submitted for this student"].passed
    assert (
        "'example', not 'someone-else'"
        in by_name["submitted for this student"].feedback
    )
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
    _require_references(name)
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


def test_mutating_submission_is_caught(tmp_path):
    name = "a2_inverted_softmax"
    _require_references(name)
    sub = tmp_path / "m.py"
    sub.write_text(
        "import torch\nSTUDENT_ID = 'x'\n"
        "def inverted_softmax(sims, bank_query_sims, beta):\n"
        "    sims.mul_(beta)\n"
        "    return sims - torch.logsumexp(beta * bank_query_sims, dim=0)\n"
    )
    by_name = {r.name: r for r in grade(name, sub).results}
    assert not by_name["inputs are not modified"].passed
    assert (
        "modified its input argument 1" in by_name["inputs are not modified"].feedback
    )


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


def test_missing_student_id_is_a_failed_check(tmp_path):
    sub = tmp_path / "anon.py"
    sub.write_text("x = 1\n")
    report = grade("a3_hubness_vs_dimension", sub)
    assert (
        report.results[0].name == "submitted for this student"
        and not report.results[0].passed
    )
    assert report.score == 1  # only "implemented without the reference module"


# ------------------------------------------------------------------ command line


def test_cli_exit_status_and_feedback(built, capsys):
    name = "a1_k_occurrence_skewness"
    _require_references(name)
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
            "--in-process",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert (
        "score: 2/11" in proc.stdout
        and "[FAIL ] k_occurrence matches the library" in proc.stdout
    )
    assert (
        cli_main(
            [
                "classroom",
                "grade",
                name,
                str(built / "solution" / f"{name}.ipynb"),
                "--in-process",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["passed"] and out["score"] == out["max_score"]


def test_cli_usage_errors(tmp_path, capsys):
    assert cli_main(["classroom", "grade", "zzz", str(tmp_path / "x.py")]) == 2
    assert "`assignment` must be one of" in capsys.readouterr().err
    assert cli_main(["classroom", "list"]) == 0
    assert "a2_inverted_softmax" in capsys.readouterr().out


def test_endless_submission_is_stopped(tmp_path):
    sub = tmp_path / "loop.py"
    sub.write_text("STUDENT_ID = 'x'\nwhile True:\n    pass\n")
    report = grade("a1_k_occurrence_skewness", sub, isolate=True, timeout=4)
    assert not report.passed
    assert "longer than 4 s" in report.results[0].feedback


@pytest.mark.parametrize(
    "code",
    [
        "from hubrepro.hubness import k_occurrence\n",
        "import hubrepro.hubness as h\n",
        "from hubrepro import similarity, hubness\n",
        "import hubrepro\nf = hubrepro.hubness.skewness\n",
    ],
)
def test_using_the_reference_module_is_flagged(tmp_path, code):
    sub = tmp_path / "copy.py"
    sub.write_text("STUDENT_ID = 'x'\n" + code)
    by_name = {r.name: r for r in grade("a1_k_occurrence_skewness", sub).results}
    flag = by_name["implemented without the reference module"]
    assert not flag.passed and "hubrepro.hubness" in flag.feedback


def test_other_library_modules_are_allowed(tmp_path):
    sub = tmp_path / "ok.py"
    sub.write_text(
        "STUDENT_ID = 'x'\nfrom hubrepro.retrieval import evaluate_retrieval\nimport torch\n"
    )
    by_name = {r.name: r for r in grade("a2_inverted_softmax", sub).results}
    assert by_name["implemented without the reference module"].passed
