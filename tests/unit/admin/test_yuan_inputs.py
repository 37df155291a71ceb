"""The programme editor's money inputs: yuan in, fen stored, exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from loyalist.admin.endpoints import _assemble, fen, is_money, yuan


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_fen_shown_in_yuan_parses_back_exactly(minor: int) -> None:
    assert fen(yuan(minor)) == minor


def test_what_people_type() -> None:
    assert fen("19.9") == 1990
    assert fen("¥1,000") == 100_000
    assert fen(" 0.01 ") == 1
    assert fen("0.1") == 10
    for bad in ("", "1.234", "abc", "1e3", "1.", ".5", "--1", "12.5.0"):
        assert fen(bad) is None, bad
    assert yuan(1990) == "19.90" and yuan(0) == "0.00" and yuan(-5) == "-0.05"


def test_which_inputs_are_money() -> None:
    spend = {"tiers": {"metric": "spend"}}
    orders = {"tiers": {"metric": "orders"}}
    assert is_money("rewards.0.cash_minor", orders)
    assert is_money("tiers.levels.1.threshold", spend)
    assert not is_money("tiers.levels.1.threshold", orders)
    assert not is_money("rewards.0.points", spend)


def test_a_bad_amount_is_named_and_nothing_is_parsed() -> None:
    base = {
        "name": "P",
        "tiers": {
            "metric": "spend",
            "levels": [
                {"code": "base", "name": "B", "threshold": 0},
                {"code": "silver", "name": "S", "threshold": 100_000},
                {"code": "gold", "name": "G", "threshold": 500_000},
            ],
        },
        "rewards": [{"code": "mug", "name": "Mug", "points": 10, "cash_minor": 0}],
    }
    form = {"rewards": "- {code: mug, name: Mug, points: 10}", "rewards.0.cash_minor": "9.999"}
    draft, errors = _assemble(base, form)
    assert draft is None
    assert errors == {
        "rewards.0.cash_minor": "an amount in yuan with at most 2 decimals, e.g. 19.90"
    }
    form["rewards.0.cash_minor"] = "19.9"
    draft, errors = _assemble(base, form)
    assert errors == {} and draft is not None and draft.rewards[0].cash_minor == 1990
