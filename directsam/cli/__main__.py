"""``python -m directsam.cli COMMAND ...``: the ``directsam`` console script."""

import sys

from directsam.cli import main

sys.exit(main())
