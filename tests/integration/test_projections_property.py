"""Properties of the read models: batches, re-deliveries, rebuilds and bot interleavings
change nothing, and every table equals a reference model computed here in plain Python.

Each example gets a database of its own (cloned from the migrated template).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from conftest import new_database
from helpers.log import row_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import valid_events

from crashlog import store
from crashlog.events import (
    BotErrorRaised,
    BotRegistered,
    Event,
    GameConfigured,
    OcrRead,
    Outcome,
    RoundObserved,
    RoundSettled,
    SessionEnded,
    SessionStarted,
    SignalRaised,
)
from crashlog.projections import PROJECTIONS
from crashlog.projections import chunks as key_chunks
from crashlog.projections.rebuild import rebuild_projections

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BOTS = ("b0", "b1", "b2")
#: Columns that record log positions: they follow the interleaving of bots, nothing else does.
POSITIONAL = {"position", "first_position", "last_tx_id", "last_position", "start_tx_id",
              "start_position", "end_tx_id", "end_position"}
TABLES = [t for p in PROJECTIONS for t in p.tables]
KEYS = {
    "bots": ("bot_id",), "game_configs": ("platform", "game"), "sessions": ("bot_id", "session_id"),
    "bot_stats": ("bot_id", "strategy_name"),
    "round_multipliers": ("platform", "game", "game_round_id", "event_id"),
}

# -- events from a small domain, so that keys collide ------------------------------------------

bots = st.sampled_from(BOTS)
times = st.integers(0, 4).map(lambda s: T0 + timedelta(seconds=s))
# 2.453 is off the two-decimal grid: accepted, and flagged in round_multipliers.
multipliers = st.sampled_from([Decimal("1.00"), Decimal("1.50"), Decimal("2.00"), Decimal("2.45"),
                               Decimal("2.453")])
confidences = st.none() | st.sampled_from([0.5, 0.95])
money = st.sampled_from([Decimal("0"), Decimal("5.00"), Decimal("10"), Decimal("-10.00"),
                         Decimal("2.50"), Decimal("1000.00"), Decimal("1005")])
maybe = lambda s: st.none() | s  # noqa: E731
round_ids = maybe(st.sampled_from(["g1", "g2"]))
round_numbers = maybe(st.integers(1, 2))
games = st.sampled_from([("aviator", "demo"), ("jetx", "demo")])


def _settled(bot, game, rid, rn, strategy, stake, crash, cash, outcome, profit, before, after, t, ocr):
    return RoundSettled(
        bot_id=bot, session_id="s1", game=game[0], platform=game[1], game_round_id=rid,
        round_number=rn, strategy_name=strategy, stake=stake, crash_multiplier=crash,
        cashout_multiplier=cash, outcome=outcome, profit_loss=profit, balance_before=before,
        balance_after=after, occurred_at=t, ocr_confidence=ocr)


events = st.one_of(
    st.builds(_settled, bots, games, round_ids, round_numbers, maybe(st.sampled_from(["x", "y"])),
              st.sampled_from([Decimal("10"), Decimal("5.00")]), multipliers, maybe(multipliers),
              st.sampled_from(list(Outcome)), money, maybe(money), maybe(money), times, confidences),
    st.builds(lambda bot, game, rid, rn, m, t: RoundObserved(
        bot_id=bot, game=game[0], platform=game[1], game_round_id=rid, round_number=rn,
        crash_multiplier=m, occurred_at=t), bots, games, round_ids, round_numbers, multipliers, times),
    st.builds(lambda bot, game, rid, rn, m, t: SignalRaised(
        bot_id=bot, game=game[0], platform=game[1], signal_type="trend", for_game_round_id=rid,
        for_round_number=rn, predicted_multiplier=m, feature_vector=[0.5, 1.5], occurred_at=t),
        bots, games, round_ids, round_numbers, maybe(multipliers), times),
    st.builds(lambda bot, name, strategy, t: BotRegistered(
        bot_id=bot, bot_name=name, strategy_name=strategy, occurred_at=t),
        bots, st.sampled_from(["alpha", "beta"]), maybe(st.just("x")), times),
    st.builds(lambda bot, game, stake, t: GameConfigured(
        bot_id=bot, game=game[0], platform=game[1], min_stake=stake, occurred_at=t),
        bots, games, st.sampled_from([Decimal("1"), Decimal("2")]), times),
    st.builds(lambda bot, sid, balance, t: SessionStarted(
        bot_id=bot, session_id=sid, balance=balance, occurred_at=t),
        bots, st.sampled_from(["s1", "s2"]), maybe(money), times),
    st.builds(lambda bot, sid, balance, t: SessionEnded(
        bot_id=bot, session_id=sid, balance=balance, reason="done", occurred_at=t),
        bots, st.sampled_from(["s1", "s2"]), maybe(money), times),
    st.builds(lambda bot, t: OcrRead(bot_id=bot, field="balance", raw_text="1.00",
                                     parsed_value=Decimal("1.00"), occurred_at=t), bots, times),
    st.builds(lambda bot, t: BotErrorRaised(bot_id=bot, error_type="Timeout", message="m",
                                            occurred_at=t), bots, times),
)


# -- databases and tables ----------------------------------------------------------------------

@asynccontextmanager
async def fresh_database(server_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a new database cloned from the suite's migrated template."""
    async with new_database(server_dsn) as dsn:
        conn = await asyncpg.connect(dsn)
        await store.init_connection(conn)
        try:
            yield conn
        finally:
            await conn.close()


