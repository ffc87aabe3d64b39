"""The claims ledger: every claim the book decides, in one table (notebook 75, the landing page).

Every notebook that decides claims about a paper writes them with
:func:`hubrepro.inference.save_claims` to ``claims.csv`` in its artifact folder
(keys ``db-...`` for DBNorm, ``nr-...`` for NeighborRetr, ``th-...`` for the theory
chapter). :func:`run` reads every ``claims.csv`` under the artifacts root
(:func:`hubrepro.inference.load_claims`), checks that no key is decided twice, and lays
the claims out one line each (:func:`ledger_table`) with the number of claims per
verdict (:func:`verdict_counts`). A paper none of whose notebooks has written a claims
file gets one line saying so, never an empty table. The notebook is numbered 75 so that
the runner executes it after every notebook that writes claims.

Book: the landing page (:ref:`sec-intro-ledger`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hubrepro._validation import fail

__all__ = [
    "LedgerConfig",
    "LedgerResult",
    "CLAIMS_FILE",
    "claims_files",
    "run",
    "ledger_table",
    "verdict_counts",
    "headlines",
]

#: the file name every claim-deciding notebook writes in its artifact folder
CLAIMS_FILE = "claims.csv"


@dataclasses.dataclass(frozen=True)
class LedgerConfig:
    """Parameters of notebook ``75_claims_ledger`` (names equal the notebook's parameters).

    Attributes
    ----------
    artifacts_root : str
        Folder searched (recursively) for ``claims.csv`` files; ``""`` means the
        folder that holds ``artifact_dir`` (the runner's ``_build/artifacts``).
    papers : list of str
        Papers the ledger must account for, in the order shown; a paper with no
        recorded claim gets a line saying so. Papers found in the files but not
        listed follow, in the order found.
    seed : int
        Unused (nothing is random); kept for the notebook template.
    device : str
        Unused (nothing is computed); kept for the notebook template.
    artifact_dir : str
        Where the ledger's CSV and ``provenance.json`` are written.
    """

    artifacts_root: str = ""
    papers: Sequence[str] = ("DBNorm", "NeighborRetr")
    seed: int = 0
    device: str = "cpu"
    artifact_dir: str = "_build/artifacts/75_claims_ledger"

    def __post_init__(self) -> None:
        papers = self.papers
        if isinstance(papers, str) or not all(
            isinstance(p, str) and p.strip() for p in papers
        ):
            fail("LedgerConfig", "papers", "a list of paper names", repr(papers))
        object.__setattr__(self, "papers", tuple(papers))


@dataclasses.dataclass
class LedgerResult:
    """What :func:`run` returns.

    Attributes
    ----------
    config : LedgerConfig
    files : list of pathlib.Path
        The claims files read, in the order read.
    claims : list of hubrepro.inference.Claim
        Every claim, papers in the configured order, then in file order.
    sources : dict
        Claim key -> the claims file it came from.
    missing : list of str
        Configured papers with no recorded claim.
    """

    config: LedgerConfig
    files: list[Path]
    claims: list[Any]
    sources: dict[str, Path]
    missing: list[str]


def claims_files(root: str | Path, *, exclude: str | Path | None = None) -> list[Path]:
    """Every ``claims.csv`` under ``root`` (sorted by path), except under ``exclude``."""
    root = Path(root)
    if not root.is_dir():
        return []
    skip = Path(exclude).resolve() if exclude is not None else None
    return [
        p
        for p in sorted(root.rglob(CLAIMS_FILE))
        if skip is None or skip not in p.resolve().parents
    ]


def run(cfg: LedgerConfig) -> LedgerResult:
    """Read every claims file under the artifacts root and order the claims.

    Parameters
    ----------
    cfg : LedgerConfig

    Returns
    -------
    LedgerResult

    Raises
    ------
    ValueError
        When two claims share a key (two notebooks deciding the same claim, or a stale
        claims file left by a renamed notebook: delete it).

    Book
    ----
    The landing page (:ref:`sec-intro-ledger`).
    """
    from hubrepro.inference import load_claims

    if not isinstance(cfg, LedgerConfig):
        fail("run", "cfg", "a LedgerConfig", type(cfg).__name__, exc=TypeError)
    root = (
        Path(cfg.artifacts_root)
        if cfg.artifacts_root
        else Path(cfg.artifact_dir).parent
    )
    files = claims_files(root, exclude=cfg.artifact_dir)
    claims, sources = [], {}
    for f in files:
        for c in load_claims([f]):
            if c.key and c.key in sources:
                fail(
                    "run",
                    "claims files",
                    "one claims file per claim key",
                    f"key {c.key!r} in both {sources[c.key]} and {f}",
                    "Delete the stale file or rename one key.",
                )
            if c.key:
                sources[c.key] = f
            claims.append(c)
    order = list(dict.fromkeys([*cfg.papers, *(c.paper for c in claims)]))
    claims.sort(key=lambda c: order.index(c.paper))  # stable: file order within a paper
    have = {c.paper for c in claims}
    missing = [p for p in cfg.papers if p not in have]
    return LedgerResult(cfg, files, claims, sources, missing)


def ledger_table(result: LedgerResult) -> pd.DataFrame:
    """One line per claim: paper, claim, verdict, difference with its interval, evidence.

    Index: paper (merged on the page), column ``interval`` holds the
    :class:`~hubrepro.inference.Interval` (or ``None``), ``evidence`` the book label.
    A configured paper without claims gets the line "no claims recorded for <paper>".
    """
    rows = [
        {
            "paper": c.paper,
            "claim": c.claim,
            "verdict": c.verdict,
            "interval": c.interval,
            "evidence": c.evidence or None,
        }
        for c in result.claims
    ]
    rows += [
        {
            "paper": p,
            "claim": f"no claims recorded for {p} (its notebooks wrote no claims file)",
            "verdict": None,
            "interval": None,
            "evidence": None,
        }
        for p in result.missing
    ]
    order = list(dict.fromkeys([*result.config.papers, *(r["paper"] for r in rows)]))
    rows.sort(key=lambda r: order.index(r["paper"]))
    frame = pd.DataFrame(
        rows, columns=["paper", "claim", "verdict", "interval", "evidence"]
    )
    return frame.set_index("paper")


def verdict_counts(result: LedgerResult) -> pd.DataFrame:
    """Claims per paper (rows) and verdict (columns, :data:`~hubrepro.inference.VERDICTS`), with totals."""
    from hubrepro.inference import VERDICTS

    papers = list(
        dict.fromkeys([*result.config.papers, *(c.paper for c in result.claims)])
    )
    counts = pd.DataFrame(
        0, index=pd.Index(papers, name="paper"), columns=list(VERDICTS)
    )
    for c in result.claims:
        counts.loc[c.paper, c.verdict] += 1
    counts["claims"] = counts.sum(axis=1)
    return counts


def _count_words(row: pd.Series) -> str:
    parts = [f"{int(row[v])} {v}" for v in row.index if v != "claims" and row[v]]
    return ", ".join(parts)


def headlines(result: LedgerResult) -> dict[str, Any]:
    """The numbers and sentences the landing page quotes (glue-key suffixes).

    ``val-n-claims`` (all claims), ``val-n-<verdict slug>`` per verdict (e.g.
    ``val-n-not-supported``), ``txt-summary`` (one sentence per paper, a paper without
    claims included) and ``val-n-files``.
    """
    from hubrepro.inference import VERDICTS

    counts = verdict_counts(result)
    out: dict[str, Any] = {
        "val-n-claims": len(result.claims),
        "val-n-files": len(result.files),
    }
    for v in VERDICTS:
        out[f"val-n-{re.sub(r'[^a-z]+', '-', v).strip('-')}"] = int(counts[v].sum())
    sentences = []
    for paper, row in counts.iterrows():
        if row["claims"] == 0:
            sentences.append(f"no claims recorded for {paper}")
        else:
            n = int(row["claims"])
            sentences.append(
                f"{paper}: {n} claim{'s' * (n != 1)} ({_count_words(row)})"
            )
    out["txt-summary"] = "; ".join(sentences) + "."
    return out
