"""Small statistics of benchmark runs, shared by the report tables and the paired comparison."""

from __future__ import annotations

import math

import numpy as np


def mean(values: list) -> float | None:
    """Mean of the finite values (None and NaN left out); None when there are none."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(vals)) if vals else None


def sd(values: list) -> float | None:
    """Sample standard deviation of the finite values; None for fewer than two."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.std(vals, ddof=1)) if len(vals) > 1 else None


def group_dice(run: dict, organs: dict[str, str], group: str | None) -> float | None:
    """Mean Dice of one run over the organs of ``group`` (base | novel | None = all)."""
    return mean([d for o, d in run["dice"].items() if group is None or organs.get(o) == group])
