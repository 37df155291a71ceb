"""Exact sums (loyalist.analytics.exact): the correctly rounded sum per group, as math.fsum
gives it, whatever the order of the terms."""

from __future__ import annotations

import math

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalist.analytics.exact import correctly_rounded, group_sums, mantissa_parts

values = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.one_of(
            st.integers(-(10**9), 10**9).map(lambda c: c / 100),
            st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
            st.sampled_from([0.1, 0.2, 0.3, 5e-324, -5e-324, 2.0**-1030, 1e16, -1e16, 0.0]),
        ),
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(rows=values)
def test_group_sums_are_fsum_per_group(rows: list[tuple[int, float]]) -> None:
    frame = pl.DataFrame(rows, schema={"g": pl.Int64, "v": pl.Float64}, orient="row")
    out = dict(group_sums(frame, "v", ["g"], alias="total").iter_rows())
    for g in {g for g, _ in rows}:
        expected = math.fsum(v for h, v in rows if h == g)
        assert out.get(g, 0.0) == expected, g
    # the same whatever the row order
    again = dict(group_sums(frame.reverse(), "v", ["g"], alias="total").iter_rows())
    assert again == out


@settings(max_examples=200, deadline=None)
@given(xs=st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=20))
def test_mantissa_parts_are_exact(xs: list[float]) -> None:
    import numpy as np

    k, hi, lo = mantissa_parts(np.array(xs, dtype=np.float64))
    for x, kk, h, low in zip(xs, k, hi, lo, strict=True):
        assert 0 <= low < 2**26
        assert correctly_rounded([(int(kk), (int(h) << 26) + int(low))]) == x or x == 0.0


def test_exact_examples() -> None:
    assert 0.1 + 0.2 + 0.3 != 0.6
    frame = pl.DataFrame({"g": [1, 1, 1, 2, 2, 2, 3], "v": [0.1, 0.2, 0.3, 1e16, 1.0, -1e16, 0.0]})
    out = group_sums(frame, "v", ["g"]).sort("g")
    assert out.to_dict(as_series=False) == {"g": [1, 2], "v": [0.6, 1.0]}  # all-zero 3 absent
    assert out.schema == pl.Schema({"g": pl.Int64, "v": pl.Float64})
    assert correctly_rounded([]) == 0.0
    assert correctly_rounded([(0, 3), (-1, 1)]) == 3.5
    assert correctly_rounded([(1000, 1), (-1074, -1)]) == 2.0**1000
