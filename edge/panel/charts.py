"""Line charts as inline SVG, drawn on the server.

No plotting library: the plant network has no internet and the panel's Content-Security-Policy
allows neither scripts nor styles from elsewhere. An SVG made here needs neither (its colours are
presentation attributes, not style attributes), is readable without JavaScript and is what a test
can look into. Every text that goes into it is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

Point = tuple[float, float]
PALETTE = ("#1d3557", "#b3261e", "#1e7b34", "#e07a00", "#6a4c93", "#2a9d8f", "#8d6e63")
MARGIN = {"left": 56, "right": 16, "top": 46, "bottom": 40}  # the title and legend sit on top
MARKERS_UP_TO = 40  # points drawn as dots too (a single epoch is a dot, not an invisible line)


def nice_ticks(low: float, high: float, count: int = 5, whole: bool = False) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high]; `whole`: at
    least 1 apart (epochs and run numbers have no halves)."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if whole:
        step = max(1.0, round(step))
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 0.5 and len(ticks) < 20:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:.3g}"


def line_chart(
    series: dict[str, Sequence[Point]],
    title: str,
    x_label: str,
    y_label: str,
    y_range: tuple[float, float] | None = None,
    whole_x: bool = True,
    width: int = 640,
    height: int = 260,
    chart_id: str = "",
) -> Markup:
    """An SVG line chart of named series of (x, y) points (x whole numbers unless `whole_x` is False);
    empty series are left out."""
    drawn = {name: list(points) for name, points in series.items() if points}
    xs = [x for points in drawn.values() for x, _ in points] or [0.0, 1.0]
    ys = [y for points in drawn.values() for _, y in points] or [0.0, 1.0]
    x_ticks = nice_ticks(min(xs), max(xs), whole=whole_x)
    y_ticks = nice_ticks(*(y_range or (min(0.0, min(ys)), max(ys))))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    left, top = MARGIN["left"], MARGIN["top"]
    plot_w, plot_h = width - left - MARGIN["right"], height - top - MARGIN["bottom"]

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}"'
        + (f' id="{escape(chart_id)}"' if chart_id else "")
        + ">",
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="18" font-size="13" font-weight="600" fill="#1b1f24">{escape(title)}</text>',
    ]
    for tick in y_ticks:
        y = py(tick)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#d5dade"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#5c6670">'
            f"{_label(tick)}</text>"
        )
    for tick in x_ticks:
        x = px(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 4}" stroke="#5c6670"/>'
            f'<text x="{x:.1f}" y="{top + plot_h + 16}" font-size="11" text-anchor="middle" fill="#5c6670">'
            f"{_label(tick)}</text>"
        )
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#5c6670"/>'
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" font-size="11" text-anchor="middle" '
        f'fill="#5c6670">{escape(x_label)}</text>'
        f'<text x="12" y="{top + plot_h / 2:.1f}" font-size="11" text-anchor="middle" fill="#5c6670" '
        f'transform="rotate(-90 12 {top + plot_h / 2:.1f})">{escape(y_label)}</text>'
    )
    for index, (name, points) in enumerate(drawn.items()):
        colour = PALETTE[index % len(PALETTE)]
        path = " ".join(f"{'M' if k == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for k, (x, y) in enumerate(points))
        parts.append(
            f'<path class="series" data-series="{escape(name)}" d="{path}" fill="none" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        if len(points) <= MARKERS_UP_TO:
            parts.extend(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}">'
                f"<title>{escape(name)}: {_label(x)}, {_label(y)}</title></circle>"
                for x, y in points
            )
        legend_x = left + index * 100
        parts.append(
            f'<rect x="{legend_x}" y="26" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="35" font-size="11" fill="#1b1f24">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
