"""Where the source tree is: the folder holding crashlog/, sql/ and benchmarks/."""

from __future__ import annotations

from pathlib import Path

import crashlog

SOURCE = Path(crashlog.__file__).resolve().parent.parent
