"""``python -m sklearn_overseg.cli``: the ``overseg`` command."""

import sys

from . import main

sys.exit(main())
