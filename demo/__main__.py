"""``python -m demo``."""

import sys

from .scenario import main

sys.exit(main())
