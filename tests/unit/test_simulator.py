"""The simulated crash game follows the real law, and the strategies stake as they promise."""

from __future__ import annotations

import ast
import random
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

import crashlog
from crashlog.analytics import chi_square, chi_square_sf
from crashlog.analytics.inference import ks_uniform
from crashlog.law import MAX_CRASH, bin_probabilities, randomized_pit, survival
from crashlog.simulator import (
    AntiMartingale,
    CrashGame,
    Martingale,
    SimulatedBot,
    Strategy,
    crash_point,
    make_strategy,
)

D = Decimal
ROUNDS = 100_000
# Bins of the displayed crash point: the instant crash 1.00 alone, then ever wider ranges;
# every bin expects well over 5 rounds out of 100,000 (the last, >= 1000, expects 97).
EDGES = [
    D(x)
    for x in (
        "1.00",
        "1.01",
        "1.05",
        "1.10",
        "1.20",
        "1.35",
        "1.50",
        "1.75",
        "2.00",
        "2.50",
        "3.00",
        "4.00",
        "5.00",
        "7.50",
        "10.00",
        "20.00",
        "50.00",
        "100.00",
        "1000.00",
    )
]


def histogram(crashes: list[Decimal]) -> list[int]:
    counts = [0] * len(EDGES)
    for crash in crashes:
        index = max(i for i, edge in enumerate(EDGES) if crash >= edge)
        counts[index] += 1
    return counts


def p_value(crashes: list[Decimal], rtp: float) -> float:
    statistic, df = chi_square(histogram(crashes), bin_probabilities(EDGES, rtp))
    return chi_square_sf(statistic, df)


def test_chi_square_tail_matches_published_critical_values() -> None:
    # Upper 5% and 1% points of chi-square (NIST/SEMATECH e-Handbook, table 1.3.6.7.4):
    # df=10: 18.307, 23.209; df=18: 28.869, 34.805; df=30: 43.773, 50.892.
    for df, at5, at1 in ((10, 18.307, 23.209), (18, 28.869, 34.805), (30, 43.773, 50.892)):
        assert chi_square_sf(at5, df) == pytest.approx(0.05, abs=0.002)
        assert chi_square_sf(at1, df) == pytest.approx(0.01, abs=0.001)


def test_crash_points_follow_the_law_on_100000_rounds() -> None:
    crashes = list(CrashGame(rtp=0.97, seed=20240601).crashes(ROUNDS))
    assert p_value(crashes, 0.97) > 0.001


def test_the_chi_square_test_can_tell_a_different_rtp() -> None:
    # The same test must fail for a game that does not follow the law it is checked against.
    crashes = list(CrashGame(rtp=0.90, seed=20240601).crashes(ROUNDS))
    assert p_value(crashes, 0.97) < 1e-6


def test_instant_crash_and_win_probability() -> None:
    crashes = list(CrashGame(rtp=0.97, seed=7).crashes(ROUNDS))
    counts = Counter(crashes)
    instant = 1 - 0.97 / 1.01
    # Within 5 standard errors of the exact probabilities.
    assert abs(counts[D("1.00")] / ROUNDS - instant) < 5 * (instant * (1 - instant) / ROUNDS) ** 0.5
    wins = sum(1 for c in crashes if c >= D("2.00")) / ROUNDS
    assert abs(wins - 0.485) < 5 * (0.485 * 0.515 / ROUNDS) ** 0.5


def test_crash_points_are_two_decimal_and_rounded_down() -> None:
    assert crash_point(0.0, 0.97) == D("1.00")  # 0.97 -> the instant crash
    assert crash_point(0.5, 0.97) == D("1.94")
    assert crash_point(1 - 0.97 / 2.456, 0.97) == D("2.45")  # 2.456 shows as 2.45
    assert crash_point(0.999999999999, 0.97) == D("1000000")  # capped
    for crash in CrashGame(seed=1).crashes(1000):
        assert crash == crash.quantize(D("0.01")) and crash >= 1


def test_exact_bin_probabilities() -> None:
    probs = bin_probabilities([D("1.00"), D("2.00")], 0.97)
    assert probs == pytest.approx([1 - 0.97 / 2, 0.97 / 2])
    assert survival("1.00") == 1.0
    assert survival("1.01", 0.97) == pytest.approx(0.97 / 1.01)
    with pytest.raises(ValueError, match="edges"):
        bin_probabilities([D("2.00")])


