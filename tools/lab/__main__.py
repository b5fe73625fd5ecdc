"""`python -m tools.lab`: see tools/lab/_cli.py."""

import sys

from tools.lab._cli import main

sys.exit(main())
