"""``resources.resource_dir`` without installing anything: sql/ and benchmarks/ are found in the
source tree, and a folder crashlog does not ship is refused by name. (An installed layout, through
``crashlog bench``: tests/system/test_bench.py.)"""

from __future__ import annotations

import pytest
from helpers.resources import SOURCE

from crashlog.resources import resource_dir


def test_the_source_tree_s_folders_are_found() -> None:
    assert resource_dir("sql") == SOURCE / "sql"
    assert resource_dir("benchmarks") == SOURCE / "benchmarks"
    assert (resource_dir("sql") / "001_event_log.sql").is_file()
    with pytest.raises(ValueError, match="name='docs'"):
        resource_dir("docs")
