"""Grafana's SQL macros, expanded as Grafana's PostgreSQL datasource expands them, so the
dashboard's panel queries can run against a real database in a test.

Covers what dashboards/grafana/crashlog.json uses: ``$__timeFilter(col)``,
``$__timeGroup(col, interval)``, ``$__timeGroupAlias(col, interval)``, ``$__timeFrom()``,
``$__timeTo()``, ``$__interval`` and multi-value template variables (``$bot``, ``$game``:
each value quoted as an SQL string, joined by commas, as Grafana does for ``IN ($var)``).
A macro left unexpanded fails the expansion, naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(interval: str) -> int:
    """``'5m'`` as 300."""
    match = re.fullmatch(r"'?(\d+)([smhd])'?", interval.strip())
    if not match:
        raise ValueError(f"invalid interval {interval!r}")
    return int(match[1]) * _UNITS[match[2]]


def quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def expand(sql: str, *, start: datetime, end: datetime, interval: str = "1m",
           variables: Mapping[str, Sequence[str]] | None = None) -> str:
    """``sql`` with every macro and variable replaced (see the module)."""
    frm, to = quoted(start.isoformat()) + "::timestamptz", quoted(end.isoformat()) + "::timestamptz"
    sql = sql.replace("$__interval", quoted(interval))

    def group(match: re.Match[str], alias: bool) -> str:
        column, step = (part.strip() for part in match[1].rsplit(",", 1))
        secs = seconds(step)
        text = f"floor(extract(epoch from {column})/{secs})*{secs}"
        return f'{text} AS "time"' if alias else text

    sql = re.sub(r"\$__timeGroupAlias\(([^()]*)\)", lambda m: group(m, True), sql)
    sql = re.sub(r"\$__timeGroup\(([^()]*)\)", lambda m: group(m, False), sql)
    sql = re.sub(r"\$__timeFilter\(([^()]*)\)", lambda m: f"{m[1].strip()} BETWEEN {frm} AND {to}", sql)
    sql = sql.replace("$__timeFrom()", frm).replace("$__timeTo()", to)
    for name, values in (variables or {}).items():
        sql = re.sub(rf"\${name}\b", ", ".join(quoted(v) for v in values), sql)
    left = re.findall(r"\$\w+", sql)
    if left:
        raise ValueError(f"unexpanded macros or variables: {sorted(set(left))}")
    return sql
