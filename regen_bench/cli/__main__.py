"""``python -m regen_bench.cli`` runs the command line (as ``python -m regen_bench`` does)."""

import sys

from regen_bench.cli import main

sys.exit(main())
