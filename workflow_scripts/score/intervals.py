"""Uncertainty over seeds, shared by the aggregates and the verdict: a mean with its 95 %
t-interval, a paired t-test between two methods over the same seeds, and how stable a
method's rank is. Seeds are few (2-10), so the interval is Student's t, not a normal one."""

from collections.abc import Iterable

import numpy as np
import scipy.stats

LEVEL = 0.95  # the intervals' coverage
ALPHA = 0.05  # a paired test's p below it: the two methods are distinguishable


def t_interval(values: Iterable[float]) -> tuple[float, float, float, float]:
    """(mean, sd, low, high): the mean of ``values`` (NaN dropped) and its two-sided 95 %
    Student-t interval, mean ± t(0.975, n-1)·sd/√n; the interval is NaN with fewer than 2."""
    x = np.asarray([v for v in values if not np.isnan(v)], dtype=float)
    if len(x) == 0:
        return np.nan, np.nan, np.nan, np.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, np.nan, np.nan, np.nan
    sd = float(x.std(ddof=1))
    half = float(scipy.stats.t.ppf(0.5 + LEVEL / 2, len(x) - 1)) * sd / np.sqrt(len(x))
    return mean, sd, mean - half, mean + half


def paired_p(a: Iterable[float], b: Iterable[float]) -> float:
    """Two-sided paired t-test p-value of ``a`` against ``b`` (the same seeds, in the same
    order); NaN with fewer than 2 pairs. Identical differences in every seed: 1 when they are
    zero (no difference at all), else 0 (a difference with no noise)."""
    d = np.asarray(list(a), dtype=float) - np.asarray(list(b), dtype=float)
    d = d[~np.isnan(d)]
    if len(d) < 2:
        return np.nan
    if np.allclose(d, d[0]):
        return 1.0 if np.isclose(d[0], 0) else 0.0
    return float(scipy.stats.ttest_1samp(d, 0.0).pvalue)


def rank_stability(ranks: Iterable[float]) -> tuple[float, float]:
    """(modal rank, share of seeds in which the method has it): 1 = the same rank in every
    seed. Ties between modes go to the better (lower) rank; NaN ranks (controls) give NaN."""
    r = np.asarray([v for v in ranks if not np.isnan(v)], dtype=float)
    if len(r) == 0:
        return np.nan, np.nan
    values, counts = np.unique(r, return_counts=True)  # sorted: argmax picks the lowest mode
    mode = values[np.argmax(counts)]
    return float(mode), float(counts.max() / len(r))
