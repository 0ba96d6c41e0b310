"""``python -m crashlog.cli``: the ``crashlog`` command."""

import sys

from crashlog.cli import main

sys.exit(main())
