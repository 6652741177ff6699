"""`python -m mechjax ...` is the `mechjax` command."""

import sys

from mechjax.cli import main

sys.exit(main())
