"""``crashlog subscriptions``: list the named subscriptions with their lag, or drop one."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import asyncpg
from rich.table import Table

from crashlog import subscriptions
from crashlog.cli.common import add_verb, with_connection
from crashlog.cli.render import make_table, out

if TYPE_CHECKING:
    from crashlog.cli.common import Verbs


def register(verbs: Verbs) -> None:
    """Add ``subscriptions`` to the parser."""
    sub = add_verb(verbs, "subscriptions",
                   "list the log's named subscriptions with their lag, or drop one",
                   cmd_subscriptions)
    sub.add_argument("--drop", metavar="NAME",
                     help="remove this subscription (its checkpoint); refused while it runs")


@with_connection
async def cmd_subscriptions(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    """List the subscriptions, or drop ``--drop``'s."""
    if args.drop is not None:
        await subscriptions.drop(conn, args.drop)
        out.print(f"dropped subscription {args.drop}", markup=False)
        return 0
    out.print(subscriptions_table(await subscriptions.subscriptions(conn)))
    return 0


def subscriptions_table(states: list[subscriptions.SubscriptionState]) -> Table:
    columns = ("subscription", "events", "lag (events)", "lag (s)", "delivered", "consumer")
    table = make_table("subscriptions", columns, right=columns[2:5])
    for s in states:
        table.add_row(
            s.name,
            "all" if s.event_types is None else ", ".join(s.event_types),
            f"{s.lag_events:,}",
            f"{s.lag_seconds:.1f}",
            f"{s.events_delivered:,}",
            "-" if s.consumer_pid is None else f"pid {s.consumer_pid}",
        )
    return table
