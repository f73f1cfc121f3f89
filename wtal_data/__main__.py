"""Entry point for ``python -m wtal_data`` (see :mod:`.cli`)."""

import sys

from .cli import main

sys.exit(main())
