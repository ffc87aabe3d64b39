"""The claims ledger (notebook 75): reads whatever claims files exist, fails loudly on clashes."""

from __future__ import annotations

import pytest

from hubrepro import inference as inf
from hubrepro import reporting
from hubrepro.experiments import ledger


def _iv(est, lo, hi):
    return inf.Interval(est, lo, hi, 0.95, 100, "paired bootstrap")


def _write(root, folder, claims):
    inf.save_claims(claims, root / folder / "claims.csv")


def test_ledger_reads_every_claims_file_orders_papers_and_counts_verdicts(tmp_path):
    arts = tmp_path / "artifacts"
    _write(arts, "41_published", [
        inf.Claim("DBNorm", "DualIS beats IS", "inconclusive", _iv(0.1, -0.4, 0.6),
                  "tbl-dbnorm-claims", "db-dualis-is"),
        inf.Claim("DBNorm", "DIS matches IS", "supported", _iv(0.0, -0.2, 0.2),
                  "sec-dbnorm-main", "db-dis-is"),
    ])  # fmt: skip
    _write(arts, "20_theory", [
        inf.Claim("Theory", "skewness grows with d", "supported", _iv(1.2, 0.8, 1.6),
                  "fig-theory-skew", "th-r1"),
    ])  # fmt: skip
    _write(arts, "53_neighborretr_train", [
        inf.Claim("NeighborRetr", "R@1 on MSR-VTT", "needs data we cannot ship", None,
                  "sec-neighborretr", "nr-msrvtt"),
    ])  # fmt: skip
    # the ledger's own artifact folder is never read (a stale copy of its output)
    _write(
        arts,
        "75_claims_ledger",
        [inf.Claim("DBNorm", "stale", "supported", None, "", "db-x")],
    )
    cfg = ledger.LedgerConfig(artifact_dir=str(arts / "75_claims_ledger"))
    res = ledger.run(cfg)
    assert [f.parent.name for f in res.files] == [
        "20_theory", "41_published", "53_neighborretr_train"]  # fmt: skip
    # configured papers first, in their order; others after, in the order found
    assert [c.key for c in res.claims] == [
        "db-dualis-is",
        "db-dis-is",
        "nr-msrvtt",
        "th-r1",
    ]
    assert res.missing == []
    counts = ledger.verdict_counts(res)
    assert (
        counts.loc["DBNorm", "inconclusive"] == 1
        and counts.loc["DBNorm", "supported"] == 1
    )
    assert counts.loc["NeighborRetr", "needs data we cannot ship"] == 1
    assert list(counts["claims"]) == [2, 1, 1]
    heads = ledger.headlines(res)
    assert heads["val-n-claims"] == 4 and heads["val-n-files"] == 3
    assert (
        heads["val-n-supported"] == 2 and heads["val-n-needs-data-we-cannot-ship"] == 1
    )
    assert heads["txt-summary"].startswith(
        "DBNorm: 2 claims (1 supported, 1 inconclusive)"
    )
    # the page: one line per claim, intervals formatted, evidence labels linked
    html = reporting.table(ledger.ledger_table(res), links=["evidence"])._repr_html_()
    assert html.count("<tr>") == 1 + 4
    assert (
        'rowspan="2">DBNorm</th>' in html
    )  # one paper's claims grouped under its name
    assert "+0.10 [-0.40, 0.60]" in html and "DualIS beats IS" in html
    assert 'href="#tbl-dbnorm-claims"' in html and "stale" not in html


def test_a_paper_without_claims_gets_a_line_saying_so(tmp_path):
    arts = tmp_path / "artifacts"
    _write(arts, "40_dbnorm_main", [
        inf.Claim("DBNorm", "SN is best", "supported", _iv(1.0, 0.5, 1.5), "sec-dbnorm-main",
                  "db-sn-best"),
    ])  # fmt: skip
    res = ledger.run(ledger.LedgerConfig(artifacts_root=str(arts)))
    assert res.missing == ["NeighborRetr"]
    table = ledger.ledger_table(res)
    assert list(table.index) == ["DBNorm", "NeighborRetr"]
    assert table.loc["NeighborRetr", "claim"].startswith(
        "no claims recorded for NeighborRetr"
    )
    assert "no claims recorded for NeighborRetr" in ledger.headlines(res)["txt-summary"]
    assert ledger.verdict_counts(res).loc["NeighborRetr", "claims"] == 0
    # no claims at all (a fresh checkout): every paper says so, nothing fails
    empty = ledger.run(ledger.LedgerConfig(artifacts_root=str(tmp_path / "nothing")))
    assert empty.files == [] and empty.missing == ["DBNorm", "NeighborRetr"]
    assert ledger.headlines(empty)["txt-summary"] == (
        "no claims recorded for DBNorm; no claims recorded for NeighborRetr.")  # fmt: skip
    assert len(ledger.ledger_table(empty)) == 2


def test_a_key_decided_twice_is_refused_naming_both_files(tmp_path):
    c = inf.Claim(
        "DBNorm", "DualIS beats IS", "supported", _iv(1, 0.5, 1.5), "", "db-dup"
    )
    _write(tmp_path, "40_a", [c])
    _write(tmp_path, "41_b", [c])
    with pytest.raises(ValueError, match=r"'db-dup' in both .*40_a.*41_b"):
        ledger.run(ledger.LedgerConfig(artifacts_root=str(tmp_path)))


def test_config_refuses_a_bare_string_for_papers():
    with pytest.raises(ValueError, match="papers"):
        ledger.LedgerConfig(papers="DBNorm")
