"""One process per job folder: two launches of the same sweep must not train (and write) the same job at once."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class JobLock:
    """An exclusive, non-blocking ``flock`` on ``<folder>/.lock``.

    ``flock`` belongs to the open file, so the kernel drops it when the holder exits or is killed: a stale lock
    cannot outlive its process, and there is nothing to clean up. The file itself stays (deleting it would let a
    third process lock a new file while a second one still holds the old one); it holds the holder's pid, for
    the message of the process that finds the job taken.
    """

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / ".lock"
        self.holder: int | None = None  # pid of the process that held the lock when acquire() failed
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock, or return False (and set :attr:`holder`) when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                self.holder = int(os.read(fd, 32).decode().strip() or 0) or None
            except ValueError:  # the holder is still writing its pid
                self.holder = None
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the lock
            self._fd = None
