"""`python -m nmt ...` is the same as `nmt ...`."""

import sys

from nmt.cli import main

sys.exit(main())
