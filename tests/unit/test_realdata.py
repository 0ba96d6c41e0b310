"""fit and quality on real recorded crash games: each data set gets the verdict its source
warrants (see PROVENANCE.md beside the data), and corruptions of a real clean series are each
told apart from the fair game.

The data are read from ``CRASHLOG_REALDATA`` (default ``<repo>/../shared/realdata/``), never
copied into the repository; each file is read and each report made once per session. The
tests skip, saying so, only where that folder is absent.
"""

from __future__ import annotations

import functools
import json
import os
import random
from decimal import Decimal
from pathlib import Path

import pytest

from crashlog.analytics import check_quality, fit
from crashlog.analytics.fit import CONSISTENT, DATA_QUALITY, DEVIATION, STATISTICAL_CHECKS, FitReport
from crashlog.analytics.fit_checks import spikes_check
from crashlog.analytics.parsing import parse_multipliers, read_csv_column
from crashlog.analytics.strips import repeated_runs
from crashlog.law import LAWS
from crashlog.simulator import CrashGame

REALDATA = Path(
    os.environ.get("CRASHLOG_REALDATA", Path(__file__).parents[2].parent / "shared" / "realdata")
)
needs_data = pytest.mark.skipif(
    not REALDATA.is_dir(), reason=f"no real data at {REALDATA} (set CRASHLOG_REALDATA)"
)
#: Seeds of the false-alarm runs on simulated fair data (CI may set fewer).
SEEDS = int(os.environ.get("CRASHLOG_REALDATA_SEEDS", "1000"))
D = Decimal


@functools.cache
def cells(name: str, column: str = "multiplier") -> tuple[str, ...]:
    return tuple(read_csv_column(REALDATA / name, column))


@functools.cache
def fitted(name: str, rtp: float | None, law: str | None, code: int | None = None,
           column: str = "multiplier") -> FitReport:
    return fit(cells(name, column), rtp, law=law, instant_bust_code=code)


BUSTABIT = LAWS["bustabit"].rtp
ETHERCRASH = LAWS["ethercrash"].rtp
ROOBET = LAWS["roobet"].rtp

# (file, column, claimed rtp, law, instant-bust code, verdict, flags that must be raised, why)
VERDICTS = [
    ("bustabit_jungh0_Bustabit-Analysis.csv", "multiplier", BUSTABIT, "bustabit", None, CONSISTENT, (),
     "high: consecutive bustabit v2 games from the site, r/x at 0.99"),
    ("bustabit_TahirHameed74_bustabitEverything.csv", "multiplier", BUSTABIT, "bustabit", None, CONSISTENT, (),
     "high: three consecutive segments of bustabit v2 pages"),
    ("bustabit_ines-lu_kaggle-bustabit.csv", "multiplier", BUSTABIT, "bustabit", 0, CONSISTENT, (),
     "high: games sampled by bets (independent of the bust); 0 is bustabit's code for a bust"),
    ("bustabit_deduzzo_chain_check.csv", "chain_bust", BUSTABIT, "bustabit", None, CONSISTENT, (),
     "chain-verified: every bust recomputed from bustabit's hash chain, consistent"),
    ("bustabit_deduzzo_bustabit-scripts.csv", "multiplier", BUSTABIT, "bustabit", None, DATA_QUALITY,
     ("null_values", "whole_value_deficit"),
     "verified values, but the scraper's regex dropped every whole bust (1.00, 2.00, ... and >= 1000)"),
    ("ethercrash_8ball030_betterbettor.csv", "multiplier", ETHERCRASH, "ethercrash", 0, CONSISTENT, (),
     "high: ethercrash's API, 0 for an instant crash; 1 in 101 busts plus the (x - 0.01) shape"),
    ("ethercrash_rpetersson_project_crack_ethercrash.csv", "multiplier", ETHERCRASH, "ethercrash", 0,
     CONSISTENT, (), "medium: looks like ethercrash history (0 for an instant crash)"),
    ("stake_Vanaty_stake.csv", "multiplier", BUSTABIT, "stake_float", None, CONSISTENT, (),
     "high: Stake's GraphQL, unrounded doubles read floored to the cent as Stake shows them"),
    ("1xbet_mdomorffaruk_CrashGameDataAnalysis.csv", "multiplier", None, None, None, DEVIATION,
     ("shape_chi_square",), "real server messages, but no round >= 35x in 5,424: not the r/x shape"),
    ("aviator_joseivson_statistics.csv", "multiplier", None, None, None, DATA_QUALITY, ("repeated_rows",),
     "medium: visibly re-recorded values, suspect: repeated rows"),
    ("aviator_PavanKalyan321_ProjectBot.csv", "multiplier", None, None, None, DATA_QUALITY,
     ("off_grid", "repeated_runs"), "low: manual, OCR and re-pasted rows mixed, suspect"),
    ("aviator_Nyandiekahh_Aviator-DA.csv", "multiplier", None, None, None, DATA_QUALITY, ("repeated_runs",),
     "re-read strip, suspect: repeated runs (and nothing else gives it away)"),
    ("jetx_onndd_jetxpredictor.csv", "multiplier", None, None, None, DATA_QUALITY, ("unparseable_values",),
     "medium: typed or pasted by hand, two values pasted into one cell"),
]


