"""HPT's convergence speed-up (Reed et al., WACV 2022, Sec. 5.1).

The steps the from-scratch run needed to reach its best accuracy, divided by the steps another run needed to
reach that same accuracy. A run that is already there at step 0 (its base as it is) has an infinite
speed-up; one that never gets there has none ("not reached").
"""

from __future__ import annotations

Curve = list[tuple[int, float]]  # (pretraining step, accuracy), in step order


def steps_to_reach(curve: Curve, target: float) -> int | None:
    return next((step for step, accuracy in curve if accuracy >= target), None)


def speedup(scratch: Curve, other: Curve) -> float | None:
    """None when `other` never reaches the scratch run's best accuracy; inf when it starts there; NaN when
    the scratch run's best is its own random start (it never improved, so it needed no steps)."""
    if not scratch:
        raise ValueError("the scratch run has no accuracy curve")
    best = max(accuracy for _, accuracy in scratch)
    needed = steps_to_reach(scratch, best)
    reached = steps_to_reach(other, best)
    if needed is None or needed == 0:  # the best is reached at its first point, at the latest
        return float("nan")
    if reached is None:
        return None
    return float("inf") if reached == 0 else needed / reached


def describe(value: float | None) -> str:
    if value is None:
        return "not reached"
    if value != value:
        return "undefined (scratch never beat its random start)"
    return "at step 0 (the base already is)" if value == float("inf") else f"{value:.1f}x"
