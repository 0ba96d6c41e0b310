"""Charts as inline SVG, written by hand: no plotting library, nothing fetched, tiny files.

A ``Chart`` has two axes (linear or log), any number of series (polylines with optional
point markers) and filled bands, and renders to one ``<svg>`` element sized by its
``viewBox`` so it scales to the page's width. Every drawn series carries
``class="series"`` and the chart's axes carry their label with the unit, so a reader (and a
test in a browser) can tell a chart that drew its data from one that drew only a frame.

Promises: the output is well-formed SVG text with every string escaped; values that cannot be
placed (not positive on a log axis, infinite) are left out, never drawn at the origin; a NaN y
breaks a line in two (a gap in the data is not drawn across).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import attrs

from crashlog.printed import html_text as escape

#: Okabe–Ito: eight colours told apart by readers with any common colour blindness.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
WIDTH, HEIGHT = 760, 320
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 14, 52

Point = tuple[float, float]


@attrs.frozen
class Axis:
    """One axis: its label (with the unit), log or linear, optional bounds, tick format."""

    label: str
    log: bool = False
    low: float | None = None
    high: float | None = None
    fmt: Callable[[float], str] = attrs.field(default=lambda v: f"{v:g}")


@attrs.frozen
class Series:
    """A named line (``dash``: an SVG dash pattern) with markers when ``markers``."""

    name: str
    points: Sequence[Point]
    color: str = PALETTE[0]
    dash: str | None = None
    markers: bool = False
    width: float = 2.0


@attrs.frozen
class Band:
    """A filled area between ``lower`` and ``upper`` (same xs), e.g. a 95% band."""

    name: str
    lower: Sequence[Point]
    upper: Sequence[Point]
    color: str = "#999999"


def colour(index: int) -> str:
    """The ``index``-th colour of the palette (wrapping around)."""
    return PALETTE[index % len(PALETTE)]


def time_tick(span: float) -> Callable[[float], str]:
    """Epoch-seconds ticks as UTC times, as precise as an axis spanning ``span`` seconds needs."""
    pattern = "%H:%M:%S" if span < 3600 else "%m-%d %H:%M" if span < 4 * 86400 else "%Y-%m-%d"
    return lambda value: datetime.fromtimestamp(value, UTC).strftime(pattern)


class Chart:
    """Axes, bands, series and marks, drawn in that order (see the module)."""

    def __init__(self, x: Axis, y: Axis, *, label: str) -> None:
        self.x, self.y, self.label = x, y, label
        self.series: list[Series] = []
        self.bands: list[Band] = []
        self.spans: list[tuple[float, float, str]] = []  # shaded x ranges: low, high, title

    def add(self, series: Series) -> Chart:
        self.series.append(series)
        return self

    def band(self, band: Band) -> Chart:
        self.bands.append(band)
        return self

    def shade(self, low: float, high: float, title: str) -> Chart:
        """Shade the x range ``[low, high]`` (e.g. the worst drawdown), titled for hover."""
        self.spans.append((low, high, title))
        return self

    def render(self) -> str:
        """The ``<svg>`` element."""
        xs, ys = self._extent()
        sx = _Scale(xs, LEFT, WIDTH - RIGHT, self.x.log)
        sy = _Scale(ys, HEIGHT - BOTTOM, TOP, self.y.log)
        parts = [
            f'<svg class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(self.label)}"'
            ' preserveAspectRatio="xMidYMid meet">',
            *(_span(sx, sy, span) for span in self.spans),
            *_grid(sx, sy, self.x, self.y),
            *(_band(sx, sy, b) for b in self.bands),
            *(_series(sx, sy, s) for s in self.series),
            f'<text class="axis-label" x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 8}"'
            f' text-anchor="middle">{escape(self.x.label)}</text>',
            f'<text class="axis-label" transform="translate(16 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)"'
            f' text-anchor="middle">{escape(self.y.label)}</text>',
            "</svg>",
        ]
        return "".join(parts)

    def legend(self) -> str:
        """An HTML legend of the series and bands (empty with a single unnamed series)."""
        items = [
            f'<li><span class="swatch" style="border-top:3px {"dashed" if s.dash else "solid"} {s.color}">'
            f"</span>{escape(s.name)}</li>"
            for s in self.series if s.name
        ]
        items += [
            f'<li><span class="swatch band" style="background:{b.color}"></span>{escape(b.name)}</li>'
            for b in self.bands
        ]
        return f'<ul class="legend">{"".join(items)}</ul>' if items else ""

    def _extent(self) -> tuple[tuple[float, float], tuple[float, float]]:
        points = [p for s in self.series for p in s.points]
        points += [p for b in self.bands for p in (*b.lower, *b.upper)]
        xs = [x for x, _ in points if _placeable(x, self.x.log)] + [v for lo, hi, _ in self.spans for v in (lo, hi)]
        ys = [y for _, y in points if _placeable(y, self.y.log)]
        return _bounds(xs, self.x), _bounds(ys, self.y)


def _placeable(value: float, log: bool) -> bool:
    return math.isfinite(value) and (value > 0 or not log)


def _bounds(values: list[float], axis: Axis) -> tuple[float, float]:
    low = axis.low if axis.low is not None else min(values, default=1.0 if axis.log else 0.0)
    high = axis.high if axis.high is not None else max(values, default=low + 1)
    if high <= low:  # one value: give it room (on both sides, unless the low end is fixed)
        if axis.log:
            high, low = low * 10, (low if axis.low is not None else low / 10)
        else:
            high, low = low + 1, (low if axis.low is not None else low - 1)
    return low, high


class _Scale:
    """Data to pixels, linear or log, over ``[low, high]``."""

    def __init__(self, bounds: tuple[float, float], start: float, end: float, log: bool) -> None:
        self.log = log
        self.low, self.high = (math.log10(b) for b in bounds) if log else bounds
        self.start, self.end = start, end

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        return self.start + (v - self.low) / (self.high - self.low) * (self.end - self.start)

    def ticks(self) -> list[float]:
        if self.log:
            return _log_ticks(self.low, self.high)
        return _linear_ticks(self.low, self.high)


def _linear_ticks(low: float, high: float, count: int = 6) -> list[float]:
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 12) for i in range(int((high - first) / step + 1e-9) + 1)]


def _log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten, with 2 and 5 between them when the axis spans few decades."""
    steps = (1,) if high - low > 4 else (1, 2, 5)
    ticks = [m * 10.0**e for e in range(math.floor(low), math.ceil(high) + 1) for m in steps]
    return [t for t in ticks if low - 1e-9 <= math.log10(t) <= high + 1e-9]


