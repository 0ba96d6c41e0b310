"""Built-in handlers read stored payloads without upcasting: each declares the schema version
of every event type it reads, and that version must be the catalogue's current one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from crashlog.events import EVENT_TYPES, RoundSettled
from crashlog.projections import PROJECTIONS, Projection


def stale_reads(projections: Sequence[Projection], current: Mapping[str, int]) -> list[str]:
    """What is wrong with the projections' declarations against ``current`` versions."""
    problems = []
    for p in projections:
        if set(p.reads) != set(p.event_types):
            problems.append(f"{p.name} reads {sorted(p.event_types)} but declares {sorted(p.reads)}")
        for event_type, version in p.reads.items():
            if current.get(event_type) != version:
                problems.append(
                    f"{p.name} reads {event_type} v{version}; the catalogue's is "
                    f"v{current.get(event_type)}: update the handler (or upcast in SQL before it)"
                )
    return problems


def catalogue_versions() -> dict[str, int]:
    return {name: cls.schema_version for name, cls in EVENT_TYPES.items()}


def test_every_builtin_handler_reads_the_current_version_of_its_events() -> None:
    assert stale_reads(PROJECTIONS, catalogue_versions()) == []


def test_every_builtin_projection_declares_what_it_reads() -> None:
    for p in PROJECTIONS:
        assert p.reads, f"{p.name} declares no reads"


@pytest.mark.parametrize("event_type", ["RoundSettled", "SessionEnded", "SignalRaised"])
def test_a_version_bump_without_the_handlers_fails(event_type: str) -> None:
    bumped = {**catalogue_versions(), event_type: EVENT_TYPES[event_type].schema_version + 1}
    problems = stale_reads(PROJECTIONS, bumped)
    readers = sorted(p.name for p in PROJECTIONS if event_type in p.reads)
    assert readers, event_type
    for name in readers:
        assert any(msg.startswith(f"{name} reads {event_type} v") for msg in problems), name


def test_the_check_sees_the_class_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RoundSettled, "schema_version", 2)
    assert any("rounds reads RoundSettled v1" in m for m in stale_reads(PROJECTIONS, catalogue_versions()))
