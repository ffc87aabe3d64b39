#!/usr/bin/env python3
"""Generate ``environment.yml`` from ``pyproject.toml`` (the single source of truth).

conda cannot be reached on the project's machines, so the conda environment installs
Python and pip from conda and everything else through pip, from the same
requirements (and the same constraints file) as the Makefile. ``tests/test_env_sync.py``
fails when the two files disagree; run ``python scripts/sync_env.py --write`` to fix.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXTRAS = ("clip", "text", "book", "dev", "index")


def requirements() -> list[str]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in EXTRAS:
        reqs += meta["optional-dependencies"][extra]
    return reqs


def render() -> str:
    python = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "requires-python"
    ]
    lines = [
        "# Generated from pyproject.toml by scripts/sync_env.py -- do not edit by hand.",
        "# conda env create -f environment.yml && conda activate hubrepro",
        "# The pip section installs through constraints.txt (CPU torch); on a CUDA machine",
        "# replace it by constraints-gpu.txt.",
        "name: hubrepro",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11  # the reference machines; pyproject allows " + python,
        "  - pip",
        "  - make",
        "  - pip:",
        "      - --constraint constraints.txt",
        "      - --editable .",
    ]
    lines += [f'      - "{r}"' for r in requirements()]
    return "\n".join(lines) + "\n"


def main() -> int:
    target = REPO / "environment.yml"
    text = render()
    if "--write" in sys.argv:
        target.write_text(text)
        return 0
    if not target.exists() or target.read_text() != text:
        print(
            "environment.yml is out of date: run `python scripts/sync_env.py --write`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