def _grid(sx: _Scale, sy: _Scale, x: Axis, y: Axis) -> list[str]:
    parts = [f'<g class="axes"><rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}"'
             f' height="{HEIGHT - TOP - BOTTOM}" fill="none" stroke="#888"/>']
    for t in sx.ticks():
        px = sx(t)
        parts.append(f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{HEIGHT - BOTTOM}" class="grid"/>'
                     f'<text x="{px:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{escape(x.fmt(t))}</text>')
    for t in sy.ticks():
        py = sy(t)
        parts.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{WIDTH - RIGHT}" y2="{py:.1f}" class="grid"/>'
                     f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{escape(y.fmt(t))}</text>')
    parts.append("</g>")
    return parts


def _pixels(sx: _Scale, sy: _Scale, points: Sequence[Point]) -> list[str]:
    return [f"{sx(x):.1f},{sy(y):.1f}" for x, y in points
            if _placeable(x, sx.log) and _placeable(y, sy.log)]


def _series(sx: _Scale, sy: _Scale, s: Series) -> str:
    """One polyline per stretch of the series between NaN y values (a NaN is a gap)."""
    dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
    stretches: list[list[Point]] = [[]]
    for point in s.points:
        if math.isnan(point[1]):
            stretches.append([])
        else:
            stretches[-1].append(point)
    line = "".join(
        f'<polyline class="series" data-name="{escape(s.name)}" points="{" ".join(_pixels(sx, sy, part))}"'
        f' fill="none" stroke="{s.color}" stroke-width="{s.width}" stroke-linejoin="round"{dash}/>'
        for part in stretches if part
    )
    # A stretch of one point draws no line: a dot shows it (one bucket between two gaps).
    line += "".join(f'<circle cx="{px.split(",")[0]}" cy="{px.split(",")[1]}" r="{max(s.width, 3)}" fill="{s.color}"/>'
                    for part in stretches if len(part) == 1 for px in _pixels(sx, sy, part))
    if not s.markers:
        return line
    pixels = _pixels(sx, sy, s.points)
    dots = "".join(f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="3.5" fill="{s.color}"/>'
                   for p in pixels)
    return f"{line}<g class=\"markers\">{dots}</g>"


def _band(sx: _Scale, sy: _Scale, b: Band) -> str:
    outline = _pixels(sx, sy, b.upper) + _pixels(sx, sy, list(reversed(b.lower)))
    return (f'<polygon class="band" data-name="{escape(b.name)}" points="{" ".join(outline)}"'
            f' fill="{b.color}" fill-opacity="0.25" stroke="none"/>')


def _span(sx: _Scale, sy: _Scale, span: tuple[float, float, str]) -> str:
    low, high, title = span
    x0, x1 = sx(low), sx(high)
    return (f'<rect class="span" x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 1.5):.1f}"'
            f' height="{HEIGHT - TOP - BOTTOM}" fill="#D55E00" fill-opacity="0.12">'
            f"<title>{escape(title)}</title></rect>")


def thin(points: Sequence[Point], most: int = 800) -> list[Point]:
    """At most about ``most`` points of a curve in x order, keeping the ends and each stretch's
    lowest and highest point, so peaks and troughs (a drawdown) survive the thinning."""
    if len(points) <= most:
        return list(points)
    size = math.ceil(len(points) / (most // 2))
    kept: list[Point] = []
    for start in range(0, len(points), size):
        chunk = points[start:start + size]
        low, high = min(chunk, key=lambda p: p[1]), max(chunk, key=lambda p: p[1])
        kept.extend(sorted({low, high}, key=lambda p: p[0]))
    if kept[0] != points[0]:
        kept.insert(0, points[0])
    if kept[-1] != points[-1]:
        kept.append(points[-1])
    return kept
