"""``crashlog demo``: simulated bots play a simulated crash game; their statistics."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from crashlog.cli.common import add_verb
from crashlog.cli.render import err, out, progress_bar, say
from crashlog.cli.stats import statistics_table, warnings_note
from crashlog.database import mask_dsn, resolve_dsn
from crashlog.simulator import DEFAULT_RTP, STRATEGIES

if TYPE_CHECKING:
    from crashlog.cli.common import Verbs


def register(verbs: Verbs) -> None:
    """Add ``demo`` to the parser."""
    demo = add_verb(
        verbs, "demo", "simulated bots play a simulated crash game; print their statistics",
        cmd_demo,
    )
    demo.add_argument("--bots", type=int, default=6, help="number of bots (default 6)")
    demo.add_argument("--rounds", type=int, default=2000, help="rounds per bot (default 2000)")
    demo.add_argument(
        "--strategy",
        default="mixed",
        choices=["mixed", *STRATEGIES],
        help="every bot's strategy, or mixed (the three in turn; default)",
    )
    demo.add_argument(
        "--target",
        default=None,
        help="every bot's cash-out multiplier (default: 2.00, 1.50, 3.00 in turn)",
    )
    demo.add_argument(
        "--rtp", type=float, default=DEFAULT_RTP, help="return to player (default 0.97)"
    )
    demo.add_argument("--seed", type=int, default=None, help="seed of the game (default random)")
    demo.add_argument(
        "--report", type=Path, default=None, metavar="FILE",
        help="at the end, write the HTML report of the database to FILE (as `crashlog report -o FILE`)",
    )


async def cmd_demo(args: argparse.Namespace) -> int:
    from crashlog.demo import run_demo

    if args.report is not None:  # refuse an unwritable FILE before playing, not after
        from crashlog.report import check_writable

        check_writable(args.report)
    dsn = await asyncio.to_thread(resolve_dsn, args.dsn)
    say(f"demo: {args.bots} bots x {args.rounds} rounds, rtp {args.rtp}, on {mask_dsn(dsn)}", console=err)
    with progress_bar("playing", "rounds") as bar:
        task = bar.add_task("rounds", total=args.rounds)
        result = await run_demo(
            dsn,
            bots=args.bots,
            rounds=args.rounds,
            strategy=args.strategy,
            rtp=args.rtp,
            seed=args.seed,
            target=args.target,
            progress=lambda n: bar.update(task, completed=n),
        )
    out.print(statistics_table(result.statistics, f"demo {result.run_id}: per-bot statistics"))
    note = warnings_note(result.statistics)
    if note:
        say(note)
    out.print(
        f"{result.events:,} events written in {result.write_seconds:.2f} s "
        f"({result.write_rate:,.0f} events/s), projected after {result.sync_seconds:.2f} s"
    )
    if args.report is not None:
        from crashlog.cli.report import tell
        from crashlog.report import write_report

        tell(args.report, await write_report(args.report, dsn))
    return 0
