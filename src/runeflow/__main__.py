"""``python -m runeflow``: the ``runeflow`` command (see :mod:`runeflow.cli`)."""

import sys

from runeflow.cli import main

sys.exit(main())
