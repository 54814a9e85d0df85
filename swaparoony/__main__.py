"""`python -m swaparoony ...`, the same as the `swaparoony` command."""

import sys

from .cli import main

sys.exit(main())
