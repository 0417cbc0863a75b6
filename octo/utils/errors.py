"""Errors that end a run with one clear line (cause and fix) and a non-zero exit code, and the shared validators
that raise them (choice, int in range, list of ints, number in range, positive, finite)."""

from __future__ import annotations

import math


class OctoError(Exception):
    """Base class: ``str(err)`` is the one line shown to the user."""

    exit_code = 2


class ConfigError(OctoError):
    """A configuration value is invalid (raised before any training)."""


class DataError(OctoError):
    """A data file is missing or corrupt."""

    exit_code = 3


class DivergenceError(OctoError):
    """Training went wrong numerically; ``status`` is what metrics.json records.

    ``"failed"``: a NaN or infinite loss. ``"diverged"``: the losses exploded while staying finite, or the run
    ended no better than chance after its loss grew (``LocalLearningModule``, config ``divergence``).
    """

    exit_code = 4

    def __init__(self, message: str, status: str = "failed") -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self):  # keep the status through pickling (launchers send errors between processes)
        return type(self), (str(self), self.status)


class RunInterrupted(OctoError):
    """SIGTERM or SIGINT arrived (a time limit, Ctrl-C): the run stopped at a batch boundary, recorded what it had
    as status ``timeout`` and can be resumed with the same command."""

    exit_code = 5


class RunDirError(OctoError):
    """The run folder cannot be written (disk full, read-only, no permission): names the path and the cause."""

    exit_code = 6


def check_choice(name: str, value, choices) -> None:
    """Raise :class:`ConfigError` naming the valid choices if ``value`` is not one of them."""
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not valid; choose one of {', '.join(map(str, choices))}")


def check_positive(name: str, value, allow_zero: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a number > 0 (or >= 0)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(f"{name}={value!r} must be a number {'>=' if allow_zero else '>'} 0")


def is_number(value) -> bool:
    """A real number from a config: int or float, not bool (YAML ``true`` is an int to Python)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_finite(name: str, value) -> None:
    """Raise :class:`ConfigError` if ``value`` is a NaN or infinite float (YAML ``.nan`` / ``.inf``)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} is not a finite number")


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None, *,
              allow_none: bool = False, hint: str = "") -> None:
    """Raise :class:`ConfigError` unless ``value`` is an int in ``[minimum, maximum]`` (or None if allowed).

    ``hint`` is appended to the message, e.g. what a tool would make of the refused value.
    """
    if value is None and allow_none:
        return
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        bounds = (f"in [{minimum}, {maximum}]" if minimum is not None and maximum is not None
                  else f">= {minimum}" if minimum is not None else f"<= {maximum}" if maximum is not None else "")
        raise ConfigError(f"{name}={value!r} must be {'null or ' if allow_none else ''}an int {bounds}".rstrip()
                          + (f" ({hint})" if hint else ""))


def check_int_list(name: str, values, minimum: int = 1, length: int | None = None, hint: str = "") -> list[int]:
    """Raise :class:`ConfigError` unless ``values`` is a non-empty list (of ``length`` items, when given) of ints
    >= ``minimum``; returns it as a list."""
    ok = isinstance(values, (list, tuple)) and len(values) > 0 and (length is None or len(values) == length)
    if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in values):
        shown = list(values) if isinstance(values, (list, tuple)) else values
        size = f"{length} " if length is not None else "a non-empty list of "
        raise ConfigError(f"{name}={shown!r} must be {size}ints >= {minimum}" + (f" ({hint})" if hint else ""))
    return list(values)


def check_range(name: str, value, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False, allow_none: bool = False, hint: str = "") -> None:
    """Raise :class:`ConfigError` unless ``value`` is a finite number in the interval from ``low`` to ``high``
    (closed ends unless ``low_open`` / ``high_open``; None = unbounded), or None if allowed."""
    if value is None and allow_none:
        return
    ok = is_number(value) and math.isfinite(value)
    ok = ok and (low is None or (value > low if low_open else value >= low))
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        if low is not None and high is not None:
            bounds = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            bounds = f"{'>' if low_open else '>='} {low:g}"
        elif high is not None:
            bounds = f"{'<' if high_open else '<='} {high:g}"
        else:
            bounds = "finite"
        raise ConfigError(f"{name}={value!r} must be {'null or ' if allow_none else ''}a number {bounds}"
                          + (f" ({hint})" if hint else ""))
