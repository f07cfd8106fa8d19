"""``python -m wbc_classic.cli``: the same as the ``wbc-classic`` command."""

import sys

from wbc_classic.cli import main

sys.exit(main())
