"""Provenance and artifacts."""

import json

import pandas as pd

from hubrepro import __version__, reporting


def test_provenance_records_parameters_versions_and_checksums(tmp_path):
    f = tmp_path / "data.bin"
    f.write_bytes(b"abc")
    prov = reporting.provenance({"seed": 1}, data_files=[f])
    assert prov["parameters"] == {"seed": 1}
    assert prov["packages"]["hubrepro"] == __version__
    # sha256("abc"), computed independently
    assert (
        prov["data"][str(f)]
        == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    line = reporting.provenance_line(prov)
    assert f"hubrepro {__version__}" in line
    p = reporting.write_provenance(tmp_path / "art", prov)
    assert json.loads(p.read_text())["parameters"] == {"seed": 1}


def test_save_artifact_dispatches_on_type(tmp_path):
    import matplotlib.pyplot as plt

    df = pd.DataFrame({"a": [1.23456]})
    assert reporting.save_artifact(df, tmp_path, "nb10-tbl-x").suffix == ".csv"
    fig, ax = plt.subplots()
    assert reporting.save_artifact(fig, tmp_path, "nb10-fig-x").suffix == ".png"
    plt.close(fig)
    assert reporting.save_artifact({"x": 1}, tmp_path, "nb10-val-x").suffix == ".json"
    assert reporting.format_table(df, 2).display.iloc[0, 0] == "1.23"


def test_save_artifact_round_trips_and_a_kill_keeps_the_previous_file(tmp_path):
    import matplotlib.pyplot as plt
    import pytest

    from _kill import kill_during_write

    df = pd.DataFrame({"a": [1.5, 2.5]}, index=["x", "y"])
    p = reporting.save_artifact(df, tmp_path, "nb10-tbl-x")
    assert pd.read_csv(p, index_col=0).equals(df)
    fig, ax = plt.subplots()
    png = reporting.save_artifact(fig, tmp_path, "nb10-fig-x")
    plt.close(fig)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = p.read_bytes()
    for stage in ("write", "rename"):
        kill_during_write(
            "import pandas as pd\nfrom hubrepro import reporting\n"
            f"reporting.save_artifact(pd.DataFrame({{'a': range(9)}}), {str(tmp_path)!r}, 'nb10-tbl-x')\n",
            stage,
            tmp_path,
        )
        assert p.read_bytes() == before
    with pytest.raises(FileExistsError):  # a folder in the way is never replaced
        (tmp_path / "nb10-val-y.json").mkdir()
        reporting.save_artifact({"x": 1}, tmp_path, "nb10-val-y")


def _cfg_class():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Cfg:
        seed: int = 0
        ks: tuple[int, ...] = (1, 5)
        artifact_dir: str = "art"

    return Cfg


def test_notebook_config_reads_only_the_config_fields_from_the_namespace():
    Cfg = _cfg_class()
    ns = {"seed": 7, "ks": [2, 3], "torch": object(), "glue": print}
    cfg = reporting.notebook_config(Cfg, ns)
    assert cfg == Cfg(seed=7, ks=(2, 3))  # lists become tuples; other names ignored
    assert reporting.notebook_config(Cfg, {}) == Cfg()  # defaults where not exposed


def test_notebook_config_refuses_a_mistyped_value_and_a_non_dataclass():
    import pytest

    Cfg = _cfg_class()
    with pytest.raises(TypeError, match="`seed` of Cfg"):
        reporting.notebook_config(Cfg, {"seed": "7"})
    with pytest.raises(TypeError, match="must be a dataclass type"):
        reporting.notebook_config(Cfg(), {})


def test_publish_saves_and_glues_and_record_provenance_uses_the_final_config(
    tmp_path, monkeypatch
):
    import dataclasses

    import myst_nb

    glued = {}
    monkeypatch.setattr(
        myst_nb, "glue", lambda key, obj, display=True: glued.setdefault(key, obj)
    )
    df = pd.DataFrame({"a": [1.0]})
    assert reporting.publish("nb99-tbl-x", df, tmp_path) is df
    assert (tmp_path / "nb99-tbl-x.csv").exists()
    # a table key is always glued through the formatting helper, never a bare frame
    assert isinstance(glued["nb99-tbl-x"], reporting.Table)
    assert 'class="hubrepro-table"' in glued["nb99-tbl-x"]._repr_html_()
    made = reporting.table(df, 3)
    reporting.publish("nb99-tbl-y", made)
    assert glued["nb99-tbl-y"] is made
    import pytest

    with pytest.raises(TypeError, match="nb99-tbl-z"):
        reporting.publish("nb99-tbl-z", [1, 2])
    reporting.publish("nb99-val-n", 3)
    assert glued["nb99-val-n"] == 3 and not (tmp_path / "nb99-val-n.json").exists()

    Cfg = _cfg_class()
    cfg = dataclasses.replace(Cfg(artifact_dir=str(tmp_path)), seed=11)
    prov = reporting.record_provenance(cfg, "nb99-txt-provenance")
    on_disk = json.loads((tmp_path / "provenance.json").read_text())
    assert (
        on_disk["parameters"]
        == prov["parameters"]
        == {
            "seed": 11,
            "ks": [1, 5],
            "artifact_dir": str(tmp_path),
        }
    )
    assert glued["nb99-txt-provenance"].startswith("Produced by hubrepro")


def test_table_names_rounds_labels_and_never_truncates():
    import numpy as np

    n = 80
    df = pd.DataFrame(
        {
            "method": ["dualis", "is-g"] * (n // 2),
            "direction": ["query_to_gallery"] * n,
            "q2g_R@1": np.linspace(0, 100, n),
            "gallery_antihub_rate sd": [np.nan] + [0.123456] * (n - 1),
            "n": [12345] * n,
        }
    )
    for c in range(30):  # wide as well as long
        df[f"extra_{c}"] = 1.0
    t = reporting.table(df, {"q2g_R@1": 1, "gallery_antihub_rate sd": 3})
    html = t._repr_html_()
    assert "..." not in html and "…" not in html and html.count("<tr") == n + 1
    assert "DualIS" in html and "IS (gallery bank)" in html and "is-g" not in html
    assert "query→gallery" in html and "query_to_gallery" not in html
    assert "R@1, query→gallery" in html and "q2g_R@1" not in html
    assert "anti-hub rate (gallery) (sd)" in html
    assert "—" in html and "0.123" in html and "0.1235" not in html
    assert "12,345" in html and "extra 29" in html
    assert t.display["R@1, query→gallery"].iloc[-1] == "100.0"
    assert repr(t) == repr(
        reporting.table(df, {"q2g_R@1": 1, "gallery_antihub_rate sd": 3})
    )


def test_table_csv_artifact_keeps_the_unrounded_data(tmp_path):
    df = pd.DataFrame({"q2g_R@1": [47.45678]}, index=pd.Index(["nnn"], name="method"))
    t = reporting.table(df, 1, columns={"q2g_R@1": "R@1 text→code"})
    assert list(t.display.columns) == ["R@1 text→code"]
    assert t.display.index.tolist() == ["NNN"] and t.display.index.name == "method"
    t.to_csv(tmp_path / "x.csv")
    back = pd.read_csv(tmp_path / "x.csv", index_col=0)
    assert back.loc["nnn", "q2g_R@1"] == 47.45678


def test_table_multiindex_and_value_maps_and_bad_input():
    import pytest

    df = pd.DataFrame(
        {"value": [1.0, 2.0]},
        index=pd.MultiIndex.from_tuples(
            [("stdlib", "gallery_to_query"), ("synthetic", "query_to_gallery")],
            names=["dataset", "direction"],
        ),
    )
    t = reporting.table(df, values={"dataset": {"stdlib": "stdlib-code"}})
    assert t.display.index.tolist() == [
        ("stdlib-code", "gallery→query"),
        ("synthetic", "query→gallery"),
    ]
    with pytest.raises(TypeError, match="DataFrame"):
        reporting.table([[1, 2]])


def test_statistics_as_rows_keeps_integer_cells_and_human_names():
    df = pd.DataFrame(
        {"n_query": [1000, 1000], "R@1": [47.5, 37.4]}, index=["random", "by-module"]
    )
    t = reporting.statistics_as_rows(df)
    assert t.index.name == "statistic" and list(t.columns) == ["random", "by-module"]
    shown = reporting.table(t, 1).display
    assert (
        shown.iloc[0, 0] == "1,000" and shown.iloc[1, 0] == "47.5"
    )  # an int stays an int


def test_long_row_labels_may_wrap_and_method_labels_stay_on_one_line():
    # a published setting ("MSR-VTT 1k-A ViT-B/32 T->V R@1", 30 characters) held its
    # column on one line and pushed the table out of the text column
    frame = pd.DataFrame(
        {"value": [49.5, 51.1]},
        index=pd.Index(
            ["MSR-VTT 1k-A ViT-B/32 T->V R@1", "DualDIS (principled)"], name="q"
        ),
    )
    html = reporting.table(frame, 1)._repr_html_()
    assert (
        '<th class="hubrepro-rowhead long">MSR-VTT 1k-A ViT-B/32 T-&gt;V R@1</th>'
        in html
    )
    assert '<th class="hubrepro-rowhead">DualDIS (principled)</th>' in html
