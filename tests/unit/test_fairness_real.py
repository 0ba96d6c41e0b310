"""Provably-fair schemes against real recorded games (no database).

The data are the public series in ``CRASHLOG_REALDATA`` (default ``../shared/realdata`` beside
the repository); ``PROVENANCE.md`` there says where each file comes from. They are read in
place, never copied here. A test skips only when that folder is absent.

- ``provably_fair_pairs.csv``: published (hash, crash point) pairs of Stake, bustabit classic
  and Roobet, and hashes of BC.Game and bustabit's Vx era, which crashlog has no scheme for.
- ``bustabit_deduzzo_chain_check.csv``: 17,286 bustabit classic games scraped from the site
  (deduzzo/bustabit-scripts, Jan 2026) with their hashes: 16,829 scraped busts, 457 left empty
  by the scraper.
- ``roobet_MindingTheData_Crash-Analysis.csv``: Roobet's games 1 to 732,367 as a third party
  recomputed them from Roobet's chain in 2020 (MindingTheData/Crash-Analysis).
"""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crashlog import fairness
from crashlog.cli import build_parser
from crashlog.fairness import (
    SCHEMES,
    ChainReport,
    bustabit_crash_point,
    bustabit_previous_hash,
    locate_in_chain,
    roobet_crash_point,
    stake_crash_point,
    stake_unrounded_crash_point,
    verify_chain,
    walk_chain,
)

REALDATA = Path(
    os.environ.get("CRASHLOG_REALDATA")
    or Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
)

# Schemes of provably_fair_pairs.csv crashlog does not compute: bustabit's Vx era needs Vx's
# signatures; the BC.Game hashes come with results that match no known salt (PROVENANCE.md).
NOT_COMPUTED = {"bustabit-vx", "bcgame"}


