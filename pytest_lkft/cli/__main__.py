"""`python -m pytest_lkft.cli`: the `lkft` command."""

import sys

from pytest_lkft.cli import main

sys.exit(main())
