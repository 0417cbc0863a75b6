"""Loggers: CSV curves always, W&B offline without network (config, group, summary)."""


from conftest import read_offline_log

from octo.train import run
from octo.training.loggers import wandb_reachable

FAST = ["dataset=synthetic", "model.hidden=[16]", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
        "trainer.max_epochs=1"]


def test_csv_logger_writes_curves(compose_cfg, tmp_path):
    run(compose_cfg([*FAST, "logger=csv"]))
    header = (tmp_path / "run" / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "train/loss/layer0" in header and "val/acc" in header


def test_wandb_goes_offline_without_network(compose_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    assert not wandb_reachable()
    cfg = compose_cfg([*FAST, "logger=wandb", "sweep_name=tiny_wandb", "tags=[ff,synthetic]"])
    metrics = run(cfg)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # offline runs keep config, history and summary in the run's transaction log (synced later by `wandb sync`)
    log = read_offline_log(runs[0], b"test/acc")
    assert b"tiny_wandb" in log  # sweep name: the W&B group and a config value
    assert b"algorithm" in log and b"_target_" in log  # the resolved run config
    assert metrics["status"] == "ok" and b"test/acc" in log  # final metrics reach the run (history + summary)
