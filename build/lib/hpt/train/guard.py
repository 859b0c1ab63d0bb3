"""What keeps a run folder safe on a shared cluster: one writer at a time, and a clean stop when the scheduler
asks for one.

- **One writer.** The process that writes a run (rank 0) holds an exclusive `flock` on `RUN/.lock` from before
  it changes anything until the run ends; a second `hpt pretrain` (or `hpt chain` stage) into the same folder
  stops at once with one line naming the holder. The operating system releases the lock when the holder dies
  (a SIGKILL, a node lost), so a stale lock never blocks a resume. (flock works on local disks and on NFSv4;
  some older network file systems ignore it.)
- **A clean stop.** Clusters send SIGTERM before they pre-empt or time out a job (SLURM also SIGUSR1 with
  `--signal`). hpt finishes the step it is in, writes a checkpoint and exits with 128 + the signal's number,
  saying how to resume; every process of a multi-process run stops at the same step. `train.stop_signals`
  names the signals; SIGINT (Ctrl-C) still stops at once.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
from pathlib import Path
from types import FrameType
from typing import IO

from hpt.core.run_files import LOCK
from hpt.errors import HptError


class RunLock:
    """The exclusive lock on a run folder, taken (`acquire`) just before the run first changes the folder and
    held until the `with` block ends; `enabled`: this process writes the run (rank 0)."""

    def __init__(self, run: Path, enabled: bool = True) -> None:
        self.run, self.enabled = run, enabled
        self.handle: IO[str] | None = None

    def acquire(self) -> None:
        if not self.enabled or self.handle is not None:
            return
        try:
            self.run.mkdir(parents=True, exist_ok=True)
            handle = open(self.run / LOCK, "a+")  # noqa: SIM115 - held open for the whole run, closed on exit
        except OSError as exc:
            raise HptError(f"--out '{self.run}' cannot be created ({exc.strerror or exc})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise HptError(
                f"--out '{self.run}' is in use by {holder}: one run writes a folder at a time (wait for it, or "
                "choose another --out)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        self.handle = handle

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()  # releases the lock
            self.handle = None


class StopRequests:
    """Records the stop signals that arrive while installed (`received`); the step loop looks between steps."""

    def __init__(self, names: list[str]) -> None:
        self.signals = [_signal(name) for name in names]
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, object] = {}

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(number)

    def __enter__(self) -> StopRequests:
        try:
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread (e.g. a notebook's worker): signals keep their handlers
            self._restore()
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()


class Stopped(Exception):
    """A run stopped cleanly at a signal: its checkpoint holds step `step`; `--resume` continues it. At step 0 (the
    starting point's evaluation) nothing was trained and no checkpoint is written: `--resume` starts it again."""

    def __init__(self, received: signal.Signals, step: int, run: Path, speaks: bool = True) -> None:
        self.received, self.step, self.run, self.speaks = received, step, run, speaks
        """`speaks`: this is the process that reports (rank 0); the others stop quietly."""
        kept = (
            "the checkpoint is written: resume with"
            if step
            else "nothing was trained yet (it was evaluating the starting point): start it again with"
        )
        super().__init__(f"stopped by {received.name} at step {step}; {kept} hpt pretrain --out {run} --resume")

    @property
    def exit_code(self) -> int:
        return 128 + int(self.received)


def _signal(name: str) -> signal.Signals:
    try:
        return signal.Signals[name.upper() if name.upper().startswith("SIG") else f"SIG{name.upper()}"]
    except KeyError:
        raise HptError(f"train.stop_signals: '{name}' is not a signal (e.g. SIGTERM, SIGUSR1)") from None
