"""The GPU queue: pieces and their done/pending status from runs.csv, landing archives (and refusing dry ones), and
the dry run of the exact GPU command lines on the CPU."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from octo.gpu.land import LandError, land, land_all
from octo.gpu.queue import PIECE_SECONDS, build_queue

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def queue(tmp_path_factory):
    return build_queue(tmp_path_factory.mktemp("empty_results"))


def test_queue_order_sizes_and_everything_pending(queue):
    ids = [p.id for p in queue]
    assert ids[:4] == ["P0a", "P0b", "P1.1", "P1.2"]
    order = [i.split(".")[0].rstrip("ab") for i in ids]
    assert order == sorted(order, key=lambda s: int(s[1:]))  # P0 .. P5, most valuable first
    assert all(not any(p.done) for p in queue)
    for p in queue:  # a piece fits the budget, unless it is one job that alone is longer
        assert p.est_s <= PIECE_SECONDS or len(p.jobs) == 1, p.id
    p1 = queue[2].jobs[0]
    assert p1.sweep == "octopus_a21b_resilience" and "seed=0" in p1.args
    assert "trainer.accelerator=gpu" in p1.args and "track_test=true" in p1.args  # fp32 + test curve
    # budget-scale ablations never share a sweep name (and so a table) with published-budget runs
    p2 = [j for p in queue if p.id.split(".")[:2] == ["P2", "a1"] for j in p.jobs]
    assert p2 and all(j.sweep == "octopus_a1_num_arms_10ep" and j.epochs == 10 for j in p2)
    p0 = queue[0].jobs[0]
    assert "trainer.precision=32-true" in p0.args and "faithful_eval=true" in p0.args  # the anchor: fp32, 50k


def _runs_csv(results: Path, sweep: str, rows: list[dict]) -> None:
    (results / sweep).mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(results / sweep / "runs.csv", index=False)


def test_done_is_derived_from_ok_rows_that_match_the_job(tmp_path):
    job = {"run_dir": "seed=0", "sweeps": "octopus_a21b_resilience", "trainer.accelerator": "gpu",
           "track_test": True, "seed": 0}
    _runs_csv(tmp_path, "octopus_a21b_resilience", [{**job, "status": "failed"},
                                                     {**job, "seed": 1, "run_dir": "seed=1", "status": "ok"}])
    pieces = {p.id: p for p in build_queue(tmp_path)}
    assert pieces["P1.1"].done == [False]  # failed seed 0, and an ok seed 1 is another job
    assert pieces["P1.2"].done == [True] and pieces["P1.3"].pending[0].args[-1] == "seed=2"
    _runs_csv(tmp_path, "octopus_a21b_resilience", [{**job, "status": "ok"}])
    assert {p.id: p for p in build_queue(tmp_path)}["P1.1"].done == [True]


def test_measured_speed_replaces_the_target(tmp_path):
    before = {p.id: p for p in build_queue(tmp_path)}
    (tmp_path / "gpu").mkdir()
    pd.DataFrame([{"sweep": "octopus_ff_standard_fp32", "s_per_epoch": 6.0}]).to_csv(tmp_path / "gpu" / "speeds.csv")
    after = {p.id: p for p in build_queue(tmp_path)}
    job_before, job_after = before["P2.a8"].jobs[0], after["P2.a8"].jobs[0]
    assert job_after.s_per_epoch == pytest.approx(2 * job_before.s_per_epoch)  # measured 6 s vs target 3 s
    assert "measured" in job_after.basis and "estimate" in job_before.basis


def _archive(path: Path, *, dry: bool, cuda: bool = True, sweep: str = "octopus_a21b_resilience") -> Path:
    summary = {"dry": dry, "env": {"cuda_available": cuda, "gpu": "NVIDIA H100 80GB HBM3"}, "commit": "abc1234567",
               "time": "2026-11-27T12:00:00+00:00", "pieces": [{"id": "P1.1"}]}
    rows = pd.DataFrame([{"run_dir": "seed=0", "status": "ok", "sweeps": sweep, "trainer.accelerator": "gpu",
                          "track_test": True, "seed": 0,
                          "sweep_name": sweep, "dataset.name": "cifar10", "test/acc": 0.68, "val/acc_best": 0.67,
                          "device": "NVIDIA H100 80GB HBM3", "commit": "abc1234567", "epochs": 30,
                          "train_epoch_seconds": "[9.0, 7.0, 7.5, 7.2]"}])
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("summary.json", json.dumps(summary).encode()),
                           (f"rows/{sweep}.csv", rows.to_csv(index=False).encode()),
                           ("bench/README.md", b"| 2026-11-27T12:00:00+00:00 | NVIDIA H100 | [500, 500] | 100 |\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_land_merges_rows_records_speed_and_is_idempotent(tmp_path):
    results = tmp_path / "results"
    _runs_csv(results, "octopus_a21b_resilience", [{"run_dir": "seed=1", "status": "ok", "sweeps":
                                                    "octopus_a21b_resilience", "trainer": "gpu", "seed": 1}])
    archive = _archive(tmp_path / "a.tgz", dry=False)
    report = land(archive, results)
    assert "landed 1 sweep" in report
    runs = pd.read_csv(results / "octopus_a21b_resilience" / "runs.csv")
    assert sorted(runs["run_dir"]) == ["seed=0", "seed=1"]  # merged, the earlier row kept
    assert (results / "octopus_a21b_resilience" / "table.md").exists()
    speeds = pd.read_csv(results / "gpu" / "speeds.csv")
    assert speeds["s_per_epoch"].tolist() == [7.2]  # median of the epochs after the warm-up one
    landed = pd.read_csv(results / "gpu" / "landed.csv")
    assert landed["pieces"].tolist() == ["P1.1"] and landed["device"].tolist() == ["NVIDIA H100 80GB HBM3"]
    queue_md = (results / "gpu" / "queue.md").read_text()
    assert "| P1.1 |" in queue_md and "| 1/1 |" in queue_md  # seed 0 is done now
    assert "NVIDIA H100" in (results / "bench" / "README.md").read_text()
    before = (results / "octopus_a21b_resilience" / "runs.csv").read_text()
    assert "already landed" in land(archive, results)
    assert (results / "octopus_a21b_resilience" / "runs.csv").read_text() == before


def test_land_refuses_dry_and_cpu_archives(tmp_path, capsys):
    results = tmp_path / "results"
    with pytest.raises(LandError, match="dry run"):
        land(_archive(tmp_path / "dry.tgz", dry=True), results)
    with pytest.raises(LandError, match="without a visible GPU"):
        land(_archive(tmp_path / "cpu.tgz", dry=False, cuda=False), results)
    assert not (results / "octopus_a21b_resilience").exists()
    assert land_all([tmp_path / "dry.tgz"], results) == 2
    assert "refused" in capsys.readouterr().err


def test_dry_run_of_the_gpu_commands_in_a_gpu_like_environment(tmp_path):
    """``make gpu-next DRY=1`` on a representative subset: the anchors and the reference-run bench (P0a), the
    A21b recipe (P1.1) and an MNIST and a CIFAR recipe of another algorithm (P4.1). octo comes from the tree,
    hydra from the carried wheels, wandb is absent; the archive says dry and landing refuses it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OCTO_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "out"
    proc = subprocess.run(["make", "-s", "gpu-next", "DRY=1", "K=2", f"OUT={out}", "ONLY=P0a P1.1 P4.1",
                           f"RUNS={tmp_path / 'runs'}",
                           f"PY={REPO / '.venv' / 'bin' / 'python'}" if (REPO / ".venv").exists() else "PY=python3"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry"] is True and summary["env"]["cuda_available"] is False
    jobs = summary["jobs"]
    assert {j["piece"] for j in jobs} == {"P0a", "P1.1", "P4.1"} and all(j["rc"] == 0 for j in jobs)
    assert any(j["kind"] == "bench" for j in jobs)
    archive = next(out.glob("*-dry-*.tgz"))
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "rows/octopus_a21b_resilience.csv" in names and not any(n.endswith(".ckpt") for n in names)
    with pytest.raises(LandError, match="dry run"):
        land(archive, tmp_path / "results")


@pytest.mark.parametrize("pip_ok", [True, False])
def test_wheels_for_the_gpu_image_build_without_git_metadata_and_never_half(tmp_path, pip_ok):
    """CI's clone had no ``.git/info``: the wheel step must not touch git metadata. A failed build must leave no
    ``.whl/`` either, because make takes an existing folder as built and would carry a half one to the GPU."""
    (tmp_path / "Makefile").write_text((REPO / "Makefile").read_text())
    fake = tmp_path / "fake_python"  # stands in for `python -m pip wheel ... -w DIR`: writes one wheel into DIR
    fake.write_text("#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = -w ] && d=$2; shift; done\n"
                    f"mkdir -p \"$d\" && touch \"$d/x-1.0-py3-none-any.whl\"\nexit {0 if pip_ok else 1}\n")
    fake.chmod(0o755)
    proc = subprocess.run(["make", "-s", ".whl", f"PY={fake}"], cwd=tmp_path, capture_output=True, text=True,
                          check=False)
    assert (proc.returncode == 0) is pip_ok, proc.stderr
    assert (tmp_path / ".whl" / "x-1.0-py3-none-any.whl").exists() is pip_ok
    assert not (tmp_path / ".git").exists()
