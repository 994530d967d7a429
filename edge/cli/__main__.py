"""`python -m edge.cli`: the same as the `beltcam` command."""

import sys

from edge.cli.main import main

sys.exit(main())
