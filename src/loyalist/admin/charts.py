"""ECharts options for the dashboard, built on the server from the dashboard figures.

Each option is plain JSON (no functions): ``admin.js`` adds the locale's number and money
formatters (¥ and 万 in Chinese) when it draws the chart. Money is sent in yuan.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loyalist.dashboard.service import Dashboard

# ECharts' default palette, so the console looks like the charts operators know.
PALETTE = ["#5470c6", "#91cc75", "#fac858", "#ee6666", "#73c0de", "#3ba272", "#fc8452"]
GRID = {"left": 8, "right": 16, "top": 36, "bottom": 8, "containLabel": True}


def _yuan(minor: int) -> float:
    return round(minor / 100, 2)


def dashboard_charts(
    d: Dashboard,
    tier_names: dict[str, str],
    reward_names: dict[str, str],
    _: Callable[[str], str],
) -> dict[str, dict[str, Any]]:
    member, non_member = _("Members"), _("Non-members")
    sales_daily = {
        "color": PALETTE,
        "tooltip": {"trigger": "axis"},
        "legend": {"data": [member, non_member], "top": 0},
        "grid": GRID,
        "xAxis": {
            "type": "category",
            "data": [day.strftime("%m-%d") for day, _m, _n in d.daily],
        },
        "yAxis": {"type": "value"},
        "series": [
            {
                "name": member,
                "type": "bar",
                "stack": "sales",
                "data": [_yuan(m) for _day, m, _n in d.daily],
            },
            {
                "name": non_member,
                "type": "bar",
                "stack": "sales",
                "data": [_yuan(n) for _day, _m, n in d.daily],
            },
        ],
    }
    sales_split = {
        "color": PALETTE,
        "tooltip": {"trigger": "item"},
        "legend": {"top": 0},
        "series": [
            {
                "type": "pie",
                "radius": ["42%", "66%"],
                "center": ["50%", "56%"],
                "label": {"show": False},
                "data": [
                    {"name": member, "value": _yuan(d.member_sales_minor)},
                    {"name": non_member, "value": _yuan(d.non_member_sales_minor)},
                ],
            }
        ],
    }
    points = {
        "color": PALETTE,
        "tooltip": {"trigger": "axis"},
        "grid": GRID,
        "xAxis": {
            "type": "category",
            "data": [_("Issued"), _("Activated"), _("Redeemed"), _("Expired")],
            "axisLabel": {"interval": 0, "fontSize": 11, "width": 48, "overflow": "break"},
        },
        "yAxis": {"type": "value"},
        "series": [
            {
                "name": _("Points"),
                "type": "bar",
                "barMaxWidth": 48,
                "label": {"show": True, "position": "top"},
                "data": [
                    {"value": d.points_issued, "itemStyle": {"color": PALETTE[0]}},
                    {"value": d.points_activated, "itemStyle": {"color": PALETTE[1]}},
                    {"value": d.points_redeemed, "itemStyle": {"color": PALETTE[2]}},
                    {"value": d.points_expired, "itemStyle": {"color": PALETTE[3]}},
                ],
            }
        ],
    }
    tiers = {
        "color": PALETTE,
        "tooltip": {"trigger": "item"},
        "legend": {"orient": "vertical", "left": 0, "top": "middle"},
        "series": [
            {
                "type": "pie",
                "radius": ["40%", "68%"],
                "center": ["62%", "50%"],
                "label": {"show": False},
                "data": [
                    {"name": tier_names.get(code, name), "value": n} for code, name, n in d.tiers
                ],
            }
        ],
    }
    order = {code: i for i, code in enumerate(tier_names)}
    targets = sorted({to for to, _r, _n in d.tier_moves}, key=lambda t: (order.get(t, 99), t))
    reasons = [("upgrade", _("Upgrades")), ("downgrade", _("Downgrades"))]
    moves = {(to, reason): n for to, reason, n in d.tier_moves}
    tier_moves = {
        "color": [PALETTE[1], PALETTE[3], PALETTE[4]],
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0},
        "grid": GRID,
        "xAxis": {
            "type": "category",
            "data": [tier_names.get(t, t) for t in targets],
            "axisLabel": {"interval": 0},
        },
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [
            {
                "name": label,
                "type": "bar",
                "barMaxWidth": 36,
                "data": [moves.get((t, reason), 0) for t in targets],
            }
            for reason, label in reasons
        ],
    }
    top = list(reversed(d.top_rewards))
    top_rewards = {
        "color": [PALETTE[2]],
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "grid": {**GRID, "top": 8},
        "xAxis": {"type": "value", "minInterval": 1},
        "yAxis": {"type": "category", "data": [reward_names.get(c, n) for c, n, _q, _p in top]},
        "series": [
            {
                "name": _("Redeemed"),
                "type": "bar",
                "barMaxWidth": 22,
                "label": {"show": True, "position": "right"},
                "data": [q for _c, _n, q, _p in top],
            }
        ],
    }
    return {
        "sales_daily": sales_daily,
        "sales_split": sales_split,
        "points": points,
        "tiers": tiers,
        "tier_moves": tier_moves,
        "top_rewards": top_rewards,
    }
