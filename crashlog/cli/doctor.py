"""``crashlog doctor``: check the server, the migrations, the projections' lag and the spool."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
import orjson

from crashlog import health
from crashlog.cli.common import add_verb
from crashlog.cli.render import DataTable, coloured, make_table, out, print_json

if TYPE_CHECKING:
    from crashlog.cli.common import Verbs


def register(verbs: Verbs) -> None:
    """Add ``doctor`` to the parser."""
    doctor = add_verb(
        verbs, "doctor", "check the server, migrations, projection lag and the spool", cmd_doctor
    )
    doctor.add_argument(
        "--spool-dir",
        default=os.environ.get("CRASHLOG_SPOOL_DIR"),
        help="spool folder to inspect (default CRASHLOG_SPOOL_DIR)",
    )
    doctor.add_argument(
        "--max-lag",
        type=int,
        default=health.DEFAULT_MAX_LAG,
        help="events a projection may be behind before it is a failure",
    )
    doctor.add_argument("--json", action="store_true",
                        help='JSON instead of a table: {"ok": ..., "checks": [{"name", "ok", "detail"}]}')


async def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the server, the migrations, the projections' lag and the spool; 1 if any fails."""
    checks = await health.diagnose(args.dsn, max_lag=args.max_lag, spool_dir=args.spool_dir)
    ok = all(check.ok for check in checks)
    if args.json:
        document = {"ok": ok, "checks": [attrs.asdict(check) for check in checks]}
        print_json(orjson.dumps(document).decode())
    else:
        out.print(checks_table(checks))
    return 0 if ok else 1


def checks_table(checks: Sequence[health.Check]) -> DataTable:
    table = make_table("crashlog doctor", ("check", "", "detail"))
    for check in checks:
        verdict = coloured("ok", "green") if check.ok else coloured("FAIL", "red")
        table.add_row(check.name, verdict, check.detail)
    return table
