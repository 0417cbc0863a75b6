"""Errors that end a run with one clear line (cause and fix) and a non-zero exit code."""


class OctoError(Exception):
    """Base class: ``str(err)`` is the one line shown to the user."""

    exit_code = 2


class ConfigError(OctoError):
    """A configuration value is invalid (raised before any training)."""


class DataError(OctoError):
    """A data file is missing or corrupt."""

    exit_code = 3


class DivergenceError(OctoError):
    """Training produced a NaN or infinite loss."""

    exit_code = 4


class RunInterrupted(OctoError):
    """SIGTERM or SIGINT arrived (a time limit, Ctrl-C): the run stopped at a batch boundary, recorded what it had
    as status ``timeout`` and can be resumed with the same command."""

    exit_code = 5


def check_choice(name: str, value, choices) -> None:
    """Raise :class:`ConfigError` naming the valid choices if ``value`` is not one of them."""
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not valid; choose one of {', '.join(map(str, choices))}")


def check_positive(name: str, value, allow_zero: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a number > 0 (or >= 0)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(f"{name}={value!r} must be a number {'>=' if allow_zero else '>'} 0")
