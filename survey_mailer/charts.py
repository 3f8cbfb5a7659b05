"""Charts drawn server-side as SVG: readable without JavaScript, allowed by a strict CSP.

Colours are presentation attributes, not `style`, so `style-src 'self'` lets them through.
Every chart has a <title> and text labels, so a screen reader and a text browser get the numbers.

A chart scales with its panel, text included: the viewBox is narrow (360) and the fonts large
(14-15), so labels stay at 10 px or more on a 320 px phone and under 20 px on a desktop.
"""

from __future__ import annotations

import math
from html import escape

from .scores import segment

RED, YELLOW, GREEN = "#c62828", "#f9a825", "#2e7d32"
INK, MUTED, GRID = "currentColor", "#59636e", "#d0d7de"
WIDTH, SMALL, LABEL = 360, 14, 15  # viewBox width; font sizes of numbers and of axis labels


def _text_width(text: str, size: float) -> float:
    # A generous estimate of a label's width (digits are about .62 em in common UI fonts),
    # enough to keep a label inside the viewBox, which would otherwise clip it.
    return len(text) * size * 0.68


def score_colour(score: int) -> str:
    return {"detractor": RED, "passive": YELLOW, "promoter": GREEN}[segment(score)]


def _svg(width: int, height: int, title: str, body: list[str], css_class: str) -> str:
    return (f'<svg class="chart {css_class}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
            f"<title>{escape(title)}</title>{''.join(body)}</svg>")


def distribution(counts: list[int], title: str = "Scores from 0 to 10") -> str:
    """Return eleven bars, one per score, in red, yellow and green, with their counts."""
    width, height, top, bottom, left = WIDTH, 200, 24, 30, 4
    slot = (width - 2 * left) / 11
    peak = max(counts) or 1
    total = sum(counts) or 1
    body = [f'<line x1="{left}" y1="{height - bottom}" x2="{width - left}" '
            f'y2="{height - bottom}" stroke="{GRID}"/>']
    for score, count in enumerate(counts):
        h = (height - top - bottom) * count / peak
        x = left + score * slot + slot * 0.12
        y = height - bottom - h
        w = slot * 0.76
        share = 100 * count / total
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{max(h, 0.5):.1f}" rx="3" '
            f'fill="{score_colour(score)}"><title>{score}: {count} ({share:.0f}%)</title></rect>')
        body.append(f'<text x="{x + w / 2:.1f}" y="{y - 5:.1f}" text-anchor="middle" '
                    f'font-size="{SMALL}" fill="{INK}">{count}</text>')
        body.append(f'<text x="{x + w / 2:.1f}" y="{height - bottom + 19}" '
                    f'text-anchor="middle" font-size="{LABEL}" font-weight="600" '
                    f'fill="{INK}">{score}</text>')
    return _svg(width, height, title, body, "distribution")


def trend(points: list[tuple[str, float | None, float | None]],
          title: str = "NPS per quarter") -> str:
    """Return a line of NPS per period with its margin of error as a band, and a zero line."""
    width, height, top, bottom = WIDTH, 220, 22, 34
    known = [(i, p[1], p[2] or 0) for i, p in enumerate(points) if p[1] is not None]
    if not known:
        return _svg(width, 60, title, [f'<text x="8" y="34" fill="{MUTED}" font-size="{SMALL}">'
                                       'No counted responses yet</text>'], "trend")
    # The last period's label (and its value above the point) is centred on the right edge
    # of the plot: leave room for half of it, or the viewBox cuts it.
    label_width = max(_text_width(p[0], SMALL) for p in points)
    right = max(16.0, label_width / 2 + 4, _text_width("+100.0", SMALL) / 2 + 4)
    left = max(_text_width("+100", SMALL) + 6, label_width / 2 + 4)  # the ticks' labels
    low = max(-100, min(v - m for _, v, m in known) - 5)
    high = min(100, max(v + m for _, v, m in known) + 5)
    low, high = min(low, 0), max(high, 0)
    span = (high - low) or 1
    plot_w = width - left - right
    step = plot_w / max(len(points) - 1, 1)

    def x(i: int) -> float:
        return left + (i * step if len(points) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + (high - v) / span * (height - top - bottom)

    body = []
    for tick in _ticks(low, high):
        dash = 'stroke-width="1.5"' if tick == 0 else 'stroke-dasharray="3 3"'
        body.append(f'<line x1="{left}" y1="{y(tick):.1f}" x2="{width - right}" '
                    f'y2="{y(tick):.1f}" stroke="{GRID}" {dash}/>')
        body.append(f'<text x="{left - 5}" y="{y(tick) + 5:.1f}" text-anchor="end" '
                    f'font-size="{SMALL}" fill="{MUTED}">{tick:+d}</text>'.replace(">+0<", ">0<"))
    upper = " ".join(f"{x(i):.1f},{y(min(100, v + m)):.1f}" for i, v, m in known)
    lower = " ".join(f"{x(i):.1f},{y(max(-100, v - m)):.1f}" for i, v, m in reversed(known))
    body.append(f'<polygon points="{upper} {lower}" fill="#0969da" fill-opacity="0.12"/>')
    line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v, _ in known)
    body.append(f'<polyline points="{line}" fill="none" stroke="#0969da" stroke-width="2.5"/>')
    for i, v, m in known:
        body.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="4" fill="#0969da">'
                    f'<title>{escape(points[i][0])}: NPS {v:+.1f} ± {m:.1f}</title></circle>')
        body.append(f'<text x="{x(i):.1f}" y="{y(v) - 9:.1f}" text-anchor="middle" '
                    f'font-size="{SMALL}" font-weight="600" fill="{INK}">{v:+.1f}</text>')
    # Label as many periods as fit side by side; the last one always.
    every = max(1, math.ceil(len(points) * (label_width + 8) / (plot_w + label_width)))
    last = len(points) - 1
    for i, point in enumerate(points):
        if i == last or (i % every == 0 and last - i >= every):
            body.append(f'<text x="{x(i):.1f}" y="{height - bottom + 22}" text-anchor="middle" '
                        f'font-size="{SMALL}" fill="{INK}">{escape(point[0])}</text>')
    return _svg(width, height, title, body, "trend")


def _ticks(low: float, high: float) -> list[int]:
    step = 10 if high - low <= 60 else 25 if high - low <= 150 else 50
    start = int(low // step) * step
    return [t for t in range(start, int(high) + step, step) if low <= t <= high]


def nps_bar(nps: float | None, margin: float | None) -> str:
    """Return a small bar from -100 to +100 with the NPS as a dot and its margin as a whisker."""
    width, height = 160, 18
    if nps is None:
        return ""

    def x(v: float) -> float:
        return 4 + (max(-100.0, min(100.0, v)) + 100) / 200 * (width - 8)

    colour = RED if nps < 0 else YELLOW if nps < 30 else GREEN
    m = margin or 0
    body = [
        f'<rect x="4" y="8" width="{width - 8}" height="2" fill="{GRID}"/>',
        f'<line x1="{x(0):.1f}" y1="3" x2="{x(0):.1f}" y2="15" stroke="{MUTED}"/>',
        f'<line x1="{x(nps - m):.1f}" y1="9" x2="{x(nps + m):.1f}" y2="9" stroke="{colour}" '
        f'stroke-width="4" stroke-opacity="0.45" stroke-linecap="round"/>',
        f'<circle cx="{x(nps):.1f}" cy="9" r="5" fill="{colour}"/>',
    ]
    return _svg(width, height, f"NPS {nps:+.1f} ± {m:.1f} on a scale from -100 to +100", body,
                "npsbar")
