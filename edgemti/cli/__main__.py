"""``python -m edgemti.cli``: the console script without the installed entry point."""

import sys

from edgemti.cli import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
