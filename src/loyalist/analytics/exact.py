"""Exact sums of doubles, the same in every engine.

A double is an integer mantissa times a power of two, so a sum of doubles is exactly a sum
of integers per exponent.  Both engines split each value that way, add the integer
mantissas per exponent (and per group) where the data are, and bring the few (exponent,
integer) pairs of a group here, where :func:`correctly_rounded` adds them exactly and rounds
once.  The result is :func:`math.fsum` of the values: the correctly rounded sum, independent
of the order of the terms and of how they were partitioned.

Mantissas are split in two halves (``hi`` above bit 26, ``lo`` the 26 bits below), each
summed as a 64-bit integer, so no sum overflows below 2**36 values per (group, exponent).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import polars as pl

#: width of the low half of a mantissa
LOW_BITS = 26
_LOW_MASK = (1 << LOW_BITS) - 1


def correctly_rounded(parts: Iterable[tuple[int, int]]) -> float:
    """The double nearest to the sum of ``n * 2**k`` over the ``(k, n)`` pairs (ties to
    even, as :func:`math.fsum` rounds); 0.0 for no pairs."""
    pairs = [(k, n) for k, n in parts if n]
    if not pairs:
        return 0.0
    low = min(k for k, _ in pairs)
    total = sum(n << (k - low) for k, n in pairs)
    if low >= 0:
        return float(total << low)
    return total / (1 << -low)  # int / int is correctly rounded


def mantissa_parts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exponents ``k`` and the halves of the integer mantissas ``m = hi * 2**26 + lo`` of
    finite doubles, each value being exactly ``m * 2**k``."""
    fraction, exponent = np.frexp(np.asarray(values, dtype=np.float64))
    mantissa = np.ldexp(fraction, 53).astype(np.int64)  # |m| < 2**53, exact
    return (
        exponent.astype(np.int64) - 53,
        np.right_shift(mantissa, LOW_BITS),
        np.bitwise_and(mantissa, _LOW_MASK),
    )


def group_sums(
    frame: pl.DataFrame, value: str, keys: Sequence[str], alias: str | None = None
) -> pl.DataFrame:
    """One row per group of ``keys`` with the exact sum of ``value`` (named ``alias``,
    default ``value``); groups whose values are all zero or null are absent."""
    name = alias or value
    data = frame.select(*keys, pl.col(value).cast(pl.Float64)).filter(
        pl.col(value).is_not_null() & (pl.col(value) != 0.0)
    )
    exponent, hi, lo = mantissa_parts(data[value].to_numpy())
    per_exponent = (
        data.select(keys)
        .with_columns(pl.Series("_k", exponent), pl.Series("_hi", hi), pl.Series("_lo", lo))
        .group_by(*keys, "_k")
        .agg(pl.col("_hi").sum(), pl.col("_lo").sum())
    )
    parts: dict[tuple[object, ...], list[tuple[int, int]]] = {}
    for row in per_exponent.iter_rows():
        *key, k, h, lw = row
        parts.setdefault(tuple(key), []).append((int(k), (int(h) << LOW_BITS) + int(lw)))
    schema = pl.Schema([*((k, frame.schema[k]) for k in keys), (name, pl.Float64())])
    rows = [(*key, correctly_rounded(p)) for key, p in parts.items()]
    return pl.DataFrame(rows, schema=schema, orient="row")
