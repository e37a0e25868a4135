"""``python -m regen_bench`` (and ``accelerate launch -m regen_bench ...``) runs the CLI."""

import sys

from regen_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
