"""Entry point for ``python -m wtal_training.datasets`` (see :mod:`.cli`)."""

import sys

from .cli import main

sys.exit(main())
