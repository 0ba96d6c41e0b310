"""``crashlog.database`` without a database: passwords never shown, and a server that refuses at
once (port 1) or a malformed DSN explained without them. (A real server, and the embedded
default: tests/integration/test_database_server.py.)"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import pytest
from helpers.database import SECRET
from hypothesis import given, settings
from hypothesis import strategies as st

import crashlog
from crashlog.database import mask_dsn, mask_error, open_pool
from crashlog.projections.runner import Runner


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        (f"postgresql://alice:{SECRET}@db.example:5432/bots",
         "postgresql://alice:***@db.example:5432/bots"),
        (f"postgres://alice:{SECRET}@db.example/bots?sslmode=require&application_name=x",
         "postgres://alice:***@db.example/bots?sslmode=require&application_name=x"),
        (f"postgresql://:{SECRET}@db.example/bots", "postgresql://:***@db.example/bots"),
        (f"postgresql://alice:{SECRET}@h1:5432,h2:5433/bots",
         "postgresql://alice:***@h1:5432,h2:5433/bots"),
        (f"postgresql://alice@db.example/bots?password={SECRET}&sslmode=require",
         "postgresql://alice@db.example/bots?password=***&sslmode=require"),
        (f"postgresql://alice@db.example/bots?sslmode=require&password={SECRET}",
         "postgresql://alice@db.example/bots?sslmode=require&password=***"),
        (f"host=db.example port=5432 user=alice password={SECRET} dbname=bots",
         "host=db.example port=5432 user=alice password=*** dbname=bots"),
        (f"host=db.example password = {SECRET} dbname=bots",
         "host=db.example password = *** dbname=bots"),
        (f"host=db.example password='{SECRET} with spaces \\' and a quote' dbname=bots",
         "host=db.example password=*** dbname=bots"),
        (f"PASSWORD={SECRET} host=db.example", "PASSWORD=*** host=db.example"),
    ],
)
def test_mask_dsn_hides_the_password_and_keeps_the_rest(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


def test_mask_dsn_hides_a_password_holding_an_unencoded_at_sign() -> None:
    # Such a URL is ambiguous (asyncpg reads "S3cr" as the password and "tPart2@db.example" as
    # the host); either way no piece of what the user meant as the password may show.
    masked = mask_dsn("postgresql://alice:S3cr@tPart2@db.example/bots")
    assert "S3cr" not in masked and "tPart2" not in masked
    assert masked == "postgresql://alice:***@db.example/bots"


@pytest.mark.parametrize(
    "dsn",
    ["postgresql://alice@db.example:5432/bots", "postgresql://db.example/bots?sslmode=require",
     "host=db.example user=alice dbname=bots", "postgresql:///bots?host=/run/postgresql"],
)
def test_mask_dsn_leaves_a_dsn_without_password_alone(dsn: str) -> None:
    assert mask_dsn(dsn) == dsn


_passwords = st.text(min_size=1, max_size=30).filter(lambda p: "\x00" not in p)


@settings(max_examples=200, deadline=None)
@given(password=_passwords, user=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True))
def test_no_password_survives_masking_in_a_url(password: str, user: str) -> None:
    encoded = quote(password, safe="")
    assert mask_dsn(f"postgresql://{user}:{encoded}@db.example:5432/bots") == (
        f"postgresql://{user}:***@db.example:5432/bots")
    assert mask_dsn(f"postgresql://{user}@db.example/bots?sslmode=require&password={encoded}&x=1") == (
        f"postgresql://{user}@db.example/bots?sslmode=require&password=***&x=1")


@settings(max_examples=200, deadline=None)
@given(password=_passwords)
def test_no_password_survives_masking_in_key_value_form(password: str) -> None:
    quoted = "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"
    dsn = f"host=db.example user=alice password={quoted} dbname=bots"
    assert mask_dsn(dsn) == "host=db.example user=alice password=*** dbname=bots"


async def test_a_pool_that_cannot_connect_names_the_server_but_not_the_password() -> None:
    dsn = f"postgresql://alice:{SECRET}@127.0.0.1:1/bots"
    with pytest.raises(crashlog.ConnectFailed) as info:
        await open_pool(dsn, min_size=1, timeout=2)
    message = str(info.value)
    assert "postgresql://alice:***@127.0.0.1:1/bots" in message and SECRET not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(("dsn", "as_read"), [
    ("postgresql://alice:p%40ss%20word@db.example/bots", "p@ss word"),  # URL-encoded
    ("postgresql://alice@db.example/bots?password=p%26ss&sslmode=require", "p&ss"),
    (r"host=db.example user=alice password='it\'s secret' dbname=bots", "it's secret"),
])
def test_an_error_quoting_the_password_alone_shows_it_masked(dsn: str, as_read: str) -> None:
    text = mask_error(ValueError(f"cannot use <{as_read}> from {dsn}"), dsn)
    assert text == f"cannot use <***> from {mask_dsn(dsn)}"


async def test_a_runner_that_cannot_connect_logs_the_server_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="crashlog.projections")
    runner = Runner(f"postgresql://alice:{SECRET}@127.0.0.1:1/bots")
    runner.start()
    for _ in range(200):
        if "could not connect" in caplog.text:
            break
        await asyncio.sleep(0.01)
    await runner.stop()
    assert "alice:***@127.0.0.1:1" in caplog.text and SECRET not in caplog.text
    assert "Traceback" not in caplog.text  # a refused connection is a warning, not a crash


async def test_a_malformed_dsn_with_a_password_is_reported_without_it() -> None:
    with pytest.raises(crashlog.ConnectFailed) as info:
        async with crashlog.connect(f"postgresql://alice:{SECRET}@127.0.0.1:notaport/bots"):
            pass
    assert SECRET not in str(info.value)
