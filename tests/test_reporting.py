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
    assert reporting.format_table(df, 2).iloc[0, 0] == 1.23
