"""``crashlog tail``: print events as they are committed, in the log's commit-safe order."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import asyncpg
from rich.text import Text

from crashlog.cli.common import add_verb, with_connection
from crashlog.cli.render import err, out, shown
from crashlog.projections.follower import CommittedEvent, start_back
from crashlog.subscriptions import Start, Subscription

if TYPE_CHECKING:
    from crashlog.cli.common import Verbs

#: Payloads longer than this are cut, with "..." at the end.
PAYLOAD_WIDTH = 160


def register(verbs: Verbs) -> None:
    """Add ``tail`` to the parser."""
    tail = add_verb(verbs, "tail", "print events as they are committed", cmd_tail)
    tail.add_argument("--from-start", action="store_true", help="from the first event")
    tail.add_argument("--last", type=int, default=10, help="show this many recent events first")
    tail.add_argument("--bot", help="only this bot's events")
    tail.add_argument("--type", help="only this event type, e.g. RoundSettled")
    tail.add_argument("--count", type=int, default=None, help="stop after this many events")
    tail.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")


@with_connection
async def cmd_tail(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    """Print events as they commit, in the log's commit-safe order."""
    start: Start = "beginning" if args.from_start else await start_back(conn, args.last)
    events = None if args.type is None else [args.type]
    # An ephemeral subscription (no checkpoint, no exclusion) on this connection.
    async with Subscription(conn, None, events=events, start=start) as log:
        err.print("following new events (Ctrl-C to stop)")
        try:
            async with asyncio.timeout(args.seconds):
                await print_events(stored_events(log, args.bot), args.count)
        except TimeoutError:
            pass
    return 0


async def stored_events(log: Subscription, bot_id: str | None) -> AsyncIterator[CommittedEvent]:
    """The rows ``log`` delivers, as stored, optionally only ``bot_id``'s."""
    async for batch in log:
        for row in batch.rows:
            if bot_id is None or row.bot_id == bot_id:
                yield row


async def print_events(log: AsyncIterator[CommittedEvent], count: int | None) -> None:
    """Print what ``log`` yields, until ``count`` events (None: until stopped)."""
    printed = 0
    if count is not None and count <= 0:
        return
    async for event in log:
        print_event(event)
        printed += 1
        if printed == count:
            return


def print_event(event: CommittedEvent) -> None:
    """One line per event; its data escaped (``render.shown``), never read as markup."""
    payload = event.payload
    if len(payload) > PAYLOAD_WIDTH:
        payload = payload[: PAYLOAD_WIDTH - 3] + "..."
    line = Text.assemble(
        f"{event.position:>9} {event.occurred_at:%Y-%m-%d %H:%M:%S} ",
        (shown(event.event_type), "bold"),
        f" {shown(event.bot_id)} {shown(payload)}",
    )
    out.print(line, soft_wrap=True)
