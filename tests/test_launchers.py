"""The shipped Hydra launchers run a real 2-job multirun: submitit's local executor (the SLURM code path without
a cluster: pickled jobs, a submitit folder, results collected back) and joblib with two worker processes.

Each job is a fresh Python process importing torch and Lightning, so these take about a minute each on a busy
2-core machine (hence ``slow``; CI still runs them)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["dataset=synthetic", "trainer=debug", "model.hidden=[8]", "logger=none", "seed=0,1"]


def _multirun(tmp_path: Path, name: str, *launcher: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OCTO_ROOT": str(REPO), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "octo.train", "-m", *TINY, f"sweep_name={name}",
                           f"paths.runs_dir={tmp_path}/runs", *launcher], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def _finished(tmp_path: Path, name: str) -> list[str]:
    return sorted(p.parent.name for p in (tmp_path / "runs" / name).glob("*/metrics.json"))


@pytest.mark.slow
def test_submitit_local_runs_both_jobs(tmp_path):
    res = _multirun(tmp_path, "sl", "launcher=submitit_local")
    assert res.returncode == 0, res.stderr[-3000:]
    assert _finished(tmp_path, "sl") == ["dataset=synthetic,model.hidden=[8],seed=0",
                                         "dataset=synthetic,model.hidden=[8],seed=1"]
    # submitit kept each job's logs in the sweep folder (where a cluster user looks for them)
    assert list((tmp_path / "runs" / "sl" / ".submitit").glob("*/*_log.out"))


@pytest.mark.slow
def test_joblib_runs_two_jobs_in_parallel(tmp_path):
    res = _multirun(tmp_path, "jl", "launcher=joblib", "hydra.launcher.n_jobs=2")
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(_finished(tmp_path, "jl")) == 2
    assert "Joblib.Parallel(n_jobs=2" in res.stdout + res.stderr


@pytest.mark.parametrize("launcher, target", [("slurm", "SlurmLauncher"), ("submitit_local", "LocalLauncher"),
                                              ("joblib", "JoblibLauncher")])
def test_launcher_configs_compose(launcher, target):
    """Every launcher file composes over a study sweep (SLURM cannot run here; its config must still be valid)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["sweeps=octopus_a21b_resilience", f"launcher={launcher}"],
                      return_hydra_config=True)
    GlobalHydra.instance().clear()
    assert cfg.hydra.launcher._target_.endswith(target)
    if launcher != "joblib":
        assert cfg.hydra.launcher.submitit_folder.endswith("/.submitit/%j")
    if launcher == "slurm":
        assert cfg.hydra.launcher.max_num_timeout > 0 and cfg.trainer.accelerator == "gpu"
