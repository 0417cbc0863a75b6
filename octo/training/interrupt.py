"""SIGTERM / SIGINT as a clean stop: a time limit must never cost a result.

``timeout`` sends SIGTERM, a cluster sends it before a kill, a user presses Ctrl-C. Lightning's own handling
exits 0 on SIGTERM without a word, and a KeyboardInterrupt may land in the middle of an optimiser step. Here the
signal only sets a flag; the training module checks it after each batch and raises :class:`RunInterrupted`
there, so the state is never half-updated. ``octo.train`` then writes ``metrics.json`` with status ``timeout``
and everything measured so far, and exits non-zero; ``checkpoints/last.ckpt`` holds the last completed epoch
(the partial epoch is dropped so that a resumed run equals one that was never stopped).
"""

from __future__ import annotations

import signal
import threading

from octo.utils.errors import RunInterrupted

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopOnSignal:
    """Context manager: while active, SIGTERM / SIGINT set :attr:`received` instead of killing the process.

    A second signal of the same run means "now": it raises at once. Outside the main thread (where Python
    cannot install handlers) it does nothing.
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict = {}

    def _handler(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            raise RunInterrupted(f"second {name} received: stopping at once")
        self.received = name

    def check(self, where: str) -> None:
        """Raise :class:`RunInterrupted` if a signal has arrived (call at safe points only)."""
        if self.received is not None:
            raise RunInterrupted(f"{self.received} received {where}; the run is recorded as 'timeout' and "
                                 "resumes from checkpoints/last.ckpt when the same command is run again")

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
