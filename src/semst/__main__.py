"""``python -m semst`` is the ``semst`` command."""

import sys

from semst.cli import main

if __name__ == "__main__":
    sys.exit(main())
