"""`python -m tfgate.clients.cli …`: the same as the `tfgate` entry point."""

import sys

from tfgate.clients.cli import main

sys.exit(main())
