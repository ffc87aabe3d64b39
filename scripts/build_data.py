#!/usr/bin/env python3
"""Regenerate and verify the embedded data (the same as ``hubrepro data build`` + ``verify``).

Extracts the stdlib-code pairs into the package when the shipped file is missing
(``--overwrite`` re-extracts it: the numbers change if your Python differs), fills the
embeddings cache for both split protocols (``--no-embed`` skips it), then checks the
shipped file against ``data/manifest.yml``. Nothing is downloaded.

Usage::

    python scripts/build_data.py [--overwrite] [--no-embed] [--cache-dir DIR] [--device cpu]
"""

from __future__ import annotations

import sys

from hubrepro.cli import main

if __name__ == "__main__":
    status = main(["data", "build", *sys.argv[1:]])
    sys.exit(status or main(["data", "verify"]))
