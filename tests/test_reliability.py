"""Job folders under stress: a skipped job keeps the record of what it trained, a failed job is recorded and its
sweep goes on, two launches never train the same job, and full or read-only disks end with one line and never
truncate a checkpoint."""

import builtins
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from octo.train import run

REPO = Path(__file__).resolve().parents[1]
FAST = ["dataset=synthetic", "model.hidden=[32,32]", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
        "logger=none", "num_threads=1"]
DEBUG = ["dataset=synthetic", "trainer=debug", "model.hidden=[8]", "logger=none", "num_threads=1"]


def _env():
    return {**os.environ, "OCTO_ROOT": str(REPO), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1"}


def _octo(*args, prelude: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m octo.train *args`` with stdout and stderr in one stream (so their order shows); ``prelude``, a
    folder holding a ``sitecustomize.py``, is run first in the same process (to simulate a failing disk)."""
    env = {**_env(), "PYTHONPATH": str(prelude)} if prelude else _env()
    return subprocess.run([sys.executable, "-m", "octo.train", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)


def _record(job: Path) -> dict[str, bytes]:
    return {name: (job / name).read_bytes() for name in (".hydra/config.yaml", ".hydra/overrides.yaml", "metrics.json")}


def _wait_for_job(sweep: Path, proc: subprocess.Popen, timeout: float = 120.0) -> Path:
    """The folder of the first job of ``sweep`` that has written ``checkpoints/last.ckpt``."""
    deadline = time.monotonic() + timeout
    while not (found := list(sweep.glob("*/checkpoints/last.ckpt"))):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline, f"no job of {sweep} wrote last.ckpt"
        time.sleep(0.2)
    return found[0].parent.parent


# 1. a skipped job never rewrites what it was -------------------------------------------------------------------

def test_finished_job_keeps_its_record_and_refuses_another_config(tmp_path):
    """trainer is not part of a job folder's name, so `trainer=cpu` finds the finished `trainer=debug` job: it must
    say so and leave the job's record alone, not relabel a 1-epoch debug run as a 5-epoch one."""
    args = ["-m", *DEBUG, "sweep_name=trap", "seed=0", f"paths.runs_dir={tmp_path}/runs"]
    first = _octo(*args)
    assert first.returncode == 0, first.stdout[-3000:]
    (job,) = (tmp_path / "runs" / "trap").glob("*/metrics.json")
    job = job.parent
    before = _record(job)

    again = _octo(*[a if a != "trainer=debug" else "trainer=cpu" for a in args])
    assert _record(job) == before  # .hydra/config.yaml, overrides.yaml and metrics.json untouched
    assert again.returncode != 0, again.stdout[-3000:]
    (line,) = [ln for ln in again.stdout.splitlines() if "trainer.max_epochs" in ln]
    assert str(job) in line or job.name in line
    assert again.stdout.strip().splitlines()[-1] == f"octo: 0 ok, 1 failed: {job.name}"


def test_only_settings_that_do_not_change_training_may_differ(compose_cfg, tmp_path, monkeypatch):
    from octo.utils.errors import ConfigError

    first = run(compose_cfg([*FAST, "trainer.max_epochs=1"]))
    recorded = (tmp_path / "run" / ".hydra" / "config.yaml").read_text()
    assert "max_epochs: 1" in recorded
    monkeypatch.setattr("octo.train.build", lambda cfg: pytest.fail("a finished job must not be rebuilt"))
    # threads, progress bar, checkpoint cadence, retry flags: the same job, skipped
    same = compose_cfg([*FAST, "trainer.max_epochs=1", "num_threads=2", "trainer.enable_progress_bar=true",
                        "checkpoint_every_n_epochs=3", "retry_failed=true"])
    assert run(same) == json.loads(json.dumps(first, default=str))
    with pytest.raises(ConfigError, match=r"trainer\.max_epochs=1 \(now 2\)"):
        run(compose_cfg([*FAST, "trainer.max_epochs=2"]))
    with pytest.raises(ConfigError, match=r"model\.hidden"):
        run(compose_cfg([*FAST, "trainer.max_epochs=1", "model.hidden=[16,16]"]))
    assert (tmp_path / "run" / ".hydra" / "config.yaml").read_text() == recorded


# 2. failures inside a sweep: recorded, printed at once, the sweep goes on, non-zero at the end ---------------------

def test_config_error_in_one_job_does_not_abort_the_sweep(tmp_path):
    res = _octo("-m", *DEBUG, "algorithm.goodness=median,mean", "sweep_name=fail", f"paths.runs_dir={tmp_path}/runs")
    out = res.stdout
    assert res.returncode == 1, out[-3000:]
    sweep = tmp_path / "runs" / "fail"
    (bad,) = sweep.glob("*goodness=median*")
    (good,) = sweep.glob("*goodness=mean*")
    assert json.loads((good / "metrics.json").read_text())["status"] == "ok"
    failed = json.loads((bad / "metrics.json").read_text())
    assert failed["status"] == "failed" and "mean, sum" in failed["failure"]
    lines = out.splitlines()
    cause = next(i for i, ln in enumerate(lines) if failed["failure"] in ln)
    assert cause < next(i for i, ln in enumerate(lines) if ln.startswith("octo: test/acc"))  # printed at once
    assert "Traceback" not in out
    assert lines[-1] == f"octo: 1 ok, 1 failed: {bad.name}"


def test_job_that_dies_before_it_starts_is_not_a_run(tmp_path):
    """An error before the job's folder is set up (here a setting read before training that cannot be resolved)
    is counted as failed, and leaves nothing a table would count as a run."""
    from octo.analysis.collect import find_job_dirs

    res = _octo("-m", *DEBUG, "matmul_precision=${oc.env:OCTO_TEST_UNSET},highest", "sweep_name=early",
                f"paths.runs_dir={tmp_path}/runs")
    assert res.returncode == 1, res.stdout[-3000:]
    assert "OCTO_TEST_UNSET" in next(ln for ln in res.stdout.splitlines() if ln.startswith("octo: job failed:"))
    sweep = tmp_path / "runs" / "early"
    (bad,) = sweep.glob("*OCTO_TEST_UNSET*")
    assert res.stdout.strip().splitlines()[-1] == f"octo: 1 ok, 1 failed: {bad.name}"
    assert [d.name for d in find_job_dirs(sweep)] == [d.name for d in sweep.glob("*matmul_precision=highest*")]


_FULL_DISK_FOR_SEED_0 = """
import errno, os
_replace = os.replace
def _full(src, dst, *args, **kwargs):
    if "seed=0" in str(dst) and str(dst).endswith(".ckpt"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
    return _replace(src, dst, *args, **kwargs)
os.replace = _full
"""


def test_disk_full_in_one_job_is_reported_at_once_and_the_sweep_goes_on(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(_FULL_DISK_FOR_SEED_0)
    res = _octo("-m", *DEBUG, "seed=0,1", "sweep_name=full", f"paths.runs_dir={tmp_path}/runs",
                prelude=tmp_path / "site")
    out = res.stdout
    assert res.returncode == 1, out[-3000:]
    sweep = tmp_path / "runs" / "full"
    (bad,) = sweep.glob("*seed=0*")
    (good,) = sweep.glob("*seed=1*")
    lines = out.splitlines()
    cause = next(i for i, ln in enumerate(lines) if "No space left on device" in ln)
    assert str(bad / "checkpoints") in lines[cause]  # the path that could not be written
    assert cause < next(i for i, ln in enumerate(lines) if ln.startswith("octo: test/acc"))
    assert "Traceback" not in out
    failed = json.loads((bad / "metrics.json").read_text())
    assert failed["status"] == "failed" and "No space left on device" in failed["failure"]
    assert json.loads((good / "metrics.json").read_text())["status"] == "ok"
    assert lines[-1] == f"octo: 1 ok, 1 failed: {bad.name}"


def test_timeout_stops_the_whole_sweep(tmp_path):
    sweep = tmp_path / "runs" / "stop"
    proc = subprocess.Popen([sys.executable, "-m", "octo.train", "-m", *FAST, "trainer.max_epochs=100000",
                             "seed=0,1", "sweep_name=stop", f"paths.runs_dir={tmp_path}/runs"], cwd=REPO,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "seed=0" in _wait_for_job(sweep, proc).name
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 5, out[-3000:]
    assert not list(sweep.glob("*seed=1*"))  # the next job never started
    (job,) = sweep.glob("*seed=0*")
    assert json.loads((job / "metrics.json").read_text())["status"] == "timeout"


# 3. two launches of the same sweep ----------------------------------------------------------------------------

def test_concurrent_launch_skips_the_job_another_process_runs(tmp_path):
    args = ["-m", *FAST, "trainer.max_epochs=100000", "sweep_name=conc", "seed=0", f"paths.runs_dir={tmp_path}/runs"]
    first = subprocess.Popen([sys.executable, "-m", "octo.train", *args], cwd=REPO, env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        job = _wait_for_job(tmp_path / "runs" / "conc", first)
        config = (job / ".hydra" / "config.yaml").read_bytes()
        second = _octo(*args, timeout=120)  # would train "forever" if it did not see the first one
        assert second.returncode == 0, second.stdout[-3000:]
        assert f"octo: skipping {job}: running in another process (pid {first.pid})" in second.stdout
        assert (job / ".hydra" / "config.yaml").read_bytes() == config
        assert first.poll() is None  # the first launch trains on
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=60)
        assert first.returncode == 5, out[-3000:]
    finally:
        first.kill()
    assert json.loads((job / "metrics.json").read_text())["status"] == "timeout"


def test_job_lock_is_released_when_its_holder_dies(tmp_path):
    from octo.utils.locks import JobLock

    script = (f"import time\nfrom octo.utils.locks import JobLock\nassert JobLock({str(tmp_path)!r}).acquire()\n"
              "print('held', flush=True)\ntime.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = JobLock(tmp_path)
        assert not lock.acquire() and lock.holder == holder.pid
    finally:
        holder.kill()
        holder.wait()
    assert lock.acquire()  # the kernel dropped the dead process's lock
    lock.release()


# 4. full and read-only disks ----------------------------------------------------------------------------------

class _FullFile:
    """A file on a full disk: opening it truncated it, writing fails."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def test_full_disk_keeps_the_previous_best_checkpoint(compose_cfg, tmp_path, monkeypatch):
    """The run folder's disk fills up after the first best.ckpt. The temporary folder is another disk (as /tmp
    often is), so a checkpoint written there must be copied over; best.ckpt must stay whole either way."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from octo.utils.errors import OctoError

    ckpts = tmp_path / "run" / "checkpoints"
    best = ckpts / "best.ckpt"
    real_open, real_rename = builtins.open, os.rename

    def full_open(file, mode="r", *args, **kwargs):
        path = Path(os.fsdecode(file)) if isinstance(file, (str, bytes, os.PathLike)) else None
        full = path is not None and "w" in mode and path.parent == ckpts and path.name.startswith("best") \
            and best.exists()
        f = real_open(file, mode, *args, **kwargs)
        return _FullFile(f) if full else f

    def rename(src, dst, *args, **kwargs):
        if Path(src).parent != Path(dst).parent and Path(dst).parent == ckpts:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(src), str(dst))
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_open)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(shutil, "_USE_CP_SENDFILE", False)  # copies go through file writes
    monkeypatch.setattr(ModelCheckpoint, "check_monitor_top_k", lambda self, trainer, current=None: True)
    saved = {}
    real_save = ModelCheckpoint._save_checkpoint

    def remember_first(self, trainer, filepath):
        if best.exists() and not saved:
            saved["bytes"] = best.read_bytes()
        real_save(self, trainer, filepath)

    monkeypatch.setattr(ModelCheckpoint, "_save_checkpoint", remember_first)

    with pytest.raises(Exception) as raised:
        run(compose_cfg([*FAST, "trainer.max_epochs=2"]))
    assert saved, f"the second best.ckpt was never written: {raised.value!r}"
    assert best.read_bytes() == saved["bytes"]
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.ckpt", "last.ckpt"]  # no temporary file left
    err = raised.value
    assert isinstance(err, OctoError) and err.exit_code == 6
    assert str(ckpts) in str(err) and "No space left on device" in str(err)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "No space left on device" in metrics["failure"]


def test_unwritable_runs_dir_ends_with_one_line(tmp_path):
    """A file where the runs folder should be (deterministic also for root, whom chmod does not stop)."""
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    for mode in ([], ["-m"]):
        res = _octo(*mode, *DEBUG, f"paths.runs_dir={blocker}")
        lines = res.stdout.strip().splitlines()
        assert res.returncode == 6, res.stdout[-3000:]
        assert "Traceback" not in res.stdout
        assert lines[-1].startswith("octo: error:") and str(blocker) in lines[-1] and "Not a directory" in lines[-1]
