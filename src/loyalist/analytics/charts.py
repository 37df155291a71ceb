"""Small inline-SVG charts for the self-contained HTML report (no JavaScript, no CDN)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#2f6fba", "#e07b39", "#3a9d5d", "#c4453c", "#8a63b8", "#7f7f7f", "#b8a233")
_FONT = (
    'font-family=\'system-ui, -apple-system, "Noto Sans CJK SC", "Microsoft YaHei", sans-serif\''
)


def _nice_max(value: float) -> float:
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    # maxima whose quarters (the four grid steps) are round numbers
    for m in (1, 1.2, 1.6, 2, 2.4, 3.2, 4, 6, 8, 10):
        if value <= m * exp:
            return float(m * exp)
    return float(10 * exp)


def _fmt(v: float, percent: bool) -> str:
    if percent:
        return f"{v * 100:.0f}%"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if float(v).is_integer():
        return f"{int(v)}"
    return f"{v:.2g}" if abs(v) < 1 else f"{v:.1f}"


def bar_chart(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str = "",
    width: int = 720,
    height: int = 300,
    percent: bool = False,
    y_label: str = "",
    x_label: str = "",
) -> str:
    """Vertical grouped bars: one group per category, one bar per series."""
    rotate = len(categories) > 8
    left, right, top = 64, 16, 40 if title else 16
    bottom = (96 if rotate else 48) + (18 if x_label else 0)
    pw, ph = width - left - right, height - top - bottom
    vmax = _nice_max(max((v for _, vals in series for v in vals if math.isfinite(v)), default=1))
    n_cat = max(len(categories), 1)
    n_ser = max(len(series), 1)
    group_w = pw / n_cat
    bar_w = group_w * 0.8 / n_ser
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' "
        f"width='100%' role='img' {_FONT} font-size='12'>"
    ]
    if title:
        out.append(
            f"<text x='{left}' y='20' font-size='14' font-weight='600'>{escape(title)}</text>"
        )
    for i in range(5):
        v = vmax * i / 4
        y = top + ph - ph * i / 4
        out.append(
            f"<line x1='{left}' x2='{left + pw}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e3e3e3'/>"
        )
        out.append(
            f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end' fill='#555'>"
            f"{escape(_fmt(v, percent))}</text>"
        )
    for ci, cat in enumerate(categories):
        gx = left + ci * group_w + group_w * 0.1
        for si, (name, vals) in enumerate(series):
            v = vals[ci] if ci < len(vals) else 0.0
            if not math.isfinite(v):
                continue
            h = ph * max(v, 0.0) / vmax
            x = gx + si * bar_w
            out.append(
                f"<rect x='{x:.1f}' y='{top + ph - h:.1f}' width='{max(bar_w - 2, 1):.1f}' "
                f"height='{h:.1f}' fill='{PALETTE[si % len(PALETTE)]}'>"
                f"<title>{escape(name)} · {escape(cat)}: {escape(_fmt(v, percent))}</title></rect>"
            )
        label = cat if len(cat) <= 18 else cat[:17] + "…"
        cx = left + ci * group_w + group_w / 2
        if rotate:
            out.append(
                f"<text x='{cx:.1f}' y='{top + ph + 14}' text-anchor='end' fill='#333' "
                f"transform='rotate(-30 {cx:.1f} {top + ph + 14})'>{escape(label)}</text>"
            )
        else:
            out.append(
                f"<text x='{cx:.1f}' y='{top + ph + 16}' text-anchor='middle' fill='#333'>"
                f"{escape(label)}</text>"
            )
    out.append(
        f"<line x1='{left}' x2='{left + pw}' y1='{top + ph}' y2='{top + ph}' stroke='#999'/>"
    )
    if x_label:
        out.append(
            f"<text x='{left + pw / 2:.1f}' y='{height - 6}' text-anchor='middle' fill='#555'>"
            f"{escape(x_label)}</text>"
        )
    if y_label:
        out.append(
            f"<text x='14' y='{top + ph / 2:.1f}' text-anchor='middle' fill='#555' "
            f"transform='rotate(-90 14 {top + ph / 2:.1f})'>{escape(y_label)}</text>"
        )
    out.append(_legend([name for name, _ in series], width - right, 20 if title else 12))
    out.append("</svg>")
    return "".join(out)


def line_chart(
    x_values: Sequence[float],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str = "",
    width: int = 720,
    height: int = 300,
    percent: bool = False,
    x_label: str = "",
) -> str:
    """Lines over a shared numeric x axis (NaN breaks a line)."""
    left, right, top, bottom = 64, 16, 40 if title else 16, 48
    pw, ph = width - left - right, height - top - bottom
    vmax = _nice_max(max((v for _, vals in series for v in vals if math.isfinite(v)), default=1))
    xmin = min(x_values) if x_values else 0.0
    xmax = max(x_values) if x_values else 1.0
    span = (xmax - xmin) or 1.0
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' "
        f"width='100%' role='img' {_FONT} font-size='12'>"
    ]
    if title:
        out.append(
            f"<text x='{left}' y='20' font-size='14' font-weight='600'>{escape(title)}</text>"
        )
    for i in range(5):
        y = top + ph - ph * i / 4
        out.append(
            f"<line x1='{left}' x2='{left + pw}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e3e3e3'/>"
        )
        out.append(
            f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end' fill='#555'>"
            f"{escape(_fmt(vmax * i / 4, percent))}</text>"
        )
    step = max(1, len(x_values) // 12)
    for i, xv in enumerate(x_values):
        if i % step == 0:
            x = left + pw * (xv - xmin) / span
            out.append(
                f"<text x='{x:.1f}' y='{top + ph + 16}' text-anchor='middle' fill='#555'>"
                f"{escape(_fmt(xv, False))}</text>"
            )
    for si, (name, vals) in enumerate(series):
        color = PALETTE[si % len(PALETTE)]
        pts: list[str] = []
        segments: list[list[str]] = []
        for xv, v in zip(x_values, vals, strict=False):
            if not math.isfinite(v):
                if pts:
                    segments.append(pts)
                pts = []
                continue
            pts.append(f"{left + pw * (xv - xmin) / span:.1f},{top + ph - ph * v / vmax:.1f}")
        if pts:
            segments.append(pts)
        for seg in segments:
            out.append(
                f"<polyline fill='none' stroke='{color}' stroke-width='2' points='{' '.join(seg)}'>"
                f"<title>{escape(name)}</title></polyline>"
            )
    out.append(
        f"<line x1='{left}' x2='{left + pw}' y1='{top + ph}' y2='{top + ph}' stroke='#999'/>"
    )
    if x_label:
        out.append(
            f"<text x='{left + pw / 2:.1f}' y='{height - 6}' text-anchor='middle' fill='#555'>"
            f"{escape(x_label)}</text>"
        )
    if len(series) <= 8:
        out.append(_legend([n for n, _ in series], width - right, 20 if title else 12))
    out.append("</svg>")
    return "".join(out)


def _legend(names: Sequence[str], right_x: int, y: int) -> str:
    parts = []
    x = right_x
    for i, name in reversed(list(enumerate(names))):
        w = 16 + sum(13 if ord(ch) > 0x2E80 else 7 for ch in name) + 12
        x -= w
        parts.append(
            f"<rect x='{x}' y='{y - 9}' width='10' height='10' fill='{PALETTE[i % len(PALETTE)]}'/>"
            f"<text x='{x + 14}' y='{y}' fill='#333'>{escape(name)}</text>"
        )
    return "".join(parts)


def heat_color(value: float) -> str:
    """Background colour for a 0..1 value (white to blue)."""
    if not math.isfinite(value):
        return "#ffffff"
    v = min(max(value, 0.0), 1.0) ** 0.5
    r = int(255 - (255 - 47) * v)
    g = int(255 - (255 - 111) * v)
    b = int(255 - (255 - 186) * v)
    return f"#{r:02x}{g:02x}{b:02x}"
