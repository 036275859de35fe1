"""`python -m ildata.cli`: the same entry point as the `ildata` script."""

import sys

from ildata.cli import main

if __name__ == "__main__":
    sys.exit(main())