@needs_data
@pytest.mark.parametrize(("name", "column", "rtp", "law", "code", "verdict", "flags", "why"), VERDICTS,
                         ids=[v[0].removesuffix(".csv") for v in VERDICTS])
def test_each_real_data_set_gets_the_verdict_its_source_warrants(
    name: str, column: str, rtp: float | None, law: str | None, code: int | None, verdict: str,
    flags: tuple[str, ...], why: str,
) -> None:
    report = fitted(name, rtp, law, code, column)
    assert report.verdict == verdict, (why, report.flags)
    assert set(flags) <= set(report.flags), (why, report.flags)
    assert report.law.startswith(law or "r_over_x")
    if verdict == CONSISTENT:  # and the estimate covers the game's published RTP
        assert rtp is not None and rtp in report.rtp_interval, (why, report.rtp_interval)


@needs_data
def test_roobet_reads_consistent_under_its_own_law() -> None:
    # Chain-verified (all 732,367 equal Roobet's chain): consistent under Roobet's law, both
    # with its published RTP claimed and with the shape alone.
    name = "roobet_MindingTheData_Crash-Analysis.csv"
    claimed = fitted(name, ROOBET, "roobet")
    assert claimed.verdict == CONSISTENT, claimed.flags
    assert abs(claimed.rtp_estimate - ROOBET) < 2 * claimed.rtp_stderr
    assert claimed.law == "roobet: P(X >= x) = 0.96 / (x - 0.01)"


@needs_data
@pytest.mark.slow
def test_roobet_under_r_over_x_is_a_law_mismatch_not_a_data_problem() -> None:
    # The same rounds against r/x: the tail is about 1% lighter than r/x, so the shape is
    # rejected; no collection flag is raised (the data are the chain's).
    report = fitted("roobet_MindingTheData_Crash-Analysis.csv", None, None)
    assert report.verdict == DEVIATION, report.flags
    assert {"shape_chi_square", "shape_ks"} & set(report.flags)


@needs_data
def test_stake_floats_without_flooring_withhold_the_rtp_and_say_why() -> None:
    raw = fit(cells("stake_Vanaty_stake.csv"))
    assert raw.verdict == DATA_QUALITY and raw.flags == ("off_grid",)
    assert raw.rtp_estimate != raw.rtp_estimate and raw.rtp_note and "4,174 off_grid" in raw.rtp_note
    floored = fit(cells("stake_Vanaty_stake.csv"), floor_to_cent=True)
    assert floored.verdict == CONSISTENT and floored.floored == 4_174 and floored.rtp_note is None


@needs_data
def test_quality_reports_name_the_law_and_read_bad_cells() -> None:
    strip = check_quality(cells("aviator_Nyandiekahh_Aviator-DA.csv"))
    assert strip.verdict == "suspect" and strip.suspects == ("repeated_runs",)
    jetx = check_quality(cells("jetx_onndd_jetxpredictor.csv"))
    assert jetx.check("unparseable_values").figure.startswith("2 of 10,458")
    assert "'2.29\\\\u20281.29'" in jetx.check("unparseable_values").detail
    ether = check_quality(cells("ethercrash_8ball030_betterbettor.csv"), law="ethercrash", instant_bust_code=0)
    assert ether.verdict == "ok", ether.suspects
    assert ether.law.startswith("ethercrash") and ether.rtp_source == "law"
    clean = check_quality(cells("bustabit_jungh0_Bustabit-Analysis.csv"), law="bustabit")
    assert clean.verdict == "ok", clean.suspects


def test_parse_multipliers_counts_refused_cells_and_reads_codes() -> None:
    parsed = parse_multipliers(["1.5", "", "abc", "2.29\u20281.29", "0", "2.345"], instant_bust_code=0,
                               floor_to_cent=True)
    assert parsed.values == (D("1.5"), None, D("1.00"), D("2.34"))
    assert parsed.refused == 2 and parsed.examples == ("'abc'", "'2.29\\u20281.29'")
    assert parsed.instant_bust_codes == 1 and parsed.floored == 1 and parsed.cells == 6
    with pytest.raises(ValueError, match="instant_bust_code='x'"):
        parse_multipliers([], instant_bust_code="x")


# -- corruptions of a real clean series ----------------------------------------------------


def clean() -> list[str]:
    return list(cells("bustabit_jungh0_Bustabit-Analysis.csv"))


