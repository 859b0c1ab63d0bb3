"""A stop signal honoured within seconds in the long loops between a run's steps: the monitor's evaluations
(feature extraction, a probe's epochs) and the finish's BatchNorm re-estimation. A single-process run installs
what its stop signals set (`interruptible`); those loops call `check` between batches, which raises `Interrupted`
once a signal has arrived, and the step loop (`train/steps.py`) or the finish keeps the last step and stops.

Several processes are not interrupted here: each would leave its loop at another batch, and the ones still in
it would wait at their next collective. They stop together after the step, as before (`train/guard.py`)."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_probes: list[Callable[[], signal.Signals | None]] = []


class Interrupted(Exception):
    """A stop signal arrived during a loop that `check`s: the caller keeps what it can and stops."""

    def __init__(self, received: signal.Signals) -> None:
        self.received = received
        super().__init__(f"interrupted by {received.name}")


def check() -> None:
    """Raise `Interrupted` when a stop signal has arrived for an `interruptible` run; else nothing (microseconds)."""
    for probe in _probes:
        if (received := probe()) is not None:
            raise Interrupted(received)


@contextmanager
def interruptible(probe: Callable[[], signal.Signals | None], enabled: bool = True) -> Iterator[None]:
    """While inside, `check` asks `probe` (the signal received so far, or None)."""
    if not enabled:
        yield
        return
    _probes.append(probe)
    try:
        yield
    finally:
        _probes.remove(probe)
