"""Child processes that never outlive their parent: own time limits, forwarded signals, nothing orphaned.

The benchmark and the GPU queue start ``octo.train`` jobs as children. A time limit (``timeout`` sends SIGTERM) or
Ctrl-C must reach every child exactly once, each child must get the chance to record its numbers (octo.train
writes status ``timeout`` on SIGTERM), and a child that does not stop after a grace period is killed with its
whole process group. Each child runs in its own session so that a signal to the parent's group is not delivered
twice, and :class:`Children` forwards it instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Child:
    """One started command: its process, its time limit and why it ended."""

    name: str
    proc: subprocess.Popen
    started: float
    limit_s: float | None = None
    #: "limit" when its own time limit stopped it, the signal name when a forwarded signal did
    stopped_by: str | None = None
    _term_sent: float | None = field(default=None, repr=False)

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the child's session: its own children (e.g. joblib workers) too
    except (ProcessLookupError, PermissionError):
        pass


class Children:
    """Context manager that starts, limits and reaps child processes.

    While active, SIGTERM / SIGINT to this process are forwarded (once) to every running child and recorded in
    :attr:`received`; callers check it and stop starting new work. On exit every child still running gets
    SIGTERM, then SIGKILL after ``grace_s``: no process outlives the context.
    """

    def __init__(self, grace_s: float = 30.0) -> None:
        self.grace_s = grace_s
        self.running: list[Child] = []
        self.received: str | None = None
        self._previous: dict = {}

    # --- signals -----------------------------------------------------------------------------------------------
    def _forward(self, signum, frame) -> None:
        first = self.received is None
        self.received = signal.Signals(signum).name
        for child in self.running:
            if child.proc.poll() is None and (first or child._term_sent is None):
                child.stopped_by = child.stopped_by or self.received
                child._term_sent = child._term_sent or time.perf_counter()
                _signal_group(child.proc, signal.SIGTERM)

    def __enter__(self) -> Children:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._forward)
        return self

    def __exit__(self, *exc) -> None:
        try:
            for child in self.running:
                if child.proc.poll() is None:
                    child._term_sent = child._term_sent or time.perf_counter()
                    _signal_group(child.proc, signal.SIGTERM)
            self.wait_all()
        finally:
            for child in self.running:  # the group too: a grandchild must not outlive its parent job
                _signal_group(child.proc, signal.SIGKILL)
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            self._previous = {}

    # --- processes ---------------------------------------------------------------------------------------------
    def start(self, name: str, cmd: Sequence[str], limit_s: float | None = None, **popen_kwargs) -> Child:
        proc = subprocess.Popen(list(cmd), start_new_session=True, **popen_kwargs)
        child = Child(name, proc, time.perf_counter(), limit_s)
        self.running.append(child)
        return child

    def _enforce(self, child: Child) -> None:
        if child.proc.poll() is not None:
            return
        now = time.perf_counter()
        if child._term_sent is None and child.limit_s is not None and child.seconds > child.limit_s:
            child.stopped_by, child._term_sent = "limit", now
            _signal_group(child.proc, signal.SIGTERM)  # octo.train records 'timeout' and exits
        elif child._term_sent is not None and now - child._term_sent > self.grace_s:
            _signal_group(child.proc, signal.SIGKILL)

    def wait(self, child: Child, poll_s: float = 0.2) -> int:
        """Wait for ``child``, enforcing its limit (and every other running child's); returns its exit code."""
        while child.proc.poll() is None:
            for other in self.running:
                self._enforce(other)
            time.sleep(poll_s)
        return child.proc.returncode

    def wait_any(self, children: Sequence[Child], poll_s: float = 0.2) -> Child:
        """Wait until one of ``children`` has ended; returns it."""
        while True:
            for child in children:
                if child.proc.poll() is not None:
                    return child
            for other in self.running:
                self._enforce(other)
            time.sleep(poll_s)

    def wait_all(self) -> None:
        for child in self.running:
            self.wait(child)
