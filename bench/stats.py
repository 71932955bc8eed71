"""Small numeric helpers shared by the benches."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 2,000 samples is the 1,980th smallest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(value: float) -> float:
    """Milliseconds rounded for the JSON line."""
    return round(value, 1)
