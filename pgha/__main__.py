"""`python -m pgha`: the same as the `pgha` command."""

import sys

from pgha.cli import main

sys.exit(main())
