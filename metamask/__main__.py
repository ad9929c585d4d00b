"""``python -m metamask`` == the ``metamask`` command."""

import sys

from metamask.cli import main

sys.exit(main())