def reread_strip(values: list[str], rng: random.Random) -> list[str]:
    # Every ~40 rounds the scraper appends again 3-6 values it read 8-20 rounds before.
    out: list[str] = []
    for i, value in enumerate(values):
        out.append(value)
        if i > 30 and i % 40 == 0:
            back, length = rng.randint(8, 20), rng.randint(3, 6)
            out.extend(out[-back : -back + length])
    return out


def dropped_whole_values(values: list[str], rng: random.Random) -> list[str]:
    # A pattern that wanted a decimal point: "2", "3", "1000" never matched.
    return [v for v in values if "." in v or v == "1"]


def ocr_misreads_a_digit(values: list[str], rng: random.Random) -> list[str]:
    # One reading in thirty of a 1.xx value reads its 1 as a 7 (a common OCR confusion).
    return ["7" + v[1:] if v.startswith("1.") and rng.random() < 1 / 30 else v for v in values]


def stuck_reader(values: list[str], rng: random.Random) -> list[str]:
    # A reader stuck on the 2.00 of the loading screen one round in fifty.
    return ["2.00" if rng.random() < 0.02 else v for v in values]


def missed_instant_busts(values: list[str], rng: random.Random) -> list[str]:
    # Instant busts last a moment: the collector misses half of them.
    return [v for v in values if not (v in ("1", "1.00") and rng.random() < 0.5)]


@needs_data
@pytest.mark.parametrize(
    ("corrupt", "flags"),
    [
        (reread_strip, {"repeated_runs"}),
        (dropped_whole_values, {"whole_value_deficit"}),
        (ocr_misreads_a_digit, {"shape_chi_square", "shape_ks"}),
        (stuck_reader, {"whole_value_spikes"}),
        (missed_instant_busts, {"missing_instant_busts"}),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_each_corruption_of_a_clean_real_series_is_told_apart(corrupt, flags: set[str]) -> None:
    assert fitted("bustabit_jungh0_Bustabit-Analysis.csv", BUSTABIT, "bustabit").verdict == CONSISTENT
    for seed in range(2):
        report = fit(corrupt(clean(), random.Random(seed)), BUSTABIT, law="bustabit")
        assert report.verdict != CONSISTENT and flags & set(report.flags), (seed, report.flags)


# -- false alarms on simulated fair data ------------------------------------------------------


def fair_hundredths(seed: int, n: int) -> list[int | None]:
    return [int(x * 100) for x in CrashGame(0.97, seed=seed).crashes(n)]


@pytest.mark.slow
def test_the_new_checks_keep_their_false_alarm_rate_on_fair_data() -> None:
    # repeated_runs and the whole-value test (spikes and the deficit) run at alpha / 7 inside
    # fit; alone, each alarms on at most about that share of fair series, over SEEDS seeds.
    level = 0.01 / len(STATISTICAL_CHECKS)
    law = LAWS["r_over_x"]
    strips = spikes = 0
    for seed in range(SEEDS):
        values = fair_hundredths(seed, 3_000)
        strips += repeated_runs(values).p_value < level
        spikes += spikes_check(values, law, level).rejected  # type: ignore[arg-type]
    bound = max(3, SEEDS * level * 3)  # P(Binomial(1000, 0.0014) > 4.3) is below 2%
    assert strips <= bound and spikes <= bound, (strips, spikes)
    # And fit as a whole, all seven checks together, stays at or below alpha.
    reports = [fit(CrashGame(0.97, seed=seed).crashes(2_000), 0.97) for seed in range(SEEDS // 10)]
    assert sum(r.verdict != CONSISTENT for r in reports) <= max(2, len(reports) * 0.01 * 3)


def test_repeated_runs_does_not_fire_on_fair_data_but_on_a_copied_run() -> None:
    fair = fair_hundredths(7, 5_000)
    assert repeated_runs(fair).clumps <= 1
    # One copied run is already unlikely (p about 0.01 in 5,000 rounds); three are proof.
    copied = fair[:100] + fair[85:90] + fair[100:2000] + fair[1990:1994] + fair[2000:3000] + fair[2980:2985]
    found = repeated_runs(copied)
    assert found.clumps >= 3 and found.p_value < 1e-5 and found.example == (100, 85, tuple(fair[85:88]))


@needs_data
def test_the_command_line_checks_a_recorded_csv_without_a_database(capsys: pytest.CaptureFixture[str]) -> None:
    from crashlog.cli import main

    path = str(REALDATA / "ethercrash_rpetersson_project_crack_ethercrash.csv")
    assert main(["quality", "--file", path, "--law", "ethercrash", "--instant-bust-code", "0", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["fit"]["verdict"] == CONSISTENT and shown["fit"]["instant_bust_codes"] == 16
    assert shown["quality"]["law"].startswith("ethercrash") and shown["quality"]["verdict"] != "suspect"
    assert main(["quality"]) == 1
    assert "--game and --platform" in capsys.readouterr().err
