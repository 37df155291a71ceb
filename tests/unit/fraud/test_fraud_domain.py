"""The pure part of the fraud controls: fixed windows in the programme's zone, the verdict
of a rule set (block over hold, shadow hits apart), and the backtest's in-memory counters
equal to a naive count of the same history (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from loyalist.fraud import domain
from loyalist.kit import conditions as cond

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 6, 10, 15, 59, 30, tzinfo=UTC)  # 23:59:30 in Shanghai


def rule(code: str, when: dict, outcome: str, shadow: bool = False, on=("order",)) -> domain.Rule:
    return domain.Rule(code, tuple(on), cond.parse(when, domain.CATALOGUE), outcome, code, shadow)


def test_windows_are_fixed_and_the_day_is_local() -> None:
    assert domain.bucket("1m", T0, SH) == datetime(2026, 6, 10, 15, 59, tzinfo=UTC)
    assert domain.bucket("1h", T0, SH) == datetime(2026, 6, 10, 15, 0, tzinfo=UTC)
    assert domain.bucket("1d", T0, SH) == datetime(2026, 6, 9, 16, 0, tzinfo=UTC)
    later = T0 + timedelta(seconds=31)  # 00:00:01 the next local day
    assert domain.bucket("1d", later, SH) == datetime(2026, 6, 10, 16, 0, tzinfo=UTC)


def test_the_strongest_live_hit_wins_and_shadow_hits_are_apart() -> None:
    rules = [
        rule("s", {"gte": {"request.points": 1}}, "block", shadow=True),
        rule("h", {"gte": {"request.points": 1}}, "hold"),
        rule("b", {"gte": {"request.points": 100}}, "block", on=("redemption",)),
    ]
    v = domain.decide(rules, "order", {"request.points": 500})
    assert (v.outcome, v.rule, [h.rule for h in v.shadow]) == ("hold", "h", ["s"])
    v = domain.decide(rules, "redemption", {"request.points": 500})
    assert (v.outcome, v.rule, v.shadow) == ("block", "b", ())
    assert domain.decide(rules, "order", {"request.points": 0}).outcome == "allow"


def test_counter_keys_come_from_the_fields_a_rule_reads() -> None:
    keys = domain.counter_keys(
        {"device.redemptions.1m", "member.orders_points.1d", "device.members.1d", "request.points"}
    )
    assert keys == {
        domain.CounterKey("device", "redemptions", "1m"),
        domain.CounterKey("member", "orders", "1d"),
    }


requests = st.lists(
    st.tuples(
        st.sampled_from(["order", "redemption"]),
        st.integers(1, 3),  # member
        st.sampled_from([None, "d1", "d2"]),  # device
        st.integers(0, 500),  # points
        st.integers(0, 200),  # minutes after the previous request
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(requests)
def test_replayed_counters_equal_a_naive_count(reqs: list) -> None:
    keys = {
        domain.CounterKey("member", "orders", "1h"),
        domain.CounterKey("device", "redemptions", "1m"),
        domain.CounterKey("member", "orders", "1d"),
    }
    replay = domain.Replay(SH, keys, device_members=True)
    at = T0
    seen: list[domain.Request] = []
    for kind, member, device, pts, gap in reqs:
        at = at + timedelta(minutes=gap)
        req = domain.Request(kind, member, device, None, None, pts, 0, at)
        seen.append(req)
        ctx = replay.add(req)

        def same(r: domain.Request, window: str, now: datetime = at) -> bool:
            return domain.bucket(window, r.at, SH) == domain.bucket(window, now, SH)

        mine = [r for r in seen if r.member_id == member and r.kind == "order"]
        assert ctx["member.orders.1h"] == sum(1 for r in mine if same(r, "1h"))
        assert ctx["member.orders_points.1d"] == sum(r.points for r in mine if same(r, "1d"))
        if device is not None:
            dev = [r for r in seen if r.device == device]
            assert ctx["device.redemptions.1m"] == sum(
                1 for r in dev if r.kind == "redemption" and same(r, "1m")
            )
            assert ctx["device.members.1d"] == len({r.member_id for r in dev if same(r, "1d")})
        else:
            assert "device.redemptions.1m" not in ctx and "device.members.1d" not in ctx
