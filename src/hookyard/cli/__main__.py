"""`python -m hookyard.cli` (how `serve` starts its children)."""

import sys

from hookyard.cli import main

if __name__ == "__main__":
    sys.exit(main())
