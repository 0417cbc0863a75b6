"""End to end: runs on generated data, metrics.json, skip/resume, divergence, error exits, a tiny sweep."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from octo.train import run
from octo.utils.errors import DataError, DivergenceError

REPO = Path(__file__).resolve().parents[1]
FAST = ["dataset=synthetic", "model.hidden=[32,32]", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
        "logger=none"]


def test_run_writes_metrics_and_learns(compose_cfg, tmp_path):
    cfg = compose_cfg([*FAST, "trainer.max_epochs=10"])
    metrics = run(cfg)
    out = tmp_path / "run"
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["status"] == "ok" and on_disk == json.loads(json.dumps(metrics, default=str))
    for key in ("test/acc", "val/acc_best", "blocks", "epochs", "wall_time_s", "train_images_per_s", "seed",
                "device", "commit", "versions", "algorithm"):
        assert key in metrics, key
    assert set(metrics["blocks"]) == {"layer0", "layer1"}
    assert metrics["epochs"] == 10
    assert metrics["test/acc"] > 0.5  # 4 classes: chance is 0.25
    assert (out / "checkpoints" / "best.ckpt").exists() and (out / "checkpoints" / "last.ckpt").exists()


def test_finished_job_is_skipped_not_overwritten(compose_cfg, tmp_path, monkeypatch):
    cfg = compose_cfg([*FAST, "trainer.max_epochs=1"])
    first = run(cfg)
    mtime = (tmp_path / "run" / "metrics.json").stat().st_mtime_ns
    monkeypatch.setattr("octo.train.build", lambda cfg: pytest.fail("a finished job must not be rebuilt"))
    assert run(cfg) == json.loads(json.dumps(first, default=str))
    assert (tmp_path / "run" / "metrics.json").stat().st_mtime_ns == mtime


def test_interrupted_job_resumes_from_last_checkpoint(compose_cfg, tmp_path):
    run(compose_cfg([*FAST, "trainer.max_epochs=1"]))
    (tmp_path / "run" / "metrics.json").unlink()  # as if the job died after its checkpoint
    metrics = run(compose_cfg([*FAST, "trainer.max_epochs=2"]))
    assert metrics["resumed_from"].endswith("last.ckpt")
    assert metrics["epochs"] == 2


class _Killed(BaseException):
    """Stands for the job being killed (SIGKILL: no handler sees it, so not an Exception, which octo would record
    as the job's failure)."""


def test_job_killed_mid_training_resumes_where_it_stopped(compose_cfg, tmp_path, monkeypatch):
    from octo.training.module import LocalLearningModule

    overrides = [*FAST, "trainer.max_epochs=4", "scheduler=cosine"]
    run(compose_cfg(overrides, out=tmp_path / "whole"))

    start = LocalLearningModule.on_train_epoch_start

    def killed_at_epoch_2(self):
        if self.current_epoch == 2:
            raise _Killed
        start(self)

    monkeypatch.setattr(LocalLearningModule, "on_train_epoch_start", killed_at_epoch_2)
    with pytest.raises(_Killed):
        run(compose_cfg(overrides))
    assert not (tmp_path / "run" / "metrics.json").exists()
    monkeypatch.undo()

    metrics = run(compose_cfg(overrides))
    assert metrics["resumed_from"].endswith("last.ckpt")
    # the whole history survives the kill: every epoch's seconds and row, each epoch once in the CSV curve
    assert metrics["epochs"] == 4 and len(metrics["train_epoch_seconds"]) == 4
    assert [r["epoch"] for r in metrics["history"]] == [1, 2, 3, 4]
    assert metrics["wall_time_s"] > sum(metrics["train_epoch_seconds"])
    # the saved state already held each epoch's scheduler step: the resumed run ends where the whole run ends
    import torch
    whole, resumed = (torch.load(d / "checkpoints" / "last.ckpt", weights_only=False)
                      for d in (tmp_path / "whole", tmp_path / "run"))
    assert resumed["lr_schedulers"] == whole["lr_schedulers"]
    assert resumed["lr_schedulers"][0]["last_epoch"] == 4
    assert not list((tmp_path / "run" / "checkpoints").glob("*.tmp"))


def test_diverging_run_is_recorded_as_failed(compose_cfg, tmp_path):
    cfg = compose_cfg([*FAST, "trainer.max_epochs=2", "optimizer.lr=1e30", "finite_check_every=1"])
    with pytest.raises(DivergenceError, match="non-finite"):
        run(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "non-finite" in metrics["failure"]


def test_missing_data_fails_with_one_clear_line(compose_cfg, tmp_path):
    cfg = compose_cfg(["dataset=mnist", "logger=none"])
    cfg.dataset.root = str(tmp_path / "nowhere")
    with pytest.raises(DataError, match="nowhere"):
        run(cfg)


def _octo(*args, cwd=REPO, env_extra=None, timeout=300):
    env = {**os.environ, "OCTO_ROOT": str(REPO), "WANDB_MODE": "disabled", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "octo.train", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_error_exit_codes(tmp_path):
    bad_data = _octo("logger=none", f"paths.data_dir={tmp_path}/empty", f"paths.runs_dir={tmp_path}/runs")
    assert bad_data.returncode == 3
    last = bad_data.stderr.strip().splitlines()[-1]
    assert last.startswith("octo: error:") and "empty" in last
    bad_value = _octo("dataset=synthetic", "algorithm.goodness=median", f"paths.runs_dir={tmp_path}/runs")
    assert bad_value.returncode == 2 and "mean, sum" in bad_value.stderr
    bad_choice = _octo("dataset=imagenet", f"paths.runs_dir={tmp_path}/runs")
    assert bad_choice.returncode != 0 and "mnist" in bad_choice.stderr


def test_tiny_multirun_is_aggregated_and_resumable(tmp_path):
    from octo.analysis.tables import write_sweep_outputs

    args = ["-m", *FAST, "trainer.max_epochs=1", "algorithm=ff,bp", "seed=0,1", "sweep_name=tiny",
            f"paths.runs_dir={tmp_path}/runs"]
    first = _octo(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    jobs = sorted(p.parent.name for p in (tmp_path / "runs" / "tiny").glob("*/metrics.json"))
    # one folder per job, named by its overrides (so a re-run finds it again)
    assert len(jobs) == 4 and all("trainer.max_epochs=1" in j for j in jobs)
    assert sorted(tuple(k for k in j.split(",") if k.startswith(("algorithm=", "seed="))) for j in jobs) == [
        ("algorithm=bp", "seed=0"), ("algorithm=bp", "seed=1"), ("algorithm=ff", "seed=0"), ("algorithm=ff", "seed=1")]
    assert not any("sweep_name" in j for j in jobs)  # the sweep's own folder already says that
    paths = write_sweep_outputs(tmp_path / "runs" / "tiny", tmp_path / "tables")
    table = Path(paths["table"]).read_text()
    assert table.count("(n=2)") == 2
    # the same sweep again: every job is skipped, nothing is retrained or overwritten
    again = _octo(*args)
    assert again.returncode == 0
    assert again.stdout.count("skipping finished job") == 4


def test_final_evaluation_starts_from_the_tested_state():
    # evaluation forwards may move buffers (OctopusNet's feedback gains): after the test pass they are put back
    # to the values the test started from (the tested checkpoint's, loaded before on_test_start)
    import torch

    from octo.algorithms.ff import FF
    from octo.nn.mlp import MLP
    from octo.training.module import LocalLearningModule
    from octo.training.schedules import Simultaneous

    module = LocalLearningModule(FF(MLP([1, 4, 4], [6]), num_classes=3), Simultaneous(), torch.optim.Adam)
    module.register_buffer("gain", torch.full((3,), 0.5))
    module.on_test_start()
    module.gain.fill_(7.0)                       # what the test pass left
    module.restore_tested_buffers()
    assert torch.equal(module.gain, torch.full((3,), 0.5))
    module.gain.fill_(2.0)
    module.on_test_start()
    module.gain.fill_(7.0)
    module.restore_tested_buffers()
    assert torch.equal(module.gain, torch.full((3,), 2.0))


def test_test_curve_is_recorded_apart_from_selection(compose_cfg, tmp_path):
    """track_test: test accuracy after every validation pass, kept across a resume, never the selected number."""
    overrides = [*FAST, "trainer.max_epochs=2", "track_test=true"]
    run(compose_cfg(overrides))
    (tmp_path / "run" / "metrics.json").unlink()  # as if the job died after its last checkpoint
    metrics = run(compose_cfg([*FAST, "trainer.max_epochs=3", "track_test=true"]))
    curve = metrics["test_curve"]
    assert [r["epoch"] for r in curve["rows"]] == [1, 2, 3]  # epochs 1-2 came back from the checkpoint
    assert curve["final"] == curve["rows"][-1] and "never used for selection" in curve["note"]
    assert all(0.0 <= r["acc"] <= 1.0 for r in curve["rows"])
    off = run(compose_cfg([*FAST, "trainer.max_epochs=1"], out=tmp_path / "off"))
    assert "test_curve" not in off


def test_faithful_evaluation_trains_on_everything_and_selects_nothing(compose_cfg, tmp_path):
    """faithful_eval: no validation split (all training images), the test curve every epoch, the final weights
    tested, and metrics.json says that nothing was selected; the precision is recorded."""
    metrics = run(compose_cfg([*FAST, "trainer.max_epochs=2", "faithful_eval=true"]))
    assert metrics["selection"].startswith("none: faithful evaluation")
    assert metrics["val/acc_best"] is None and metrics["selected_checkpoint"].startswith("last weights")
    assert [r["epoch"] for r in metrics["test_curve"]["rows"]] == [1, 2]
    assert metrics["test_curve"]["final"]["acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert metrics["precision"] == {"trainer": "32-true", "matmul": "highest"}
    normal = run(compose_cfg([*FAST, "trainer.max_epochs=1"], out=tmp_path / "normal"))
    assert normal["selection"] == "validation acc (max)"


def test_sweepers_are_handed_the_validation_metric_never_test(compose_cfg, monkeypatch):
    import octo.train as train

    monkeypatch.setattr(train, "run", lambda cfg: {"test/acc": 0.99, "val/acc_best": 0.5, "status": "ok"})
    task = train._hydra_main
    while hasattr(task, "__wrapped__"):
        task = task.__wrapped__
    assert task(compose_cfg(FAST)) == 0.5
