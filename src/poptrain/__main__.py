"""``python -m poptrain ...`` = the ``poptrain`` console script."""

import sys

from poptrain.cli import main

sys.exit(main())
