"""``python -m nasforge.cli ...`` (torchrun starts the command line this way)."""

import sys

from nasforge.cli.app import main

sys.exit(main())
