"""Analyses read through one connection; given a pool, they borrow one for the call."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg

P = ParamSpec("P")
T = TypeVar("T")


def borrows_from_pool(
    read: Callable[Concatenate[asyncpg.Connection, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[asyncpg.Connection | asyncpg.Pool, P], Coroutine[Any, Any, T]]:
    """Let ``read(conn, ...)`` take a pool as well: it runs on a connection acquired from it.

    One connection for the whole call, so a read in one transaction (or one snapshot) stays
    on it, and it goes back to the pool when the call ends.
    """

    @functools.wraps(read)
    async def on_a_connection(
        conn: asyncpg.Connection | asyncpg.Pool, /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        if isinstance(conn, asyncpg.Pool):
            async with conn.acquire() as connection:
                return await read(connection, *args, **kwargs)
        return await read(conn, *args, **kwargs)

    return on_a_connection
