"""Build and verify the shipped data against its manifest.

The shipped pairs file has a sidecar ``hubrepro/_data/stdlib_code_v<N>.json`` (inside
the package, so an installed copy can verify itself) and an entry in the repository's
``data/manifest.yml`` (the compendium's record of raw inputs): file, data and extractor
versions, the Python version it was extracted with, counts and SHA-256.

Book: :ref:`sec-data`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from hubrepro.io import atomic_write

from .stdlib_code import DATA_VERSION, data_file, extract_stdlib_pairs, write_pairs

__all__ = [
    "REPO_MANIFEST",
    "build_stdlib_data",
    "sidecar_file",
    "verify_data",
    "sha256_file",
]

#: The repository's manifest (absent in an installed copy).
REPO_MANIFEST = Path(__file__).resolve().parents[3] / "data" / "manifest.yml"

_SOURCE = {
    "source": "Python standard library sources (Lib/), extracted with `ast` by hubrepro.datasets.stdlib_code",
    "licence": "PSF-2.0 (Python Software Foundation License Version 2); see data/README.md",
    "description": "docstring summary (>= 4 words) -> function source without docstrings",
}


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file, read in blocks (the checksum of the manifests and provenance)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sidecar_file(version: int = DATA_VERSION) -> Path:
    """The packaged manifest entry of the pairs file."""
    return data_file(version).with_suffix("").with_suffix(".json")


def _update_repo_manifest(entry: dict[str, Any], manifest: Path) -> None:
    import yaml

    doc, problem = _read_manifest(manifest) if manifest.is_file() else ({}, None)
    if problem is not None:
        raise ValueError(
            f"build_stdlib_data: {problem}; repair it (e.g. `git checkout {manifest.name}`) "
            "before rebuilding, so that its other entries are kept."
        )
    datasets = doc.setdefault("datasets", {})
    if not isinstance(datasets, dict):
        raise ValueError(
            f"build_stdlib_data: `datasets` in {manifest} must be a mapping; got "
            f"{type(datasets).__name__}. Repair the file before rebuilding."
        )
    datasets["stdlib-code"] = entry
    header = (
        "# Record of the compendium's raw inputs: file, version, checksum, source, licence.\n"
        "# Written by `hubrepro data build`; checked by `hubrepro data verify`.\n"
    )
    text = header + yaml.safe_dump(doc, sort_keys=True, allow_unicode=True)
    atomic_write(manifest, lambda fh: fh.write(text.encode("utf-8")), overwrite=True)


def build_stdlib_data(
    *,
    overwrite: bool = False,
    stdlib_dir: str | Path | None = None,
    out: str | Path | None = None,
    manifest: str | Path | None = REPO_MANIFEST,
) -> dict[str, Any]:
    """Extract the stdlib pairs and write the data file, its sidecar and the manifest entry.

    Refuses to replace an existing data file unless ``overwrite`` (a different Python
    version gives different pairs; the shipped file is what the book's numbers use).

    Returns
    -------
    dict
        The manifest entry.
    """
    path = Path(out) if out is not None else data_file()
    pairs = extract_stdlib_pairs(stdlib_dir)
    entry = {**write_pairs(pairs, path, overwrite=overwrite), **_SOURCE}
    side = path.with_suffix("").with_suffix(".json")
    text = json.dumps(entry, indent=1, sort_keys=True) + "\n"
    atomic_write(side, lambda fh: fh.write(text.encode("utf-8")), overwrite=True)
    if manifest is not None and out is None:
        _update_repo_manifest(
            {**entry, "file": f"src/hubrepro/_data/{path.name}"}, Path(manifest)
        )
    return entry


def _read_manifest(manifest: Path) -> tuple[dict[str, Any], str | None]:
    """The manifest as a mapping, or ``({}, problem)`` when it cannot be used."""
    import yaml

    try:
        doc = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        return {}, f"{manifest} is not valid YAML ({' '.join(str(err).split())})"
    if doc is None:
        return {}, None
    if not isinstance(doc, dict):
        return {}, f"{manifest} must hold a mapping; got {type(doc).__name__}"
    return doc, None


def _read_sidecar(side: Path) -> tuple[dict[str, Any], str | None]:
    """The sidecar's entry, or ``({}, problem)`` when it cannot be used."""
    try:
        entry = json.loads(side.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return {}, f"{side.name} is not valid JSON ({err})"
    if not isinstance(entry, dict):
        return {}, f"{side.name} must hold a JSON object; got {type(entry).__name__}"
    return entry, None


def verify_data(manifest: str | Path | None = REPO_MANIFEST) -> list[str]:
    """Check the shipped data against its sidecar and the repository manifest.

    A sidecar or manifest that cannot be parsed is reported as a problem (with
    what to do), like a checksum mismatch.

    Returns
    -------
    list of str
        Problems found (empty when everything matches), one line each.
    """
    problems = []
    path = data_file()
    side = sidecar_file()
    if not path.is_file():
        return [f"{path} is missing: run `hubrepro data build`"]
    digest = sha256_file(path)
    restore = "restore it (`git checkout` in a clone, or reinstall the package) or run `hubrepro data build --overwrite`"
    if not side.is_file():
        problems.append(f"{side} is missing: run `hubrepro data build --overwrite`")
    else:
        entry, problem = _read_sidecar(side)
        expected = entry.get("sha256")
        if problem is not None:
            problems.append(f"{problem}: {restore}")
        elif expected != digest:
            problems.append(
                f"{path.name}: sha256 {digest} does not match {side.name} ({expected})"
            )
    if manifest is not None and Path(manifest).is_file():
        doc, problem = _read_manifest(Path(manifest))
        datasets = doc.get("datasets") or {}
        entry = datasets.get("stdlib-code") if isinstance(datasets, dict) else None
        if problem is not None:
            problems.append(f"{problem}: {restore}")
        elif not isinstance(entry, dict):
            problems.append(
                f"{manifest} has no entry for stdlib-code (datasets: stdlib-code: ...): {restore}"
            )
        elif entry.get("sha256") != digest:
            problems.append(
                f"{path.name}: sha256 {digest} does not match {manifest} ({entry.get('sha256')})"
            )
    return problems
