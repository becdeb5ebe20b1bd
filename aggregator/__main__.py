"""``python -m aggregator`` is the ``aggregator`` command."""

import sys

from aggregator.cli import main

if __name__ == "__main__":  # not when a spawned child process imports it as __mp_main__
    sys.exit(main())
