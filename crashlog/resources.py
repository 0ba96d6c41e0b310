"""Finding the folders crashlog ships beside its code: ``sql/`` and ``benchmarks/``.

The source tree keeps them at the top level, next to ``crashlog/``; a wheel carries them
inside the package (``crashlog/sql``, ``crashlog/benchmarks``: pyproject's force-include).

Promises:
- ``resource_dir(name)`` is the folder ``name`` for this copy of crashlog, whether it was
  installed from a wheel, installed editable, or imported from the source tree.
- A folder found neither way is a ``FileNotFoundError`` naming both places looked at.
"""

from __future__ import annotations

from pathlib import Path

#: The folders crashlog ships.
RESOURCES = ("sql", "benchmarks")

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The folder ``name`` (one of ``RESOURCES``): inside the package, else the source tree's."""
    if name not in RESOURCES:
        raise ValueError(f"invalid resource name={name!r}: must be one of {', '.join(RESOURCES)}")
    places = (_PACKAGE / name, _PACKAGE.parent / name)  # a wheel's, then the source tree's
    for place in places:
        if place.is_dir():
            return place
    raise FileNotFoundError(
        f"crashlog's {name}/ folder is missing: looked in {places[0]} and {places[1]}"
    )
