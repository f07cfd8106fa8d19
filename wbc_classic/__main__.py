import sys

from wbc_classic.cli import main

sys.exit(main())
