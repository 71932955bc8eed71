"""``python -m exchanges.simulator``: run the simulator in the foreground."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
