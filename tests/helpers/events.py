"""The events' property tests, as deep as asked."""

import os

#: CRASHLOG_HYPOTHESIS_SCALE=10 runs ten times the examples (a deeper search, not for every CI run).
SCALE = int(os.environ.get("CRASHLOG_HYPOTHESIS_SCALE", "1"))