def real_file(name: str) -> Path:
    """The data file ``name``; skips (saying why) only when the whole folder is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data folder {REALDATA} is absent (set CRASHLOG_REALDATA to its path)")
    return REALDATA / name  # a missing file in a present folder fails the test


def read_rows(name: str) -> list[dict[str, str]]:
    with real_file(name).open(newline="") as f:
        return list(csv.DictReader(f))


def pairs(scheme: str) -> list[dict[str, str]]:
    return [r for r in read_rows("provably_fair_pairs.csv") if r["scheme"] == scheme]


def hash_of_game(scheme: str, game_id: int) -> str:
    (game_hash,) = {r["game_hash"] for r in pairs(scheme) if r["game_id"] == str(game_id)}
    return game_hash


# -- the pairs file ---------------------------------------------------------------------------


def test_every_scheme_of_the_pairs_file_is_computed_or_named_as_not() -> None:
    schemes = {r["scheme"] for r in read_rows("provably_fair_pairs.csv")}
    assert schemes - NOT_COMPUTED == {"stake", "bustabit-classic", "roobet"}
    assert schemes - NOT_COMPUTED <= set(SCHEMES)
    assert not NOT_COMPUTED & set(SCHEMES)


def test_stakes_published_pairs_are_computed_to_the_last_bit() -> None:
    # KyranRana/stake-provably-fair-api src/test/Crash.test.ts
    # @5dd1aad6a0625f07aad04ddba52a7a0f2c23c146, values from stake.com's calculation page: the
    # unrounded double is the published one exactly; the game shows it rounded down.
    rows = pairs("stake")
    assert len(rows) == 3
    for row in rows:
        assert stake_unrounded_crash_point(row["game_hash"]) == float(row["site_value"])
        assert repr(stake_unrounded_crash_point(row["game_hash"])) == row["site_value"]
        assert stake_crash_point(row["game_hash"]) == Decimal(row["crashlog_value"])


def test_stakes_published_hashes_are_consecutive_games_of_its_committed_chain() -> None:
    # Same source. The newest reaches the terminating hash of bitcointalk topic 5162888.
    rows = sorted(pairs("stake"), key=lambda r: int(r["game_id"]))
    for earlier, later in zip(rows, rows[1:]):
        assert fairness.stake_previous_hash(later["game_hash"]) == earlier["game_hash"]
    newest = rows[-1]
    assert locate_in_chain(newest["game_hash"], scheme=SCHEMES["stake"]) == int(newest["game_id"])


def test_bustabit_classic_pairs_equal_the_site() -> None:
    # The published pair (sabari245/bustabit-tracker docs/bustabit-provably-fair.html
    # @c54c0618b0b0b66c5788c7d5f75023816513ffbd: game 13,303,000, 38.65) and 34 games scraped
    # from bustabit.com/game/<id> (deduzzo/bustabit-scripts @eaf75f0fdf0b1b046e77e7e478b2c74b0059c8b4).
    rows = pairs("bustabit-classic")
    assert len(rows) == 35
    shown = [r for r in rows if not r["site_value"].startswith("(null")]
    assert len(shown) == 17
    for row in shown:
        assert bustabit_crash_point(row["game_hash"]) == Decimal(row["site_value"]), row["game_id"]
    for row in rows:  # the 18 the scraper left empty: the chain's value is whole or >= 1000
        point = bustabit_crash_point(row["game_hash"])
        assert point == Decimal(row["crashlog_value"]), row["game_id"]
        if row not in shown:
            assert point == point.to_integral_value() or point >= 1000, row["game_id"]


def test_roobet_pairs_equal_roobets_formula_and_its_recomputed_history() -> None:
    # MindingTheData/Crash-Analysis (Crash.ipynb and multipliers.csv
    # @000cecdae238a5716808b929920cddaec12cc73a) and the public scripts the file names: no
    # Roobet pair carries a result Roobet showed; crashlog_value is Roobet's formula as those
    # Python ports compute it (integer division), game N's result is row N of multipliers.csv.
    rows = [r for r in pairs("roobet") if r["crashlog_value"]]
    assert len(rows) == 14  # 7 located or not, 7 derived (game 700,094 is in both)
    history = roobet_history()
    for row in rows:
        assert roobet_crash_point(row["game_hash"]) == Decimal(row["crashlog_value"]), row["game_hash"]
        if row["game_id"] and int(row["game_id"]) <= len(history):
            assert roobet_crash_point(row["game_hash"]) == history[int(row["game_id"]) - 1]


def test_roobet_hashes_located_on_its_chain_have_their_game_numbers() -> None:
    # "hash reaches Roobet's first hash 77b271fe...cb209 in N steps": game N of the chain
    # salted with bitcoin block 610,546's hash. The newest is located (about a second); the
    # others lie on the walk down from it at their game numbers.
    located = {int(r["game_id"]) for r in pairs("roobet") if "reaches Roobet's first hash" in r["evidence"]}
    assert located == {618_990, 700_094, 749_059, 818_894}
    newest = max(located)
    game_hash = hash_of_game("roobet", newest)
    assert locate_in_chain(game_hash, scheme=SCHEMES["roobet"]) == newest
    assert locate_in_chain(game_hash, scheme=SCHEMES["roobet"], max_steps=newest - 1) is None
    on_the_walk = {}
    for game in range(newest, min(located) - 1, -1):
        if game in located:
            on_the_walk[game] = game_hash
        game_hash = fairness.roobet_previous_hash(game_hash)
    assert on_the_walk == {game: hash_of_game("roobet", game) for game in located}


# -- bustabit classic: 17,286 scraped games ------------------------------------------------


def deduzzo_rows() -> list[dict[str, str]]:
    rows = sorted(read_rows("bustabit_deduzzo_chain_check.csv"), key=lambda r: int(r["round_id"]))
    assert len(rows) == 17_286
    return rows


def broken_links(rows: Sequence[dict[str, str]]) -> list[int]:
    """Games whose hash is not the SHA-256 (bustabit classic's step) of the next game's."""
    by_id = {int(r["round_id"]): r["game_hash"] for r in rows}
    return [
        game for game, game_hash in by_id.items()
        if game + 1 in by_id and bustabit_previous_hash(by_id[game + 1]) != game_hash
    ]


def test_the_scraped_games_hashes_form_bustabits_chain() -> None:
    rows = deduzzo_rows()
    assert broken_links(rows) == []
    top = rows[-1]  # reaches the terminating hash of bustabit's third seeding event
    assert locate_in_chain(top["game_hash"], scheme=SCHEMES["bustabit-classic"]) == int(top["round_id"])


def test_a_tampered_hash_breaks_the_chain_at_that_game() -> None:
    rows = deduzzo_rows()
    k = len(rows) - 5_000  # inside the last 10,000 consecutive games
    tampered = [dict(r) for r in rows]
    tampered[k]["game_hash"] = rows[k + 1]["game_hash"][::-1]
    game = int(rows[k]["round_id"])
    assert broken_links(tampered) == [game - 1, game]  # its link down and the link up to it


class RecordedRounds:
    """Stands for the database in ``verify_chain``: the rounds a bot recorded (game number ->
    value), answered as ``round_multipliers`` rows with one reading each."""

    def __init__(self, recorded: dict[int, Decimal]) -> None:
        self.recorded = recorded

    async def fetch(self, _query: str, _platform: str, _game: str, ids: Iterable[str]) -> list[dict[str, Any]]:
        return [
            {"game_round_id": i, "multiplier": v, "min_multiplier": v, "max_multiplier": v,
             "observers": 1, "readings": 1, "ocr_confidence": None, "quality_flags": []}
            for i in ids if (v := self.recorded.get(int(i))) is not None
        ]


async def verify(recorded: dict[int, Decimal], *, scheme: str, latest_hash: str, game_id: int | None,
                 rounds: int) -> ChainReport:
    return await verify_chain(
        RecordedRounds(recorded), platform="site", game="crash", scheme=scheme,  # type: ignore[arg-type]
        latest_hash=latest_hash, game_id=game_id, rounds=rounds)


def scraped_busts(rows: Iterable[dict[str, str]]) -> dict[int, Decimal]:
    return {int(r["round_id"]): Decimal(r["scraped_bust"]) for r in rows if r["scraped_bust"]}


async def test_all_16829_scraped_busts_equal_bustabits_chain() -> None:
    # PROVENANCE.md: "16,829 of 16,829 scraped busts equal the chain; 0 mismatches".
    rows = deduzzo_rows()
    top, bottom = int(rows[-1]["round_id"]), int(rows[0]["round_id"])
    scraped = scraped_busts(rows)
    assert len(scraped) == 16_829
    report = await verify(scraped, scheme="bustabit-classic", latest_hash=rows[-1]["game_hash"],
                          game_id=top, rounds=top - bottom + 1)
    assert (report.walked, report.recorded, report.matched, report.mismatches) == (
        top - bottom + 1, 16_829, 16_829, ())
    # The walk (through the 4,155 games the scrape skipped) passes through every row's hash.
    walked = walk_chain(rows[-1]["game_hash"], scheme=SCHEMES["bustabit-classic"], game_id=top,
                        rounds=top - bottom + 1)
    hashes = {r.game_id: r.game_hash for r in walked}
    assert all(hashes[int(r["round_id"])] == r["game_hash"] for r in rows)


def test_the_457_empty_busts_are_the_whole_numbers_and_the_thousands() -> None:
    # The scraper's pattern ^\d+\.\d+x$ rejects "2x" and "1,234.56x": a provable collection fault.
    rows = deduzzo_rows()
    points = {int(r["round_id"]): bustabit_crash_point(r["game_hash"]) for r in rows}
    assert all(points[int(r["round_id"])] == Decimal(r["chain_bust"]) for r in rows)
    empty = [points[int(r["round_id"])] for r in rows if not r["scraped_bust"]]
    whole = [p for p in empty if p == p.to_integral_value() and p < 1000]
    assert (len(empty), len(whole), sum(p >= 1000 for p in empty)) == (457, 429, 28)
    scraped = scraped_busts(rows)
    shown = [p for game, p in points.items() if game in scraped]
    assert not any(p == p.to_integral_value() or p >= 1000 for p in shown)


async def test_a_misread_bust_is_the_one_mismatch() -> None:
    rows = deduzzo_rows()
    scraped = scraped_busts(rows)
    top = int(rows[-1]["round_id"])
    misread = top - 17
    true_value = scraped[misread]
    scraped[misread] = true_value + Decimal("0.10")
    report = await verify(scraped, scheme="bustabit-classic", latest_hash=rows[-1]["game_hash"],
                          game_id=top, rounds=100)
    assert [(m.game_round_id, m.recorded, m.computed) for m in report.mismatches] == [
        (str(misread), true_value + Decimal("0.10"), true_value)]
    assert report.matched == report.recorded - 1


# -- Roobet: 732,367 games recomputed from its chain ------------------------------------------


@functools.cache
def roobet_history() -> tuple[Decimal, ...]:
    """Game N's result at index N - 1 (the file is in game order, game 1 first)."""
    rows = read_rows("roobet_MindingTheData_Crash-Analysis.csv")
    assert [int(r["round_id"]) for r in rows] == list(range(1, len(rows) + 1))
    return tuple(Decimal(r["multiplier"]) for r in rows)


def test_roobets_first_games_walk_down_to_its_first_hash() -> None:
    # Games 3, 2, 1 from the pairs: the walk passes through each derived hash, and game 1's
    # previous hash is the first hash of Roobet's seeding event.
    walked = list(walk_chain(hash_of_game("roobet", 3), scheme=SCHEMES["roobet"], game_id=3, rounds=10))
    assert [r.game_id for r in walked] == [3, 2, 1]
    assert [r.game_hash for r in walked] == [hash_of_game("roobet", n) for n in (3, 2, 1)]
    assert [r.crash_point for r in walked] == [Decimal("1.10"), Decimal("6.55"), Decimal("2.80")]
    assert fairness.roobet_previous_hash(walked[-1].game_hash) == fairness.ROOBET_TERMINATING_HASH


async def test_roobet_games_walked_from_a_located_hash_equal_the_recomputed_history() -> None:
    # From game 749,059's hash (located above) down through the derived hash of game 732,367,
    # then 20,000 consecutive games against multipliers.csv. The slow test below walks them all.
    history = roobet_history()
    latest = hash_of_game("roobet", 749_059)
    walked = list(walk_chain(latest, scheme=SCHEMES["roobet"], game_id=749_059, rounds=16_693))
    assert walked[-1].game_id == 732_367
    assert walked[-1].game_hash == hash_of_game("roobet", 732_367)
    recorded = {n: history[n - 1] for n in range(732_367 - 19_999, 732_368)}
    report = await verify(recorded, scheme="roobet", latest_hash=walked[-1].game_hash, game_id=None,
                          rounds=20_000)
    assert report.on_chain and report.latest_game_id == 732_367  # found by hashing, not told
    assert (report.walked, report.recorded, report.matched, report.mismatches) == (
        20_000, 20_000, 20_000, ())


async def test_a_tampered_roobet_value_or_hash_is_reported() -> None:
    history = roobet_history()
    latest = hash_of_game("roobet", 700_094)
    recorded = {n: history[n - 1] for n in range(700_094 - 99, 700_095)}
    recorded[700_050] += Decimal("0.01")
    report = await verify(recorded, scheme="roobet", latest_hash=latest, game_id=700_094, rounds=100)
    assert [m.game_round_id for m in report.mismatches] == ["700050"]
    assert report.mismatches[0].computed == history[700_050 - 1]
    # One hex digit changed: not on Roobet's chain, and the games it gives are not Roobet's.
    forged = latest[:-1] + ("0" if latest[-1] != "0" else "1")
    assert locate_in_chain(forged, scheme=SCHEMES["roobet"], max_steps=800_000) is None
    forged_report = await verify(recorded, scheme="roobet", latest_hash=forged, game_id=700_094, rounds=100)
    assert "700094" in [m.game_round_id for m in forged_report.mismatches]
    assert forged_report.matched < 20  # chance agreements only (a 1.00 bust is 4% of games)


@pytest.mark.slow
def test_all_732367_recomputed_roobet_games_equal_roobets_chain() -> None:
    # PROVENANCE.md: "All 732,367 values equal Roobet's chain for games 1..732,367". About 10 s.
    history = roobet_history()
    assert len(history) == 732_367
    walked = walk_chain(hash_of_game("roobet", 732_367), scheme=SCHEMES["roobet"], game_id=732_367,
                        rounds=732_367)
    differ = [r.game_id for r in walked if r.crash_point != history[r.game_id - 1]]
    assert differ == []


# -- the command line -------------------------------------------------------------------------


def test_verify_offers_every_scheme_of_the_registry() -> None:
    for name in SCHEMES:
        args = build_parser().parse_args(
            ["verify", "--game", "crash", "--platform", "op", "--scheme", name, "--hash", "ab" * 32])
        assert args.scheme == name
    assert "roobet" in SCHEMES
    with pytest.raises(SystemExit):
        build_parser().parse_args(["verify", "--scheme", "roobet-2023"])


@pytest.mark.parametrize(
    ("call", "value"),
    [
        (lambda: roobet_crash_point("ab" * 31), "abab"),
        (lambda: fairness.roobet_previous_hash("g" * 64), "gggg"),
        (lambda: stake_unrounded_crash_point("0x" + "a" * 62), "0x"),
    ],
)
def test_a_bad_hash_names_the_argument_and_the_value(call: Any, value: str) -> None:
    with pytest.raises(ValueError, match=f"game_hash='{value}"):
        call()