async def append(conn: asyncpg.Connection, chunks: list[list[Event]]) -> None:
    """Append each chunk in a transaction of its own; an id already stored is skipped."""
    for chunk in chunks:
        if chunk:
            await store.insert_rows_idempotent(conn, [row_of(e) for e in chunk])


async def snapshot(conn: asyncpg.Connection, *, positional: bool = True) -> dict[str, list]:
    """Every read table's rows, sorted, optionally without positional columns."""
    tables = {}
    for table in TABLES:
        rows = [dict(r) for r in await conn.fetch(f"SELECT * FROM crashlog.{table}")]
        if not positional:
            rows = [{k: v for k, v in r.items() if k not in POSITIONAL} for r in rows]
        tables[table] = sorted(rows, key=repr)
    return tables


async def below_the_horizon(conn: asyncpg.Connection, timeout: float = 60) -> None:
    """Wait until every stored event sits below the reading horizon, so a rebuild sees it all.

    The horizon is the whole server's: a transaction open in any database (another test
    run on a shared server, say) holds it back, and a rebuild reads only below it.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while not await conn.fetchval(
        "SELECT coalesce(max(tx_id) < pg_snapshot_xmin(pg_current_snapshot()), true)"
        " FROM crashlog.events"
    ):
        assert asyncio.get_running_loop().time() < deadline, "an open transaction held the horizon"
        await asyncio.sleep(0.05)


async def apply_span(conn: asyncpg.Connection, lo: tuple[int, int], hi: tuple[int, int]) -> None:
    async with conn.transaction():
        for p in PROJECTIONS:
            await p.apply(conn, p.live_tables(), (*lo, *hi))


# -- the reference model -----------------------------------------------------------------------

def _mode(readings: list[tuple[Decimal, datetime]]) -> Decimal | None:
    if not readings:
        return None
    counts = Counter(m for m, _ in readings)
    first = {m: min(t for v, t in readings if v == m) for m in counts}
    return min(counts, key=lambda m: (-counts[m], first[m], m))


def _contradictions(e: RoundSettled) -> list[str]:
    flags, cent = [], Decimal("0.01")
    if e.outcome is Outcome.WIN and e.cashout_multiplier is not None and e.cashout_multiplier > e.crash_multiplier:
        flags.append("win_cashout_above_crash")
    expected = {Outcome.LOSS: -e.stake, Outcome.SKIP: Decimal(0)}.get(e.outcome)
    if e.outcome is Outcome.WIN and e.cashout_multiplier is not None:
        expected = e.stake * (e.cashout_multiplier - 1)
    if expected is not None and abs(e.profit_loss - expected) >= cent:
        flags.append("profit_mismatch")
    if e.balance_before is not None and e.balance_after is not None and \
            abs(e.balance_after - (e.balance_before + e.profit_loss)) >= cent:
        flags.append("balance_mismatch")
    return flags


def reference(log: list[Event]) -> dict[str, Any]:
    """What the read tables must hold for ``log`` (unique events, in log order)."""
    of = lambda cls: [e for e in log if type(e) is cls]  # noqa: E731
    settled, readings = of(RoundSettled), [e for e in log if type(e) in (RoundSettled, RoundObserved)]
    ref: dict[str, Any] = {}
    ref["rounds"] = {e.event_id: (e.bot_id, e.profit_loss, _contradictions(e)) for e in settled}
    ref["round_outcomes"] = {e.event_id: e.outcome.value for e in settled}
    ref["ocr_readings"] = {e.event_id for e in of(OcrRead)}
    ref["bot_errors"] = {e.event_id for e in of(BotErrorRaised)}
    bots: dict[str, Any] = {}
    for e in of(BotRegistered):
        first = bots.get(e.bot_id, (None, None, e.occurred_at))[2]
        bots[e.bot_id] = (e.bot_name, e.strategy_name, min(first, e.occurred_at), e.occurred_at)
    ref["bots"] = bots
    configs: dict[tuple, GameConfigured] = {}
    for e in of(GameConfigured):
        key, best = (e.platform, e.game), configs.get((e.platform, e.game))
        if best is None or (e.occurred_at, e.event_id) > (best.occurred_at, best.event_id):
            configs[key] = e
    ref["game_configs"] = {k: (e.min_stake, e.bot_id) for k, e in configs.items()}
    sessions: dict[tuple, dict] = defaultdict(lambda: {"start": None, "end": None})
    for e in log:
        if isinstance(e, SessionStarted):
            sessions[(e.bot_id, e.session_id)]["start"] = (e.balance, e.occurred_at)
        elif isinstance(e, SessionEnded):
            sessions[(e.bot_id, e.session_id)]["end"] = (e.balance, e.occurred_at)
    ref["sessions"] = {k: (v["start"], v["end"]) for k, v in sessions.items()}
    multipliers, keyed = {}, defaultdict(list)
    for e in readings:
        if e.game_round_id is None:
            keyed[("event", e.event_id)].append(e)
        else:
            keyed[(e.platform, e.game, e.game_round_id)].append(e)
    for key, group in keyed.items():
        values = [e.crash_multiplier for e in group]
        given = [c for e in group if (c := getattr(e, "ocr_confidence", None)) is not None]
        confidence = min(given) if given else None
        flags = [flag for flag, raised in (
            ("off_grid", any(v != v.quantize(Decimal("0.01")) for v in values)),
            ("disagreement", len(set(values)) > 1),
            ("low_ocr_confidence", confidence is not None and confidence < 0.8)) if raised]
        multipliers[key] = (_mode([(e.crash_multiplier, e.occurred_at) for e in group]),
                            len({e.bot_id for e in group}), len(group), len(set(values)) > 1,
                            confidence, flags)
    ref["round_multipliers"] = multipliers
    signals = {}
    for s in of(SignalRaised):
        if s.for_game_round_id is not None:
            match = [e for e in readings if (e.platform, e.game, e.game_round_id)
                     == (s.platform, s.game, s.for_game_round_id)]
        else:
            match = [e for e in readings if s.for_round_number is not None and
                     (e.bot_id, e.platform, e.game, e.round_number)
                     == (s.bot_id, s.platform, s.game, s.for_round_number)]
        actual = _mode([(e.crash_multiplier, e.occurred_at) for e in match])
        hit = None if actual is None or s.predicted_multiplier is None else actual >= s.predicted_multiplier
        signals[s.event_id] = (actual, hit, actual is not None)
    ref["round_signals"] = signals
    stats: dict[tuple, dict] = {}
    for e in settled:
        for strategy in ("", e.strategy_name) if e.strategy_name else ("",):
            row = stats.setdefault((e.bot_id, strategy), {
                "rounds": 0, "wins": 0, "losses": 0, "skips": 0, "total_staked": Decimal(0),
                "total_profit": Decimal(0), "last_balance": None, "first": e.occurred_at,
                "updated": e.occurred_at})
            row["rounds"] += 1
            row[{"WIN": "wins", "LOSS": "losses", "SKIP": "skips"}[e.outcome.value]] += 1
            row["total_staked"] += e.stake if e.outcome is not Outcome.SKIP else 0
            row["total_profit"] += e.profit_loss
            row["last_balance"] = e.balance_after if e.balance_after is not None else row["last_balance"]
            row["first"], row["updated"] = min(row["first"], e.occurred_at), max(row["updated"], e.occurred_at)
    ref["bot_stats"] = {k: tuple(v.values()) for k, v in stats.items()}
    return ref


async def observed(conn: asyncpg.Connection) -> dict[str, Any]:
    """The same facts as ``reference``, read from the tables."""
    q = conn.fetch
    got: dict[str, Any] = {}
    got["rounds"] = {r["event_id"]: (r["bot_id"], r["profit_loss"], list(r["contradictions"]))
                     for r in await q("SELECT * FROM crashlog.rounds")}
    for r in await q("SELECT * FROM crashlog.rounds"):
        assert r["is_contradictory"] == bool(r["contradictions"])
    got["round_outcomes"] = {r["event_id"]: r["outcome"] for r in await q("SELECT * FROM crashlog.round_outcomes")}
    got["ocr_readings"] = {r["event_id"] for r in await q("SELECT event_id FROM crashlog.ocr_readings")}
    got["bot_errors"] = {r["event_id"] for r in await q("SELECT event_id FROM crashlog.bot_errors")}
    got["bots"] = {r["bot_id"]: (r["bot_name"], r["strategy_name"], r["registered_at"], r["updated_at"])
                   for r in await q("SELECT * FROM crashlog.bots")}
    got["game_configs"] = {(r["platform"], r["game"]): (r["min_stake"], r["reported_by"])
                           for r in await q("SELECT * FROM crashlog.game_configs")}
    got["sessions"] = {
        (r["bot_id"], r["session_id"]): (
            None if r["start_tx_id"] is None else (r["start_balance"], r["started_at"]),
            None if r["end_tx_id"] is None else (r["end_balance"], r["ended_at"]))
        for r in await q("SELECT * FROM crashlog.sessions")}
    got["round_multipliers"] = {
        (("event", r["event_id"]) if r["game_round_id"] is None else (r["platform"], r["game"], r["game_round_id"])):
        (r["multiplier"], r["observers"], r["readings"], r["disagreement"], r["ocr_confidence"],
         r["quality_flags"])
        for r in await q("SELECT * FROM crashlog.round_multipliers")}
    got["round_signals"] = {r["event_id"]: (r["actual_multiplier"], r["hit"], r["resolved"])
                            for r in await q("SELECT * FROM crashlog.round_signals")}
    got["bot_stats"] = {
        (r["bot_id"], r["strategy_name"]): (r["rounds"], r["wins"], r["losses"], r["skips"],
                                            r["total_staked"], r["total_profit"], r["last_balance"],
                                            r["first_round_at"], r["updated_at"])
        for r in await q("SELECT * FROM crashlog.bot_stats")}
    return got


# -- the properties ----------------------------------------------------------------------------

@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    log=st.lists(events, min_size=1, max_size=30),
    data=st.data(),
)
async def test_batches_redeliveries_and_rebuilds_equal_the_reference(server_dsn, template_dsn, log, data):
    # Duplicates: some events are emitted twice; the log stores each id once.
    repeats = data.draw(st.lists(st.sampled_from(log), max_size=5))
    sent = log + repeats
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(sent)), max_size=6))))
    chunks = [sent[a:b] for a, b in zip([0, *cuts], [*cuts, len(sent)])]
    async with fresh_database(server_dsn) as conn:
        await append(conn, chunks)
        order = [(r["tx_id"], r["position"]) for r in await conn.fetch(
            "SELECT tx_id, position FROM crashlog.events ORDER BY tx_id, position")]
        # Cut the log into spans; after each, maybe re-deliver an earlier span.
        points = sorted(set(data.draw(st.lists(st.integers(0, len(order) - 1), max_size=8))))
        ends = [order[i] for i in points] + [order[-1]]
        spans, lo = [], (0, 0)
        for hi in ends:
            if hi > lo:
                spans.append((lo, hi))
                lo = hi
        for i, (lo, hi) in enumerate(spans):
            await apply_span(conn, lo, hi)
            if data.draw(st.booleans()):
                again = spans[data.draw(st.integers(0, i))]
                await apply_span(conn, *again)
        await apply_span(conn, *spans[-1])  # the last batch once more
        incremental = await snapshot(conn)
        unique = list({e.event_id: e for e in sent}.values())  # in order of first occurrence
        assert await observed(conn) == reference(unique)
        await below_the_horizon(conn)
        # In batches of any size: a rebuild records every batch, then derives every row in
        # chunks of any size (or batch by batch, for a projection with no derive_all).
        rows, key_chunks.CHUNK_ROWS = key_chunks.CHUNK_ROWS, data.draw(st.integers(1, 12))
        try:
            await rebuild_projections(conn, PROJECTIONS, batch_size=data.draw(st.integers(1, 12)))
        finally:
            key_chunks.CHUNK_ROWS = rows
        assert await snapshot(conn) == incremental


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(log=st.lists(events, min_size=10, max_size=40), rng=st.randoms(use_true_random=False))
async def test_bots_interleaved_differently_give_the_same_tables(server_dsn, template_dsn, log, rng):
    """Each bot's events keep their order; how bots interleave changes no table (but
    the columns that record log positions)."""
    per_bot: dict[str, list[Event]] = defaultdict(list)
    for event in log:
        per_bot[event.bot_id].append(event)
    results = []
    for _ in range(3):
        lanes = {bot: list(evs) for bot, evs in per_bot.items()}
        interleaved = []
        while any(lanes.values()):
            bot = rng.choice([b for b, evs in lanes.items() if evs])
            interleaved.append(lanes[bot].pop(0))
        cut = rng.randrange(1, len(interleaved))
        async with fresh_database(server_dsn) as conn:
            await append(conn, [interleaved[:cut], interleaved[cut:]])
            top = await conn.fetchrow("SELECT tx_id, position FROM crashlog.events ORDER BY 1 DESC, 2 DESC LIMIT 1")
            await apply_span(conn, (0, 0), (top["tx_id"], top["position"]))
            results.append(await snapshot(conn, positional=False))
    assert results[0] == results[1] == results[2]


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(log=st.lists(valid_events(), min_size=1, max_size=12))
async def test_every_event_that_passes_emit_projects_without_error(server_dsn, template_dsn, log):
    """Any valid event (extreme decimals, 64-bit integers, any unicode, nested JSON, time
    zones) is applied by every projection, and each lands where it belongs."""
    async with fresh_database(server_dsn) as conn:
        await append(conn, [log])
        top = await conn.fetchrow(
            "SELECT tx_id, position FROM crashlog.events ORDER BY 1 DESC, 2 DESC LIMIT 1")
        await apply_span(conn, (0, 0), (top["tx_id"], top["position"]))
        stored = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM crashlog.rounds")}
        assert stored == {e.event_id for e in log if isinstance(e, RoundSettled)}
        assert await conn.fetchval("SELECT count(*) FROM crashlog.round_signals") == \
            len({e.event_id for e in log if isinstance(e, SignalRaised)})
