"""A time limit never costs a result: SIGTERM / SIGINT leave metrics.json with status 'timeout', a non-zero exit
and no orphan process, and the same command resumes the run; resumed runs keep their whole history."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAST = ["dataset=synthetic", "model.hidden=[32,32]", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
        "num_threads=1"]


def _env():
    return {**os.environ, "OCTO_ROOT": str(REPO), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_records_timeout_and_the_run_resumes(tmp_path, sig):
    job = tmp_path / "job"
    args = [sys.executable, "-m", "octo.train", *FAST, f"hydra.run.dir={job}", f"paths.cache_dir={tmp_path}/c"]
    proc = subprocess.Popen([*args, "trainer.max_epochs=100000"], cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(job / "checkpoints" / "last.ckpt", proc)
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 5, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("octo: error:") and signal.Signals(sig).name in err
    assert not _alive(proc.pid)
    metrics = json.loads((job / "metrics.json").read_text())
    assert metrics["status"] == "timeout" and signal.Signals(sig).name in metrics["failure"]
    done = metrics["epochs"]
    assert done >= 1 and len(metrics["train_epoch_seconds"]) == done
    assert [r["epoch"] for r in metrics["history"]] == list(range(1, done + 1))
    assert all("train/loss/layer0" in r for r in metrics["history"])

    # the same command (here with a reachable epoch budget) resumes instead of skipping the timed-out job
    again = subprocess.run([*args, f"trainer.max_epochs={done + 2}"], cwd=REPO, env=_env(), capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    metrics = json.loads((job / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["resumed_from"].endswith("last.ckpt")
    assert metrics["epochs"] == done + 2 and len(metrics["train_epoch_seconds"]) >= done + 1
    with open(job / "csv" / "metrics.csv", newline="") as f:
        epochs = [int(float(r["epoch"])) for r in csv.DictReader(f) if r.get("val/acc")]
    assert epochs == sorted(set(epochs)) and epochs[0] == 0  # the first epoch's row survived the resume


def test_json_never_holds_nan(tmp_path):
    from octo.utils.files import write_json_atomic

    write_json_atomic(tmp_path / "m.json", {"a": math.nan, "b": [math.inf, 1.0], "c": {"d": -math.inf}})
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [None, 1.0], "c": {"d": None}}
