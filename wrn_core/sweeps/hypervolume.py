"""The area a set of (cost, accuracy) points dominates, and how much a new point is expected to add to it.

Cost is minimised and accuracy maximised; both are measured from a reference point (a cost no cell
reaches, an accuracy every cell beats). The sweeps use x = log10 cost (MACs per image or seconds), so
a front spanning two orders of magnitude weighs each decade alike, and y = test accuracy in points.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
from scipy.stats import norm


def _steps(points: Iterable[tuple[float, float]], ref: tuple[float, float]) -> list[tuple[float, float]]:
    """The front as (x, best y up to x) steps, cheapest first: only points inside the reference box, each better
    than every cheaper one."""
    x_ref, y_ref = ref
    steps: list[tuple[float, float]] = []
    for x, y in sorted((float(x), float(y)) for x, y in points if x < x_ref and y > y_ref):
        if not steps or y > steps[-1][1]:
            steps.append((x, y))
    return steps


def hypervolume(points: Iterable[tuple[float, float]], ref: tuple[float, float]) -> float:
    """The area dominated by (x, y) points, x minimised and y maximised, within the box up to ref = (x_ref, y_ref)."""
    steps = _steps(points, ref)
    edges = [x for x, _ in steps[1:]] + [ref[0]]
    return float(sum((right - x) * (y - ref[1]) for (x, y), right in zip(steps, edges)))


def expected_gain(mean: float, std: float, x: float, points: Sequence[tuple[float, float]],
                  ref: tuple[float, float]) -> float:
    """The expected hypervolume a new point at cost x adds when its y is normal(mean, std): the integral over
    [x, x_ref] of E[max(0, Y - F(x'))], F the front's best y at cost x' (the reference y where it has none)."""
    if x >= ref[0]:
        return 0.0
    steps = _steps(points, ref)
    edges = sorted({x, ref[0], *(px for px, _ in steps if x < px < ref[0])})
    gain = 0.0
    for left, right in zip(edges[:-1], edges[1:]):
        floor = max([ref[1], *(py for px, py in steps if px <= left)])
        gain += (right - left) * _expected_excess(mean, std, floor)
    return float(gain)


def _expected_excess(mean: float, std: float, floor: float) -> float:
    """E[max(0, Y - floor)] for Y ~ normal(mean, std)."""
    if not std > 0 or not math.isfinite(std):
        return max(0.0, mean - floor)
    z = (mean - floor) / std
    return float((mean - floor) * norm.cdf(z) + std * norm.pdf(z))


def reference_point(costs: Iterable[float], num_classes: int, margin: float = 0.1) -> tuple[float, float]:
    """(log10 of the largest cost plus `margin` decades, chance accuracy in points): the box every sweep's
    hypervolume is measured in, so the costliest cell still counts by its accuracy."""
    largest = max(float(c) for c in costs)
    return (math.log10(largest) + margin, 100.0 / max(1, num_classes))


def front_points(costs: Iterable[float], accuracies: Iterable[float]) -> list[tuple[float, float]]:
    """(log10 cost, accuracy in points) for costs and accuracies given as fractions; NaN accuracies left out."""
    return [(math.log10(c), 100.0 * a) for c, a in zip(costs, accuracies) if a is not None and np.isfinite(a)]
