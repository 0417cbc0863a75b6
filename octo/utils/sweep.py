"""How a sweep ends: every job's outcome is collected, failed jobs are listed in one summary line, and the
process exits non-zero when any job failed. Also the up-front check that the run folder can be written.

A job records its outcome with :func:`record_outcome`; :class:`SweepCallbacks` (a Hydra callback, see
``conf/hydra/default.yaml``) prints ``octo: N ok, M failed: <job folders>`` when the sweep ends. Hydra's basic
launcher runs the jobs in the launching process, where outcomes are kept in memory. Other launchers (joblib,
submitit, SLURM) run them in other processes, which append one JSON line each to a file in the sweep folder
named by ``OCTO_SWEEP_LOG`` (set before the launcher starts; the sweep folder is the one place every launcher's
jobs can reach).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from octo.utils.errors import RunDirError, RunInterrupted

_LOG_ENV = "OCTO_SWEEP_LOG"  # "<pid of the launching process>:<path of the outcome file>"
_outcomes: list[dict] = []  # jobs run in this process (Hydra's basic launcher)

OK, FAILED, BUSY = "ok", "failed", "busy"


def is_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # outside @hydra.main (tests compose configs themselves)
        return False


def record_outcome(folder: str | Path, status: str) -> None:
    """Note how a sweep job ended (``ok``, ``failed``, ``timeout``, or ``busy``: another process runs it)."""
    if not is_multirun():
        return
    entry = {"folder": str(folder), "status": status}
    pid, _, path = os.environ.get(_LOG_ENV, "").partition(":")
    if not path or pid == str(os.getpid()):
        _outcomes.append(entry)
        return
    # one short O_APPEND write per job: lines from parallel jobs never interleave
    with open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")


def sweep_job(task):
    """Wrap the Hydra task function: in a sweep, a job that fails before it could record its own failure (an
    error while setting up, before the job folder is touched) is counted as failed and the sweep goes on. Its
    folder gets no record, so no table counts it as a run. A timeout (exit code 5) still stops the whole sweep."""

    @functools.wraps(task)
    def job(cfg: DictConfig):
        if not is_multirun():
            return task(cfg)
        try:
            return task(cfg)
        except SystemExit as exit_:  # the task printed its one line before exiting
            if exit_.code in (0, None) or exit_.code == RunInterrupted.exit_code:
                raise
        except Exception as err:  # noqa: BLE001 - a bug in one job must not cost the other jobs
            if not isinstance(err, OmegaConfBaseException):  # a config that cannot be resolved needs no traceback
                traceback.print_exc()
            print(f"octo: job failed: {Path(HydraConfig.get().runtime.output_dir).name}: {type(err).__name__}: "
                  f"{err}", file=sys.stderr)
        record_outcome(HydraConfig.get().runtime.output_dir, FAILED)
        return None

    return job


def _check_writable(folder: str) -> None:
    """Create ``folder`` and write a file into it; raise :class:`RunDirError` naming the path and the cause."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        probe = Path(folder) / f".octo-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise RunDirError(f"cannot write the run folder {folder}: {err.strerror or err} "
                          f"({err.filename or folder})") from None


class SweepCallbacks(Callback):
    """Check the run folder before Hydra writes into it (so a read-only or missing disk ends with one line rather
    than Hydra's traceback), and end a sweep with its summary line and exit status."""

    def _check(self, folder: str) -> None:
        try:
            _check_writable(folder)
        except RunDirError as err:
            # SystemExit passes Hydra's callback wrapper, which turns exceptions into warnings
            print(f"octo: error: {err}", file=sys.stderr)
            sys.exit(err.exit_code)

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config.hydra.sweep.dir)
        _outcomes.clear()
        log = Path(config.hydra.sweep.dir).resolve() / f".octo-sweep-{os.getpid()}.jsonl"
        os.environ[_LOG_ENV] = f"{os.getpid()}:{log}"

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        _, _, path = os.environ.pop(_LOG_ENV, "").partition(":")
        outcomes = list(_outcomes)
        if path and Path(path).exists():
            outcomes += [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
            Path(path).unlink()
        sweep = Path(config.hydra.sweep.dir).resolve()
        names = [_relative(o["folder"], sweep) for o in outcomes if o["status"] not in (OK, BUSY)]
        ok = sum(o["status"] == OK for o in outcomes)
        busy = sum(o["status"] == BUSY for o in outcomes)
        line = f"octo: {ok} ok, {len(names)} failed" + (f": {', '.join(names)}" if names else "")
        if busy:
            line += f" ({busy} running in another process)"
        print(line, file=sys.stderr if names else sys.stdout)
        if names:
            sys.exit(1)


def _relative(folder: str, sweep: Path) -> str:
    try:
        return Path(folder).resolve().relative_to(sweep).as_posix()
    except ValueError:
        return folder