@pytest.mark.parametrize("rtp", [0.97, 0.99, 1.0])
def test_the_law_is_exactly_what_the_simulator_draws(rtp: float) -> None:
    # The simulator shows at least x (above 1.00) exactly when its uniform draw u is at least
    # 1 - r/x, so P(X >= x) = r/x: the law's survival, at every grid value; every draw shows
    # at least 1.00.
    grid = [D("1.00"), D("1.01"), D("1.50"), D("1.99"), D("2.00"), D("7.77"), D("100.00"), D("123456.78")]
    for x in grid:
        threshold = 0.0 if x <= 1 else 1 - rtp / float(x)
        if threshold > 0:
            assert crash_point(threshold - 1e-9, rtp) < x
        assert crash_point(min(threshold + 1e-9, 1 - 1e-15), rtp) >= x
        assert survival(x, rtp) == pytest.approx(1 - threshold, rel=1e-12)
    # Nothing is shown above the cap, and the law gives it no probability either.
    assert crash_point(1 - 1e-15, rtp) == MAX_CRASH
    assert survival(MAX_CRASH + D("0.01"), rtp) == 0.0


def test_the_randomized_pit_of_simulated_crashes_is_uniform() -> None:
    # The law's PIT turns the simulator's discrete crash points into uniform draws; the same
    # PIT under another RTP does not.
    crashes = list(CrashGame(rtp=0.97, seed=99).crashes(50_000))
    v = random.Random(5)
    _, p_same = ks_uniform(randomized_pit(x, v.random(), 0.97) for x in crashes)
    _, p_other = ks_uniform(randomized_pit(x, v.random(), 0.90) for x in crashes)
    assert p_same > 0.001
    assert p_other < 1e-6


def core_imports() -> dict[str, set[str]]:
    """Each core module of the package (not the demo, the simulator or the command line) and
    the crashlog modules it imports, read from its source."""
    root = Path(crashlog.__file__).parent
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] in ("demo.py", "simulator.py", "cli.py", "cli"):
            continue
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(relative)] = names
    return found


def test_the_core_imports_neither_the_simulator_nor_the_demo() -> None:
    imports = core_imports()
    assert "law.py" in imports and "analytics/fit.py" in imports  # the walk sees the core
    offenders = {
        module: sorted(n for n in names if n in ("crashlog.simulator", "crashlog.demo"))
        for module, names in imports.items()
    }
    assert {m: n for m, n in offenders.items() if n} == {}


def test_same_seed_same_game() -> None:
    assert list(CrashGame(seed=3).crashes(50)) == list(CrashGame(seed=3).crashes(50))
    assert list(CrashGame(seed=3).crashes(50)) != list(CrashGame(seed=4).crashes(50))


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="rtp"):
        CrashGame(rtp=1.5)
    with pytest.raises(ValueError, match="strategy='dalembert'"):
        make_strategy("dalembert")
    with pytest.raises(ValueError, match="target"):
        Strategy(target="1.00")


def play(strategy: Strategy, crashes: list[str], balance: str = "100.00") -> list:
    bot = SimulatedBot("b", strategy, balance=balance)
    return [bot.play(D(c)) for c in crashes]


def test_fixed_cashout_wins_iff_the_crash_reaches_the_target() -> None:
    rounds = play(Strategy(target="2.00", base_stake="10.00"), ["2.00", "1.99", "5.00"])
    assert [r.outcome for r in rounds] == ["WIN", "LOSS", "WIN"]
    assert [r.profit_loss for r in rounds] == [D("10.00"), D("-10.00"), D("10.00")]
    assert rounds[-1].balance_after == D("110.00")
    for r in rounds:
        assert r.balance_after == r.balance_before + r.profit_loss


def test_martingale_doubles_after_a_loss_and_resets_after_a_win() -> None:
    rounds = play(Martingale(target="2.00", base_stake="1.00"), ["1.5", "1.5", "1.5", "3", "1.5"])
    assert [r.stake for r in rounds] == [D(1), D(2), D(4), D(8), D(1)]
    assert rounds[3].profit_loss == D(8)


def test_martingale_falls_back_then_skips_when_it_cannot_afford() -> None:
    rounds = play(Martingale(target="2.00", base_stake="2.00"), ["1.1", "1.1", "1.1"], "5.00")
    # 5 -> stake 2 (loss) 3 -> stake 4 > 3: back to 2 (loss) 1 -> cannot afford 2: skip.
    assert [(r.outcome, r.stake) for r in rounds] == [
        ("LOSS", D(2)),
        ("LOSS", D(2)),
        ("SKIP", D(0)),
    ]
    assert rounds[-1].balance_after == D(1)


def test_anti_martingale_doubles_after_a_win_up_to_its_cap() -> None:
    strategy = AntiMartingale(target="2.00", base_stake="1.00", streak_cap=3)
    rounds = play(strategy, ["3", "3", "3", "3", "1.2", "3"])
    assert [r.stake for r in rounds] == [D(1), D(2), D(4), D(1), D(2), D(1)]
