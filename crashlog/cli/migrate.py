"""``crashlog migrate`` and ``crashlog roles``: the schema and the roles that use it."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

import asyncpg

from crashlog import migrations
from crashlog.cli.common import add_verb, with_connection
from crashlog.cli.render import make_table, out, say
from crashlog.database import mask_dsn

if TYPE_CHECKING:
    from crashlog.cli.common import Verbs

_KINDS = ("writer", "projector", "analyst", "subscriber")


def register(verbs: Verbs) -> None:
    """Add ``migrate`` and ``roles`` to the parser."""
    migrate = add_verb(verbs, "migrate", "apply pending migrations (sql/NNN_*.sql)", cmd_migrate)
    migrate.add_argument(
        "--check", action="store_true", help="only list pending ones (exit 1 if any)"
    )
    roles = add_verb(
        verbs, "roles", "create the writer, projector, analyst and subscriber roles (needs CREATEROLE)",
        cmd_roles,
    )
    roles.add_argument("--prefix", default="crashlog", help="role names' prefix (default crashlog)")
    roles.add_argument(
        "--login",
        help="also create this login (password: CRASHLOG_NEW_PASSWORD "
        "or a prompt; sent to the server as a SCRAM verifier)",
    )
    roles.add_argument(
        "--kind", choices=_KINDS, default="writer", help="the role the login joins (default writer)"
    )


@with_connection
async def cmd_migrate(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    if args.check:
        pending = await migrations.pending_migrations(conn)
        for m in pending:
            say(f"pending: {m.name}")
        say("up to date" if not pending else f"{len(pending)} pending")
        return 1 if pending else 0
    applied = await migrations.migrate(conn)
    for m in applied:
        say(f"applied: {m.name}")
    say(f"{mask_dsn(dsn)}: schema up to date ({len(applied)} applied now)")
    return 0


@with_connection
async def cmd_roles(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    """Create the writer, projector, analyst and subscriber roles; optionally a login in one of them."""
    from crashlog import roles

    made = await roles.create_roles(conn, args.prefix)
    table = make_table("roles", ("role", "may"))
    table.add_row(made.writer, "append to crashlog.events (bots, with project=False)")
    table.add_row(made.projector, "read the log, own and write the read tables")
    table.add_row(made.analyst, "read every crashlog table")
    table.add_row(made.subscriber, "read the log, keep its subscriptions' checkpoints")
    out.print(table)
    if args.login:
        password = os.environ.get("CRASHLOG_NEW_PASSWORD")
        if password is None:
            import getpass

            password = getpass.getpass(f"password for {args.login}: ")
        await roles.create_login(conn, args.login, args.kind, prefix=args.prefix, password=password)
        say(f"login {args.login} created in {args.prefix}_{args.kind}")
    return 0
