"""``python -m hubrepro`` runs the command line."""

import sys

from hubrepro.cli import main

sys.exit(main())
