"""octo.analysis on hand-built sweep folders: collect -> summarize -> table.md / runs.csv / figure.png / CLI.

The golden numbers are computed by hand in the comments, not by the code under test.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from octo.analysis.collect import collect, parse_scalar
from octo.analysis.tables import format_cell, main, merge_runs, render_markdown, summarize, write_sweep_outputs

ROOT = Path(__file__).resolve().parents[1]


def make_job(job: Path, overrides: dict, sweep_name: str, metrics: dict | None) -> None:
    """One Hydra job folder: .hydra/config.yaml, .hydra/overrides.yaml and (unless None) metrics.json."""
    seed = overrides.get("seed", 0)
    config = {
        "seed": seed, "sweep_name": sweep_name, "dataset": {"name": "mnist"},
        "algorithm": {"_target_": "octo.algorithms.ff.ForwardForward", "threshold": 2.0, "norm": True},
        "model": {"width": 64}, "trainer": {"max_epochs": 2},
        "paths": {"output_dir": "${hydra:runtime.output_dir}"},  # unresolvable outside Hydra: must not fail
    }
    for key, value in overrides.items():  # apply the dotted overrides to the nested config
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (job / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump([f"{k}={json.dumps(v)}" for k, v in overrides.items()]))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))


def metrics(acc: float | None, seed: int, failure: str | None = None) -> dict:
    """A metrics.json as the training code writes it (failed when ``failure`` is given)."""
    return {
        "status": "failed" if failure else "ok", "failure": failure, "test/acc": acc,
        "val/acc_best": None if acc is None else acc + 0.01, "epochs": 2, "wall_time_s": 12.5,
        "train_images_per_s": 3000.0, "seed": seed, "device": "CPU (x86_64, 2 cores)", "commit": "abc1234567",
        "versions": {"python": "3.11.7", "torch": "2.4.0"},
        "blocks": {"b0": {"acc": 0.4, "goodness_gap": 1.5}, "b1": {"acc": 0.45, "goodness_gap": 2.0}},
        "algorithm": {"peer_norm": True}, "extra": {"note": "fake"},
    }


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    """Two sweeps below ``tmp_path/runs``: ``ff_threshold`` (1 key) and ``ablation`` (2 keys)."""
    root = tmp_path / "runs"
    # ff_threshold: threshold 1.0 x 3 seeds ok; threshold 2.0 x 3 seeds with seed 2 failed;
    # threshold 3.0 seed 0 interrupted (no metrics.json), one level deeper. trainer.max_epochs is fixed.
    sweep, job = root / "ff_threshold", 0
    accs = {1.0: [0.521, 0.524, 0.527], 2.0: [0.600, 0.610, None]}
    for threshold, values in accs.items():
        for seed, acc in enumerate(values):
            over = {"algorithm.threshold": threshold, "seed": seed, "trainer.max_epochs": 2}
            failure = None if acc is not None else "DivergenceError: loss is NaN at epoch 1"
            make_job(sweep / str(job), over, "ff_threshold", metrics(acc, seed, failure))
            job += 1
    make_job(sweep / "late" / "10", {"algorithm.threshold": 3.0, "seed": 0, "trainer.max_epochs": 2},
             "ff_threshold", None)
    # ablation: model.width x algorithm.norm; (128, true) failed twice; two configs have one seed.
    sweep = root / "ablation"
    cases = [(64, True, 0, 0.70), (64, True, 1, 0.72), (64, False, 0, 0.655),
             (128, True, 0, None), (128, True, 1, None), (128, False, 0, 0.80)]
    for i, (width, norm, seed, acc) in enumerate(cases):
        make_job(sweep / str(i), {"model.width": width, "algorithm.norm": norm, "seed": seed}, "ablation",
                 metrics(acc, seed, None if acc is not None else "RuntimeError: CUDA out of memory"))
    return root


def test_parse_scalar() -> None:
    assert parse_scalar("1e-3") == 0.001 and parse_scalar("2") == 2 and parse_scalar("2.5") == 2.5
    assert parse_scalar("true") is True and parse_scalar("null") is None and parse_scalar("mnist") == "mnist"
    assert parse_scalar("[1, 2]") == "[1, 2]" and parse_scalar("nan") == "nan"


def test_collect_rows_columns_statuses(runs_root: Path) -> None:
    df = collect(runs_root / "ff_threshold")
    assert len(df) == 7
    assert df["status"].value_counts().to_dict() == {"ok": 5, "failed": 1, "incomplete": 1}
    assert list(df.columns[:4]) == ["run_dir", "status", "algorithm.threshold", "trainer.max_epochs"]
    assert df.attrs["override_keys"] == ["algorithm.threshold", "seed", "trainer.max_epochs"]
    for col in ["test/acc", "val/acc_best", "blocks.b0.acc", "blocks.b1.goodness_gap", "algorithm.peer_norm",
                "seed", "device", "commit", "epochs", "wall_time_s", "dataset.name", "sweep_name", "failure"]:
        assert col in df.columns, col
    assert set(df["algorithm._target_"]) == {"ForwardForward"} and set(df["dataset.name"]) == {"mnist"}
    # Sorted by the varied key, then the seed; the incomplete job is found two levels down.
    assert list(zip(df["algorithm.threshold"], df["seed"])) == [
        (1.0, 0), (1.0, 1), (1.0, 2), (2.0, 0), (2.0, 1), (2.0, 2), (3.0, 0)]
    last = df.iloc[-1]
    assert last["run_dir"] == "late/10" and last["status"] == "incomplete" and math.isnan(last["test/acc"])
    failed = df[df["status"] == "failed"].iloc[0]
    assert failed["failure"].startswith("DivergenceError") and failed["run_dir"] == "5"
    assert df.loc[0, "test/acc"] == pytest.approx(0.521) and df.loc[0, "blocks.b1.acc"] == pytest.approx(0.45)


def test_collect_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        collect(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no runs"):
        collect(tmp_path / "empty")


def test_summarize_golden_numbers(runs_root: Path) -> None:
    summary = summarize(collect(runs_root / "ff_threshold"))
    # The fixed trainer.max_epochs=2 and the seed are not grouping keys.
    assert summary.attrs["keys"] == ["algorithm.threshold"]
    assert summary.attrs["fixed"] == {"trainer.max_epochs": 2}
    assert list(summary["algorithm.threshold"]) == [1.0, 2.0, 3.0]
    # threshold 1.0: 52.1, 52.4, 52.7 -> mean 52.4; deviations -0.3, 0, 0.3 -> sd sqrt(0.18 / 2) = 0.3.
    # threshold 2.0: 60.0, 61.0 -> mean 60.5; sd sqrt((0.25 + 0.25) / 1) = sqrt(0.5) = 0.7071.
    assert summary["mean"].iloc[0] == pytest.approx(52.4) and summary["sd"].iloc[0] == pytest.approx(0.3)
    assert summary["mean"].iloc[1] == pytest.approx(60.5)
    assert summary["sd"].iloc[1] == pytest.approx(0.5 ** 0.5)
    assert math.isnan(summary["mean"].iloc[2]) and math.isnan(summary["sd"].iloc[2])
    assert list(summary["n"]) == [3, 2, 0]
    assert list(summary["n_failed"]) == [0, 1, 0] and list(summary["n_incomplete"]) == [0, 0, 1]
    assert list(summary["cell"]) == ["52.40 ± 0.30 (n=3)", "60.50 ± 0.71 (n=2; 1 failed)", "incomplete"]


def test_summarize_two_keys_single_seed_and_all_failed(runs_root: Path) -> None:
    summary = summarize(collect(runs_root / "ablation"))
    assert summary.attrs["keys"] == ["model.width", "algorithm.norm"]
    rows = {(w, bool(nm)): c for w, nm, c in zip(summary["model.width"], summary["algorithm.norm"],
                                                   summary["cell"])}
    # (64, true): 70, 72 -> mean 71, sd sqrt(2) = 1.414; n=1 shows no spread; all-failed shows "failed".
    assert rows == {(64, False): "65.50 (n=1)", (64, True): "71.00 ± 1.41 (n=2)",
                    (128, False): "80.00 (n=1)", (128, True): "failed (n_failed=2)"}
    assert math.isnan(summary.loc[summary["cell"] == "65.50 (n=1)", "sd"].iloc[0])
    with pytest.raises(ValueError, match="nokey"):
        summarize(collect(runs_root / "ablation"), keys=["nokey"])


def test_format_cell() -> None:
    assert format_cell(52.4111, 0.3666, 3) == "52.41 ± 0.37 (n=3)"
    assert format_cell(52.4111, float("nan"), 1) == "52.41 (n=1)"
    assert format_cell(float("nan"), float("nan"), 0, n_failed=2) == "failed (n_failed=2)"
    nan = float("nan")
    assert format_cell(nan, nan, 0, n_failed=1, n_incomplete=1) == "failed (n_failed=1; 1 incomplete)"
    assert format_cell(60.5, 0.70711, 2, n_failed=1) == "60.50 ± 0.71 (n=2; 1 failed)"
    assert format_cell(float("nan"), float("nan"), 0, n_incomplete=3) == "incomplete"


def test_write_sweep_outputs(runs_root: Path, tmp_path: Path) -> None:
    sweep = runs_root / "ff_threshold"
    paths = write_sweep_outputs(sweep, tmp_path / "out")
    table = paths["table"].read_text()
    assert table.startswith("## ff_threshold")
    assert "52.40 ± 0.30 (n=3)" in table and "**60.50 ± 0.71 (n=2; 1 failed)**" in table  # best validation mean
    assert "incomplete" in table and "failed" in table
    assert "mean ± sd" in table and "n = 2-3" in table and "test/acc in %" in table
    assert "CPU (x86_64, 2 cores)" in table and "abc1234567" in table and "epochs: 2" in table
    assert "trainer.max_epochs=2" in table
    # runs.csv keeps every run (failed and incomplete too) and round-trips.
    df = collect(sweep)
    back = pd.read_csv(paths["runs"])
    assert list(back.columns) == list(df.columns) and len(back) == 7
    assert list(back["status"]) == list(df["status"]) and list(back["run_dir"]) == list(df["run_dir"])
    pd.testing.assert_series_equal(back["test/acc"], df["test/acc"])
    pd.testing.assert_series_equal(back["algorithm.threshold"], df["algorithm.threshold"])
    for key in ("figure", "figure_pdf"):
        assert paths[key].stat().st_size > 1000
    assert paths["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tables_of_a_sweep_made_in_pieces_add_up(tmp_path: Path) -> None:
    # piece 1 ran seeds 0-1 on one machine, piece 2 seed 2 on another (piece 1's folders are gone there): the
    # committed runs.csv must end with all three, and a re-collected run replaces its old row
    out = tmp_path / "results" / "piece_sweep"
    first = tmp_path / "machine1" / "piece_sweep"
    for seed, acc in ((0, 0.50), (1, 0.52)):
        make_job(first / f"seed={seed}", {"seed": seed}, "piece_sweep", metrics(acc, seed))
    write_sweep_outputs(first, out)
    second = tmp_path / "machine2" / "piece_sweep"
    make_job(second / "seed=2", {"seed": 2}, "piece_sweep", metrics(0.54, 2))
    make_job(second / "seed=1", {"seed": 1}, "piece_sweep", metrics(0.56, 1))  # re-run of seed 1 wins
    paths = write_sweep_outputs(second, out)
    back = pd.read_csv(paths["runs"])
    assert sorted(back["run_dir"]) == ["seed=0", "seed=1", "seed=2"]
    assert dict(zip(back["run_dir"], back["test/acc"])) == {"seed=0": 0.50, "seed=1": 0.56, "seed=2": 0.54}
    assert "53.33 ± 3.06 (n=3)" in paths["table"].read_text()  # mean of 50, 56, 54; sd = sqrt(28/3)


def test_old_coordinator_group_columns_are_read_as_schedule(tmp_path: Path) -> None:
    # the `coordinator` config group is now `schedule`: job folders and runs.csv files written before keep the old
    # spelling on disk (never rewritten) and are read under the new one, so old and new rows share a column;
    # model.coordinator.* (OctopusNet's coordinator block) is another key and keeps its name
    old_csv = tmp_path / "results" / "runs.csv"
    old_csv.parent.mkdir(parents=True)
    pd.DataFrame([{"run_dir": "old", "status": "ok", "coordinator": "greedy", "coordinator.optimizer_layout": "joint",
                   "model.coordinator.hidden": 8, "test/acc": 0.5}]).to_csv(old_csv, index=False)
    text = old_csv.read_text()
    sweep = tmp_path / "runs" / "sched"
    make_job(sweep / "old_folder", {"seed": 0}, "sched", metrics(0.51, 0))
    (sweep / "old_folder" / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(["seed=0", "coordinator=greedy", "coordinator.optimizer_layout=per_block"]))
    make_job(sweep / "new_folder", {"seed": 1}, "sched", metrics(0.52, 1))
    (sweep / "new_folder" / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(["seed=1", "schedule=greedy", "schedule.optimizer_layout=joint"]))
    df = collect(sweep)
    assert df.attrs["override_keys"] == ["seed", "schedule", "schedule.optimizer_layout"]
    assert dict(zip(df["run_dir"], df["schedule.optimizer_layout"])) == {"old_folder": "per_block",
                                                                         "new_folder": "joint"}
    merged = merge_runs(old_csv, df)
    assert not [c for c in merged.columns if c.split(".")[0] == "coordinator"]
    assert dict(zip(merged["run_dir"], merged["schedule.optimizer_layout"])) == {
        "old": "joint", "old_folder": "per_block", "new_folder": "joint"}
    assert merged.loc[merged["run_dir"] == "old", "model.coordinator.hidden"].tolist() == [8]
    assert old_csv.read_text() == text  # reading never rewrites the old file


def test_figure_when_all_runs_failed(tmp_path: Path) -> None:
    sweep = tmp_path / "dead"
    for seed in range(2):
        make_job(sweep / str(seed), {"seed": seed}, "dead", metrics(None, seed, "DivergenceError: NaN"))
    paths = write_sweep_outputs(sweep, tmp_path / "out")
    assert paths["figure"].stat().st_size > 1000
    assert "failed (n_failed=2)" in paths["table"].read_text()


def test_cli_missing_dir(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "no_such_sweep"
    assert main([str(missing)]) != 0
    err = capsys.readouterr().err.strip()
    assert str(missing) in err and len(err.splitlines()) == 1
    # The module form works too (and exits non-zero with the same one line).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "octo.analysis.tables", str(missing)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and str(missing) in proc.stderr


def test_cli_all_processes_every_sweep(runs_root: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "results"
    assert main(["--all", str(runs_root), "--out", str(out)]) == 0
    for name in ("ablation", "ff_threshold"):
        for file in ("runs.csv", "table.md", "figure.png"):
            assert (out / name / file).stat().st_size > 0, (name, file)
    assert "71.00 ± 1.41 (n=2)" in (out / "ablation" / "table.md").read_text()
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert main(["--all", str(tmp_path / "nope")]) != 0


def test_table_marks_the_best_validation_mean_not_the_best_test_mean(tmp_path: Path) -> None:
    # config 1.0: test 60 %, validation 50 %; config 2.0: test 55 %, validation 58 %. Model selection reads the
    # validation split, so 2.0 is the one to mark; bolding 1.0 would choose on the test set.
    sweep = tmp_path / "runs" / "select"
    for threshold, test, val in ((1.0, 0.60, 0.50), (2.0, 0.55, 0.58)):
        for seed in (0, 1):
            m = {**metrics(test, seed), "val/acc_best": val}
            make_job(sweep / f"t{threshold}_s{seed}", {"algorithm.threshold": threshold, "seed": seed}, "select", m)
    table = write_sweep_outputs(sweep, tmp_path / "out")["table"].read_text()
    assert "**55.00 ± 0.00 (n=2)**" in table and "**60.00" not in table
    assert "best mean val/acc_best (validation)" in table
    # Without a validation metric nothing is marked.
    summary = summarize(collect(sweep), select_metric=None)
    assert "**" not in render_markdown(summary, "no selection")


def test_table_marks_rows_run_from_dirty_or_unknown_commits(tmp_path: Path) -> None:
    sweep = tmp_path / "runs" / "provenance"
    for width, commit in ((64, "abc1234567"), (128, "abc1234567-dirty"), (256, "unknown")):
        make_job(sweep / str(width), {"model.width": width, "seed": 0}, "provenance",
                 {**metrics(0.5, 0), "commit": commit})
    table = write_sweep_outputs(sweep, tmp_path / "out")["table"].read_text()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ") and "(n=" in line}
    assert "†" not in rows["64"] and "†" in rows["128"] and "†" in rows["256"]
    assert "† At least one run of this row records a commit ending in -dirty" in table


def test_runs_csv_keeps_paths_relative_to_the_run_folder(tmp_path: Path) -> None:
    # train.py records absolute paths of the machine that ran the job; a committed runs.csv must not carry them.
    sweep = tmp_path / "runs" / "paths"
    job = sweep / "seed=0"
    m = {**metrics(0.5, 0), "selected_checkpoint": str(job.resolve() / "checkpoints" / "best.ckpt"),
         "resumed_from": str(job.resolve() / "checkpoints" / "last.ckpt"),
         "images": "/elsewhere/machine/paths/seed=0/images/test.png"}  # a run folder copied from another machine
    make_job(job, {"seed": 0}, "paths", m)
    df = collect(sweep)
    assert df.loc[0, "selected_checkpoint"] == "checkpoints/best.ckpt"
    assert df.loc[0, "resumed_from"] == "checkpoints/last.ckpt" and df.loc[0, "images"] == "images/test.png"
    # Rows of an older runs.csv (absolute paths, folder gone) are rewritten when merged.
    out = tmp_path / "results" / "paths"
    out.mkdir(parents=True)
    old = pd.DataFrame({"run_dir": ["seed=9"], "status": ["ok"], "seed": [9], "test/acc": [0.4],
                        "selected_checkpoint": ["/srv/octo/results/runs/paths/seed=9/checkpoints/best.ckpt"]})
    old.to_csv(out / "runs.csv", index=False)
    text = write_sweep_outputs(sweep, out)["runs"].read_text()
    assert str(tmp_path) not in text and "/srv/" not in text
    back = pd.read_csv(out / "runs.csv")
    assert set(back["selected_checkpoint"]) == {"checkpoints/best.ckpt"}


def test_diverged_and_timed_out_runs_are_shown_as_such() -> None:
    df = pd.DataFrame({"lr": [1e-3, 1e-3, 1e6, 1e6], "seed": [0, 1, 0, 1],
                       "status": ["ok", "timeout", "diverged", "diverged"], "test/acc": [0.9, None, 0.1, 0.1]})
    cells = dict(zip(summarize(df, ["lr"])["lr"], summarize(df, ["lr"])["cell"]))
    assert cells[1e-3] == "90.00 (n=1; 1 incomplete)"  # a timed-out run resumes: not a finished result
    assert cells[1e6] == "diverged (n_diverged=2)"  # never averaged, never called ok


def test_smoke_and_budget_scale_tables_say_so_in_their_title() -> None:
    from octo.analysis.tables import scaled_title

    plain = pd.DataFrame({"seed": [0]})
    assert scaled_title("octopus_a8_nerve_ring", plain) == "octopus_a8_nerve_ring"
    assert "budget scale: 10 epochs" in scaled_title("octopus_a8_nerve_ring_10ep", plain)
    # a sweep named after its epochs that runs a recipe of that many epochs is at the published budget
    hinton = pd.DataFrame({"experiments": ["ff_hinton_4x2000"]})
    assert scaled_title("ff_hinton_4x2000_60ep", hinton) == "ff_hinton_4x2000_60ep"
    assert "budget scale: 10 epochs" in scaled_title("ff_hinton_4x2000_10ep", hinton)
    assert "SMOKE SCALE" in scaled_title("octopus_a8_nerve_ring", pd.DataFrame({"scale": ["smoke_octopus"]}))


def test_tables_state_the_precision() -> None:
    df = pd.DataFrame({"seed": [0, 1], "status": ["ok", "ok"], "test/acc": [0.5, 0.6],
                       "precision.trainer": ["bf16-mixed", "bf16-mixed"]})
    summary = summarize(df, [])
    assert "precision: bf16-mixed" in render_markdown(summary, "t")
    assert "precision: not recorded" in render_markdown(summarize(df.drop(columns="precision.trainer"), []), "t")


def test_runs_csv_leaves_out_per_epoch_series() -> None:
    from octo.analysis.collect import flatten

    row = flatten({"test/acc": 0.9, "history": [{"epoch": 1}] * 2000,
                   "test_curve": {"rows": [{"epoch": 1, "acc": 0.5}], "best": {"acc": 0.6}, "final": {"acc": 0.5}}})
    assert "history" not in row and "test_curve.rows" not in row
    assert row["test_curve.best.acc"] == 0.6 and row["test_curve.final.acc"] == 0.5
