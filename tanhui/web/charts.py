"""Server-rendered SVG charts (bar, line, stacked bar): no JavaScript, readable at 390 px.

Each chart takes labels and integer series and returns escaped SVG markup with a <title> and a
table-free text alternative (`aria-label`), so a screen reader gets the numbers too.
Coordinates are computed in integers: the drawing is a picture of the data, never a source of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

PALETTE = ["#1f8a5b", "#5fb98a", "#a6d8b9", "#2f6f8f", "#8fbcd4", "#c9a227", "#b5651d", "#7a6fb0"]

# A 480-unit-wide drawing: scaled to a 350 px phone column, 14-unit labels stay ~10 px tall.
WIDTH = 480
HEIGHT = 240
LEFT = 70
RIGHT = 10
TOP = 14
BOTTOM = 34

Fmt = Callable[[int], str]


def _nice_max(value: int) -> int:
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _frame(title: str, summary: str, body: list[str], legend: list[tuple[str, str]]) -> Markup:
    legend_html = ""
    if legend:
        items = "".join(
            f'<li><span class="swatch" style="background:{colour}"></span>{escape(name)}</li>'
            for name, colour in legend
        )
        legend_html = f'<ul class="chart-legend">{items}</ul>'
    svg = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(summary)}" preserveAspectRatio="xMidYMid meet" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        + "".join(body)
        + "</svg>"
    )
    return Markup(
        f'<figure class="chart-box"><figcaption>{escape(title)}</figcaption>'
        f"{svg}{legend_html}</figure>"
    )


def _axes(top_value: int, fmt: Fmt) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = []
    for i in range(5):
        y = TOP + plot_h - plot_h * i // 4
        label = fmt(top_value * i // 4)
        parts.append(
            f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end" class="axis">{escape(label)}</text>'
        )
    return parts


def _x_labels(labels: Sequence[str], centre: Callable[[int], int]) -> list[str]:
    step = max(1, (len(labels) + 4) // 5)  # at most ~5 labels: legible on a phone
    return [
        f'<text x="{centre(i)}" y="{HEIGHT - BOTTOM + 20}" text-anchor="middle" class="axis">'
        f"{escape(label)}</text>"
        for i, label in enumerate(labels)
        if i % step == 0
    ]


def _summary(labels: Sequence[str], series: dict[str, Sequence[int]], fmt: Fmt) -> str:
    lines = []
    for name, values in series.items():
        pairs = ", ".join(f"{lab}: {fmt(v)}" for lab, v in zip(labels, values, strict=False))
        lines.append(f"{name} — {pairs}" if name else pairs)
    return "; ".join(lines)


def bar(title: str, labels: Sequence[str], values: Sequence[int], fmt: Fmt = str) -> Markup:
    return stacked(title, labels, {"": values}, fmt)


def stacked(
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[int]],
    fmt: Fmt = str,
    colours: Sequence[str] = PALETTE,
) -> Markup:
    """`colours`: one per series, in order (a status reads better in its own colour)."""
    n = max(1, len(labels))
    totals = [sum(max(0, s[i]) for s in series.values()) for i in range(len(labels))]
    top_value = _nice_max(max(totals, default=0))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w // n
    bar_w = max(2, slot * 7 // 10)

    def centre(i: int) -> int:
        return LEFT + slot * i + slot // 2

    body = _axes(top_value, fmt)
    for i, label in enumerate(labels):
        base = TOP + plot_h
        for k, (name, values) in enumerate(series.items()):
            value = max(0, values[i])
            h = plot_h * value // top_value
            if h <= 0:
                continue
            base -= h
            tip = f"{name} {label}: {fmt(value)}" if name else f"{label}: {fmt(value)}"
            body.append(
                f'<rect x="{centre(i) - bar_w // 2}" y="{base}" width="{bar_w}" height="{h}" '
                f'fill="{colours[k % len(colours)]}"><title>{escape(tip)}</title></rect>'
            )
    body += _x_labels(labels, centre)
    legend = [(name, colours[k % len(colours)]) for k, name in enumerate(series) if name]
    return _frame(title, title + ": " + _summary(labels, series, fmt), body, legend)


def line(
    title: str, labels: Sequence[str], series: dict[str, Sequence[int]], fmt: Fmt = str
) -> Markup:
    n = len(labels)
    top_value = _nice_max(max((max(v, default=0) for v in series.values()), default=0))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM

    def x_at(i: int) -> int:
        return LEFT + (plot_w * i // (n - 1) if n > 1 else plot_w // 2)

    body = _axes(top_value, fmt)
    for k, (name, values) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        points = " ".join(
            f"{x_at(i)},{TOP + plot_h - plot_h * max(0, v) // top_value}"
            for i, v in enumerate(values)
        )
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2.5"/>'
        )
        for i, v in enumerate(values):
            y = TOP + plot_h - plot_h * max(0, v) // top_value
            tip = f"{name} {labels[i]}: {fmt(v)}" if name else f"{labels[i]}: {fmt(v)}"
            body.append(
                f'<circle cx="{x_at(i)}" cy="{y}" r="3" fill="{colour}">'
                f"<title>{escape(tip)}</title></circle>"
            )
    body += _x_labels(labels, x_at)
    legend = [(name, PALETTE[k % len(PALETTE)]) for k, name in enumerate(series) if name]
    return _frame(title, title + ": " + _summary(labels, series, fmt), body, legend)
