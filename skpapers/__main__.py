"""``python -m skpapers``: the ``skpapers`` command."""

import sys

from skpapers._cli import main

if __name__ == "__main__":
    sys.exit(main())
