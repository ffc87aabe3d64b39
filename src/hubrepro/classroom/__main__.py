"""``python -m hubrepro.classroom``: the same commands as ``hubrepro classroom``."""

from __future__ import annotations

import sys

from hubrepro.cli.classroom import main

if __name__ == "__main__":
    sys.exit(main())
