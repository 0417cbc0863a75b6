"""W&B dashboards: an offline run holds the config, curves, summary, the resilience matrix (wandb.Table) and the
specialization heatmap (wandb.Image) of the algorithm's final evaluation."""

import json

import pytest
from conftest import read_offline_log

from octo.algorithms.base import LocalAlgorithm
from octo.train import run
from octo.training.loggers import resilience_report, wandb_evaluation_items

FAST = ["dataset=synthetic", "model.hidden=[16]", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
        "trainer.max_epochs=1"]

REPORT = {"resilience": {
    "failure": "token zeroed before the nerve ring", "n_images": 256, "intact": 0.61,
    "single_failure": {"arm0": 0.55, "arm1": 0.31}, "pair_failure": {"arm0+arm1": 0.25},
    "alone": {"arm0": 0.3, "arm1": 0.5}, "critical_arm": "arm1", "floor_single": 0.31, "floor_double": 0.25,
    "degradation_single": 0.30, "specialization": {"arm0": [0.9, 0.1, 0.5, 0.7], "arm1": [0.2, 0.8, 0.4, 0.6]},
    "attention": {"arm0": 0.7, "arm1": 0.3}}}


def test_evaluation_items_cover_resilience_specialization_attention():
    pytest.importorskip("wandb")
    items, scalars = wandb_evaluation_items(REPORT, "synthetic")
    assert set(items) == {"evaluation/resilience", "evaluation/specialization", "evaluation/specialization_table",
                          "evaluation/attention"}
    table = items["evaluation/resilience"]
    assert table.columns == ["failed", "kind", "accuracy"]
    assert [r[0] for r in table.data] == ["intact", "arm0", "arm1", "arm0+arm1", "arm0", "arm1"]
    assert scalars == {"evaluation/intact": 0.61, "evaluation/floor_single": 0.31, "evaluation/floor_double": 0.25,
                       "evaluation/degradation_single": 0.30, "evaluation/critical": "arm1"}
    # an unwrapped report is found too; an evaluation without one gives nothing
    assert resilience_report(REPORT["resilience"]) is REPORT["resilience"]
    assert wandb_evaluation_items({"other": 1}) == ({}, {})


def test_offline_run_holds_table_and_image(compose_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    # a fake final evaluation on the FF run (any algorithm's evaluation is logged the same way)
    monkeypatch.setattr(LocalAlgorithm, "final_evaluation", lambda self, loader: json.loads(json.dumps(REPORT)))
    metrics = run(compose_cfg([*FAST, "logger=wandb", "sweep_name=wandb_items"]))
    assert metrics["status"] == "ok" and metrics["evaluation"] == REPORT
    (offline,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    log = read_offline_log(offline, b"evaluation/critical")
    for key in (b"evaluation/resilience", b"evaluation/specialization", b"evaluation/specialization_table",
                b"evaluation/attention", b"evaluation/floor_single", b"evaluation/critical"):
        assert key in log, key
    assert b"wandb_items" in log and b"_target_" in log  # group/config
    assert b"train/loss/layer0" in log and b"test/acc" in log  # curves and summary
    media = offline / "files" / "media"
    assert list(media.glob("images/evaluation/specialization_*.png"))
    tables = {p.name.split("_")[0] for p in media.glob("table/evaluation/*.table.json")}
    assert tables == {"resilience", "specialization", "attention"}
    data = json.loads(next(media.glob("table/evaluation/resilience_*.table.json")).read_text())
    assert data["columns"] == ["failed", "kind", "accuracy"] and len(data["data"]) == 6
