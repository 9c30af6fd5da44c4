"""Entry point for `python -m wrn_core`."""

import sys

from wrn_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
