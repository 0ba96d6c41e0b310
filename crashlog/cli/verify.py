"""``crashlog verify``: recorded rounds against a published hash chain, or recorded Spribe
popups against their own seeds."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import asyncpg

from crashlog.cli.common import add_verb, with_connection
from crashlog.cli.render import DataTable, make_table, out, say
from crashlog.errors import CrashlogError
from crashlog.fairness.chains import SCHEMES as _SCHEME_REGISTRY

if TYPE_CHECKING:
    from crashlog.cli.common import Verbs
    from crashlog.fairness import ChainReport
    from crashlog.projections.fairness_records import SpribeSummary

# The choices are the package's scheme registry: a scheme added there is a choice here.
SCHEMES = tuple(_SCHEME_REGISTRY)
_MISMATCH_COLUMNS = (
    "game", "recorded", "readings", "computed", "observers", "ocr conf.", "flags", "game hash",
)
_SPRIBE_COLUMNS = ("game", "platform", "round", "bot", "result", "check", "status", "detail")


def register(verbs: Verbs) -> None:
    """Add ``verify`` to the parser."""
    verify = add_verb(
        verbs, "verify",
        "check recorded rounds against a published hash chain, or recorded Spribe popups",
        cmd_verify,
    )
    verify.add_argument("--game")
    verify.add_argument("--platform")
    verify.add_argument(
        "--scheme", choices=SCHEMES, help="the operator's provably-fair scheme (docs/fairness.md)"
    )
    verify.add_argument("--hash", help="the hash of game --game-id (a late game)")
    verify.add_argument(
        "--game-id", type=int, default=None,
        help="the game number of --hash (default: found by hashing it to the scheme's "
        "terminating hash, which also proves it is on the committed chain)",
    )
    verify.add_argument(
        "--rounds", type=int, default=1000, help="games to walk back (default 1000)"
    )
    verify.add_argument(
        "--spribe", action="store_true", help="check the recorded FairnessRecorded popups"
    )


@with_connection
async def cmd_verify(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    """Recorded rounds against a published hash chain, or recorded Spribe popups."""
    if args.spribe:
        return await verify_spribe(conn, args)
    from crashlog import fairness

    missing = [o for o, v in (("--game", args.game), ("--platform", args.platform),
                              ("--scheme", args.scheme), ("--hash", args.hash)) if not v]
    if missing:
        raise CrashlogError(f"verify needs {', '.join(missing)} (or --spribe)")
    report = await fairness.verify_chain(
        conn, platform=args.platform, game=args.game, scheme=args.scheme,
        latest_hash=args.hash, game_id=args.game_id, rounds=args.rounds,
    )
    if report.mismatches:
        out.print(mismatches_table(report))
    for line in chain_notes(report):
        say(line)
    return 1 if report.mismatches else 0


def mismatches_table(report: ChainReport) -> DataTable:
    table = make_table(
        f"{report.game} on {report.platform}: rounds that differ from {report.scheme}",
        _MISMATCH_COLUMNS, right=_MISMATCH_COLUMNS[:-2],
    )
    for m in report.mismatches:
        spread = "" if m.min_multiplier == m.max_multiplier else (
            f"{m.min_multiplier}-{m.max_multiplier}")
        table.add_row(
            m.game_round_id, str(m.recorded), f"{m.readings} {spread}".strip(), str(m.computed),
            str(m.observers), "" if m.ocr_confidence is None else f"{m.ocr_confidence:.2f}",
            ",".join(m.quality_flags), m.game_hash,
        )
    return table


def chain_notes(report: ChainReport) -> list[str]:
    """What was walked and matched, whether the hash is on the chain, and a hint if nothing matched."""
    notes = [
        f"games {report.latest_game_id - report.walked + 1}-{report.latest_game_id} "
        f"recomputed: {report.walked:,}; recorded: {report.recorded:,}; match: "
        f"{report.matched:,}; mismatch: {len(report.mismatches):,}; not recorded: "
        f"{report.missing:,}",
        f"the hash is game {report.latest_game_id} of the chain {report.scheme} committed to"
        if report.on_chain
        else "the hash was not checked against a committed chain (--game-id given)",
    ]
    if report.recorded >= 10 and report.matched == 0:
        notes.append("no recorded round matches: is --game-id the game whose hash --hash is, "
                     "and --scheme its operator's?")
    return notes


async def verify_spribe(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    from crashlog.projections.fairness_records import spribe_summary

    summary = await spribe_summary(conn, game=args.game, platform=args.platform)
    table = spribe_table(summary)
    if table.row_count:
        out.print(table)
    say(f"{len(summary.records):,} provably-fair records")
    for check, counts in summary.statuses().items():
        line = ", ".join(f"{status}: {n:,}" for status, n in sorted(counts.items()))
        say(f"  {check}: {line}")
    return 1 if table.row_count else 0


def spribe_table(summary: SpribeSummary) -> DataTable:
    """One row per failed or unconfirmed check of a record."""
    table = make_table("provably-fair records with a failed or unconfirmed check", _SPRIBE_COLUMNS)
    for record in summary.records:
        for finding in record.failed:
            table.add_row(record.game, record.platform, record.game_round_id or "",
                          record.bot_id, str(record.result or ""), finding.check,
                          finding.status, finding.detail)
    return table
