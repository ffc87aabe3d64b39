"""Author an assignment once; derive the student and solution versions from it.

An assignment is a MyST-markdown notebook in ``assignments/`` (jupytext format, like
the notebooks of the book). Inside its code cells the instructor's solution sits
between two marker lines::

    def skewness(n_k):
        ### BEGIN SOLUTION
        x = n_k.double()
        ...
        ### END SOLUTION

:func:`strip_solutions` replaces each marked block by a stub,
``raise NotImplementedError("...")``, at the block's indentation (the student
version); :func:`solution_source` only drops the marker lines (the solution
version, which the tests grade). :func:`build_assignments` writes both as
``.ipynb`` files, plus a ``manifest.json`` that lists the graded checks.

Book: :ref:`sec-classroom`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from hubrepro._validation import fail
from hubrepro.classroom.assignments import ASSIGNMENTS
from hubrepro.classroom.core import ID_CHECK

__all__ = [
    "BEGIN_SOLUTION",
    "END_SOLUTION",
    "STUB",
    "strip_solutions",
    "solution_source",
    "build_assignments",
    "find_assignment_sources",
]

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
STUB = 'raise NotImplementedError("your code here")'

_MARKER = re.compile(
    r"^(?P<indent>[ \t]*)(?P<marker>### (?:BEGIN|END) SOLUTION)[ \t]*$"
)


def _blocks(text: str, func: str) -> list[tuple[int, int, str]]:
    """Return ``(begin_line, end_line, indent)`` of every marked block (0-based lines)."""
    blocks: list[tuple[int, int, str]] = []
    open_at: tuple[int, str] | None = None
    for i, line in enumerate(text.splitlines()):
        m = _MARKER.match(line)
        if m is None:
            continue
        if m["marker"] == BEGIN_SOLUTION:
            if open_at is not None:
                fail(
                    func,
                    "source",
                    f"free of nested `{BEGIN_SOLUTION}` markers",
                    f"a second one on line {i + 1} (the first is on line {open_at[0] + 1})",
                    "Close each block before opening the next.",
                )
            open_at = (i, m["indent"])
        else:
            if open_at is None:
                fail(
                    func,
                    "source",
                    f"an `{END_SOLUTION}` preceded by `{BEGIN_SOLUTION}`",
                    f"an unmatched end marker on line {i + 1}",
                )
            if m["indent"] != open_at[1]:
                fail(
                    func,
                    "source",
                    "markers of one block at the same indentation",
                    f"lines {open_at[0] + 1} and {i + 1} indented differently",
                )
            blocks.append((open_at[0], i, open_at[1]))
            open_at = None
    if open_at is not None:
        fail(
            func,
            "source",
            f"every `{BEGIN_SOLUTION}` closed by `{END_SOLUTION}`",
            f"an unclosed block opened on line {open_at[0] + 1}",
        )
    return blocks


def _check_text(text: object, func: str) -> str:
    if not isinstance(text, str):
        fail(func, "source", "a str", f"{type(text).__name__}", exc=TypeError)
    return text  # type: ignore[return-value]


def strip_solutions(source: str, *, stub: str = STUB) -> str:
    """Return the student version of ``source``: each marked block becomes a stub.

    Parameters
    ----------
    source : str
        Code (a cell, a module or a whole jupytext notebook) with blocks between
        ``### BEGIN SOLUTION`` and ``### END SOLUTION`` lines.
    stub : str, default ``raise NotImplementedError("your code here")``
        The line that replaces each block, written at the block's indentation.

    Returns
    -------
    str
        The text without any solution line. Text outside the blocks is unchanged.

    Raises
    ------
    ValueError
        Unmatched, nested or misaligned markers (the message names the line).


    Book
    ----
    :ref:`sec-classroom-authoring`.
    Examples
    --------
    >>> print(strip_solutions("def f():\\n    ### BEGIN SOLUTION\\n    return 1\\n    ### END SOLUTION\\n"))
    def f():
        raise NotImplementedError("your code here")
    <BLANKLINE>
    """
    text = _check_text(source, "strip_solutions")
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    pos = 0
    for begin, end, indent in _blocks(text, "strip_solutions"):
        out.extend(lines[pos:begin])
        out.append(f"{indent}{stub}\n")
        pos = end + 1
    out.extend(lines[pos:])
    return "".join(out)


def solution_source(source: str) -> str:
    """Return the solution version of ``source``: the marker lines dropped, code kept.

    Raises ``ValueError`` on unmatched markers, like :func:`strip_solutions`.


    Book
    ----
    :ref:`sec-classroom-authoring`.
    Examples
    --------
    >>> solution_source("x = 1\\n### BEGIN SOLUTION\\ny = 2\\n### END SOLUTION\\n")
    'x = 1\\ny = 2\\n'
    """
    text = _check_text(source, "solution_source")
    drop = set()
    for begin, end, _ in _blocks(text, "solution_source"):
        drop.update((begin, end))
    return "".join(
        line for i, line in enumerate(text.splitlines(keepends=True)) if i not in drop
    )


def find_assignment_sources(src_dir: str | Path) -> list[Path]:
    """List the assignment sources (``*.md`` other than ``README.md``) of ``src_dir``."""
    d = Path(src_dir)
    if not d.is_dir():
        fail(
            "find_assignment_sources",
            "src_dir",
            "an existing folder of assignment notebooks",
            repr(str(d)),
            "Run from the repository root or pass `--src assignments`.",
            exc=FileNotFoundError,
        )
    return sorted(p for p in d.glob("*.md") if p.name.lower() != "readme.md")


def _convert(src: Path, transform, out: Path) -> None:
    import jupytext

    nb = jupytext.read(src)
    for cell in nb.cells:
        if cell.cell_type == "code":
            try:
                cell.source = transform(cell.source)
            except ValueError as err:
                raise ValueError(f"{src}: {err}") from None
            cell.outputs = []
            cell.execution_count = None
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata.pop("jupytext", None)
    # hubrepro.io imports torch: only the author's build needs it, so import it here
    from hubrepro.io import atomic_write

    text = jupytext.writes(nb, fmt="ipynb")
    atomic_write(out, lambda fh: fh.write(text.encode("utf-8")), overwrite=True)


def build_assignments(
    src_dir: str | Path, out_dir: str | Path, *, names: Iterable[str] | None = None
) -> dict[str, dict[str, str]]:
    """Generate the student and solution notebooks of every assignment.

    Writes ``out_dir/student/<name>.ipynb`` (solutions replaced by stubs),
    ``out_dir/solution/<name>.ipynb`` (markers dropped) and ``out_dir/manifest.json``
    (for each assignment: its title, files and graded checks with their points).
    Existing files of the same name are replaced; nothing else in ``out_dir`` is touched.

    Parameters
    ----------
    src_dir : path
        Folder of authored assignments (``assignments/`` in the repository).
    out_dir : path
        Output folder (``make assignments`` uses ``_build/assignments``).
    names : iterable of str, optional
        Only these assignments (file stems); default all.

    Returns
    -------
    dict
        ``{name: {"student": path, "solution": path}}``.

    Raises
    ------
    FileNotFoundError
        ``src_dir`` does not exist.
    ValueError
        Unknown names, or malformed solution markers (file and line named).

    Book
    ----
    :ref:`sec-classroom`.
    """
    sources = {p.stem: p for p in find_assignment_sources(src_dir)}
    if names is not None:
        wanted = list(names)
        unknown = sorted(set(wanted) - set(sources))
        if unknown:
            fail(
                "build_assignments",
                "names",
                "names of assignments in " + str(src_dir),
                repr(unknown),
                f"Known: {sorted(sources)}.",
            )
        sources = {n: sources[n] for n in wanted}
    out = Path(out_dir)
    written: dict[str, dict[str, str]] = {}
    manifest: dict[str, dict] = {}
    for name, src in sources.items():
        text = src.read_text()
        if BEGIN_SOLUTION not in text:
            fail(
                "build_assignments",
                str(src),
                f"an assignment with at least one `{BEGIN_SOLUTION}` block",
                "none",
                "Mark the instructor's solution so that the student version differs.",
            )
        student = out / "student" / f"{name}.ipynb"
        solution = out / "solution" / f"{name}.ipynb"
        _convert(src, strip_solutions, student)
        _convert(src, solution_source, solution)
        written[name] = {"student": str(student), "solution": str(solution)}
        spec = ASSIGNMENTS.get(name)
        checks = (
            [
                {
                    "name": ID_CHECK,
                    "points": 1,
                    "description": "the submission's STUDENT_ID is the graded student's",
                }
            ]
            + [
                {"name": c.name, "points": c.points, "description": c.description}
                for c in spec.checks
            ]
            if spec
            else []
        )
        manifest[name] = {
            "title": spec.title if spec else None,
            "student": str(student.relative_to(out)),
            "solution": str(solution.relative_to(out)),
            "graded": spec is not None,
            "max_score": spec.max_score if spec else None,
            "checks": checks,
            "grade_command": f"python -m hubrepro.classroom grade {name} SUBMISSION.ipynb --student-id ID",
        }
    from hubrepro.io import atomic_write

    text = json.dumps(manifest, indent=1) + "\n"
    atomic_write(
        out / "manifest.json", lambda fh: fh.write(text.encode("utf-8")), overwrite=True
    )
    return written
