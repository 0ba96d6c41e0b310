"""The report's hand-written SVG charts (crashlog/report/svg.py) and its choice of law."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from crashlog.law import LAWS, R_OVER_X
from crashlog.report.data import law_of
from crashlog.report.svg import Axis, Chart, Series, thin


def polyline_points(svg: str) -> list[list[tuple[float, float]]]:
    root = ET.fromstring(svg)  # well-formed, or this raises
    return [[tuple(map(float, p.split(","))) for p in line.get("points", "").split()]
            for line in root.iter("polyline")]


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=5000))
def test_thinning_keeps_the_extremes_and_the_ends(ys: list[float]) -> None:
    points = [(float(i), y) for i, y in enumerate(ys)]
    kept = thin(points, most=200)
    assert len(kept) <= 200 + 4
    assert min(y for _, y in kept) == min(ys) and max(y for _, y in kept) == max(ys)  # drawdowns survive
    assert kept[0] == points[0] and kept[-1] == points[-1]
    assert [x for x, _ in kept] == sorted(x for x, _ in kept)


def test_values_that_cannot_be_placed_are_left_out_and_a_nan_is_a_gap() -> None:
    chart = Chart(Axis("x (×)", log=True), Axis("p (share)", log=True), label="t")
    chart.add(Series("s", [(1.0, 1.0), (1.5, 0.7), (2.0, math.nan), (0.0, 0.5), (4.0, 0.0), (10.0, 0.1)]))
    lines = polyline_points(chart.render())
    assert [len(line) for line in lines] == [2, 1]  # (1, 1)-(1.5, 0.7); then (10, 0.1): x=0 and y=0 left out
    assert lines[0][1][0] < lines[1][0][0]


def test_a_fixed_low_end_holds_for_flat_data() -> None:
    chart = Chart(Axis("t (s)"), Axis("flagged (%)", low=0.0), label="flat")
    chart.add(Series("zero", [(0.0, 0.0), (1.0, 0.0)]))
    svg = chart.render()
    ticks = [float(t) for t in re.findall(r'text-anchor="end">(-?[\d.]+)<', svg)]
    assert ticks and min(ticks) == 0.0  # no negative share on the axis


def test_text_is_escaped() -> None:
    chart = Chart(Axis("x <b>"), Axis("y & z"), label='"quoted"')
    chart.add(Series("<script>alert(1)</script>", [(0.0, 0.0), (1.0, 1.0)]))
    svg = chart.render() + chart.legend()
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(chart.render())


def test_control_characters_in_names_are_shown_escaped_and_the_svg_stays_well_formed() -> None:
    """A bot id or game name holding a terminal escape, a newline or a bidirectional override
    is printed as the CLI prints it (``\\x1b``), never raw: raw, it is not XML."""
    chart = Chart(Axis("x\x07"), Axis("y"), label="bot\x1b[31mred")
    chart.add(Series("line\nbreak \u202eevil", [(0.0, 0.0), (1.0, 1.0)]))
    svg = chart.render() + chart.legend()
    assert not any(c in svg for c in "\x1b\x07\u202e")
    assert "bot\\x1b[31mred" in svg and "\\u202eevil" in svg and "line\\nbreak" in svg
    ET.fromstring(chart.render())


def test_each_game_is_held_to_its_own_law() -> None:
    assert law_of("crash", "roobet") is LAWS["roobet"]
    assert law_of("Bustabit", "bustabit.com") is LAWS["bustabit"]
    assert law_of("aviator", "spribe") is R_OVER_X
