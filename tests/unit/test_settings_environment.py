"""Every Settings field from its CRASHLOG_<FIELD> variable; bad values refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crashlog import Settings
from crashlog.errors import InvalidSetting
from crashlog.settings import environment_table, from_environment, variable

FIELDS = {field.name: field for field in attrs.fields(Settings)}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def valid_text(name: str) -> st.SearchStrategy[tuple[str, Any]]:
    """(the variable's text, the value the field must get) for ``name``."""
    default = FIELDS[name].default
    if name == "on_full":
        return st.sampled_from(["wait", "raise"]).map(lambda v: (v, v))
    if name == "spool_dir":
        return st.sampled_from(["/var/spool/crashlog", "spool", "C:\\spool"]).map(lambda v: (v, v))
    if isinstance(default, bool):
        return st.sampled_from([("1", True), ("TRUE", True), ("yes", True), ("off", False), ("0", False)])
    if isinstance(default, int):
        return st.integers(1, 10**9).map(lambda n: (f" {n} ", n))
    assert isinstance(default, float), name
    return st.floats(0.001, 1e6).map(lambda x: (repr(x), x))


@given(data=st.data(), name=st.sampled_from(sorted(FIELDS)))
def test_every_field_is_read_from_its_variable(data: st.DataObject, name: str) -> None:
    text, expected = data.draw(valid_text(name))
    environ = {variable(name): text}
    assert from_environment(environ) == {name: expected}
    # The explicit argument wins over the variable: not read at all when given.
    assert from_environment(environ, skip={name: None}) == {}


def bad_text(name: str) -> st.SearchStrategy[str]:
    default = FIELDS[name].default
    if name == "on_full":
        return st.sampled_from(["drop", "", "WAIT!"])
    if isinstance(default, bool):
        return st.sampled_from(["maybe", "2", "", "truee"])
    if isinstance(default, int):
        return st.sampled_from(["abc", "1.5", "0", "-3", "", "1e3"])
    if isinstance(default, float):
        return st.sampled_from(["abc", "0", "-0.5", "", "1,5"])
    return st.nothing()


CHECKED = sorted(name for name in FIELDS if name != "spool_dir")  # any text is a folder


@given(data=st.data(), name=st.sampled_from(CHECKED))
def test_a_bad_value_of_each_kind_is_refused_naming_the_variable_and_the_value(
    data: st.DataObject, name: str
) -> None:
    text = data.draw(bad_text(name))
    with pytest.raises(InvalidSetting) as refused:
        from_environment({variable(name): text})
    assert refused.value.variable == variable(name) and refused.value.value == text
    assert variable(name) in str(refused.value) and repr(text) in str(refused.value)
    assert name in str(refused.value)


def test_settings_read_the_environment_when_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRASHLOG_BATCH_SIZE", "123")
    monkeypatch.setenv("CRASHLOG_SPOOL_DIR", "/tmp/fleet-spool")
    monkeypatch.setenv("CRASHLOG_MIGRATE", "no")
    settings = Settings()
    assert (settings.batch_size, settings.spool_dir, settings.migrate) == (123, "/tmp/fleet-spool", False)
    # Given explicitly, even as None, an argument wins over the variable.
    assert Settings(spool_dir=None).spool_dir is None
    assert Settings(batch_size=7).batch_size == 7
    monkeypatch.delenv("CRASHLOG_BATCH_SIZE")
    assert Settings().batch_size == FIELDS["batch_size"].default  # then the default


def test_a_bad_variable_stops_settings_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRASHLOG_FLUSH_INTERVAL", "soon")
    with pytest.raises(InvalidSetting, match=r"CRASHLOG_FLUSH_INTERVAL='soon'"):
        Settings()
    assert Settings(flush_interval=0.2).flush_interval == 0.2  # not read when given


def test_the_operations_page_lists_every_variable_with_its_default() -> None:
    page = DOCS.read_text()
    rows = environment_table()
    assert len(rows) == len(FIELDS)
    missing = [row for row in rows if row not in page]
    assert not missing, "docs/operations.md lacks (or has a stale default for):\n" + "\n".join(missing)
