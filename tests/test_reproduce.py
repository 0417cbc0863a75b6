"""make reproduce-tables: the registry, the published numbers, sweep composition, rendering, merging of pieces,
the GPU plan, and (slow) three sweeps through the smoke pipeline end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from octo.analysis.octopus.budget import estimate, sweep_jobs
from octo.analysis.octopus.layout import Layout
from octo.analysis.octopus.published import PublishedData
from octo.analysis.octopus.registry import PER_CLASS, SWEEPS, TABLES
from octo.analysis.octopus.render import render_per_class, render_table
from octo.analysis.octopus.reproduce import load_runs

REPO = Path(__file__).resolve().parents[1]
EPOCHS = {"octopus_headline_ff": 100, "octopus_a1_num_arms": 50, "octopus_a2_bottleneck": 50,
          "octopus_a6_resilience": 100, "octopus_a7_feedback": 50, "octopus_a8_nerve_ring": 50,
          "octopus_a9_arm_types": 30, "octopus_a10_competition": 5, "octopus_a11_threshold": 50,
          "octopus_a13_labels": 50, "octopus_a15b_sff": 50, "octopus_a16_sleep": 50, "octopus_a17_rounds": 20,
          "bp_cnn_block_failure": 30}
TABLE = {t.id: t for t in TABLES}


def test_every_registered_sweep_has_a_file_and_back():
    files = {p.stem for p in (REPO / "sweeps").glob("*.yaml")} - {"ff_width_threshold"}
    assert files == {s.name for s in SWEEPS}
    for t in TABLES:
        assert set(t.sweeps()) <= files, t.id
    assert {pc.sweep for pc in PER_CLASS} <= files


def test_published_numbers_all_have_a_place_and_a_source():
    data = PublishedData.load()
    data.validate(list(TABLES), [pc.id for pc in PER_CLASS])
    assert data.lookup("a8_nerve_ring", "on", "acc").value == 51.45
    assert data.lookup("a6_resilience", "single.arm1", "p0").text() == "13.89 [paper]"
    raw = yaml.safe_load((REPO / "results/published/octopusnet.yaml").read_text())
    raw["tables"]["a8_nerve_ring"].append({"row": "maybe", "col": "acc", "value": 1, "source": "blog"})
    with pytest.raises(ValueError, match="no row 'maybe'.*unknown source tag 'blog'"):
        PublishedData(raw).validate(list(TABLES), [pc.id for pc in PER_CLASS])


@pytest.mark.parametrize("s", SWEEPS, ids=lambda s: s.name)
def test_sweep_composes_at_both_scales(s):
    jobs = sweep_jobs(s.name)
    assert {j.values["seed"] for j in jobs} == {"0", "1", "2"}  # >= 3 seeds per cell
    assert jobs[0].epochs == EPOCHS.get(s.name, 30)              # the published epochs (CG tables: 30)
    smoke = sweep_jobs(s.name, [f"+scale=smoke_{s.family}"])
    assert {j.values["seed"] for j in smoke} == {"0"} and smoke[0].epochs == 1
    assert {j.cell for j in smoke} == {j.cell for j in jobs}      # every cell of the table still runs


def _job(root: Path, sweep: str, overrides: dict, metrics: dict) -> None:
    """A finished job folder as octo.train writes it (overrides.yaml, config.yaml, metrics.json)."""
    name = ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    job = root / sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"{k}={v}" for k, v in overrides.items()]))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(
        {"sweep_name": sweep, "seed": overrides["seed"], "dataset": {"name": "cifar10"},
         "algorithm": {"_target_": "octo.algorithms.octopus.Octopus"}}))
    (job / "metrics.json").write_text(json.dumps({"status": "ok", "seed": overrides["seed"], "epochs": 50,
                                                  "device": "GPU", "commit": "abc", **metrics}))


def _resilience(base: float) -> dict:
    arms = [f"arm{i}" for i in range(4)]
    single = {a: base - 0.05 * (i + 1) for i, a in enumerate(arms)}
    pairs = {f"{a}+{b}": base - 0.3 for i, a in enumerate(arms) for b in arms[i + 1:]}
    return {"resilience": {"intact": base, "single_failure": single, "pair_failure": pairs,
                           "alone": {a: 0.2 for a in arms}, "critical_arm": "arm3", "floor_single": base - 0.2,
                           "floor_double": base - 0.3, "degradation_single": 0.2,
                           "specialization": {a: [0.1 * c for c in range(10)] for a in arms}}}


@pytest.fixture
def fake_runs(tmp_path):
    runs = tmp_path / "runs"
    for seed, acc in enumerate((0.50, 0.51, 0.52)):
        _job(runs, "octopus_a8_nerve_ring", {"model.nerve_ring.enabled": "True", "seed": seed}, {"test/acc": acc})
        _job(runs, "octopus_a21b_resilience", {"seed": seed}, {"test/acc": 0.6, "evaluation": _resilience(0.6)})
    _job(runs, "octopus_a8_nerve_ring", {"model.nerve_ring.enabled": "False", "seed": 0}, {"test/acc": 0.4})
    _job(runs, "octopus_a8_nerve_ring", {"model.nerve_ring.enabled": "False", "seed": 1},
         {"status": "failed", "test/acc": None})
    layout = Layout.for_scale("full", tmp_path / "results", runs)
    return layout, {s.name: load_runs(s.name, layout) for s in SWEEPS}


def test_tables_show_ours_beside_published(fake_runs):
    layout, runs = fake_runs
    a8 = render_table(TABLE["a8_nerve_ring"], runs, PublishedData.load())
    assert "| with nerve ring | 51.00 ± 1.00 (n=3) | 51.45 [paper] |" in a8
    assert "| without | 40.00 (n=1; 1 failed) | 51.38 [paper] |" in a8
    assert "bottleneck 64, 50 epochs" in a8 and "Provenance `octopus_a8_nerve_ring`: datasets: cifar10" in a8
    a21b = render_table(TABLE["a21b"], runs, PublishedData.load())
    assert "| arm0 (k3; paper M0) failed | 55.00 ± 0.00 (n=3) | 67.03 [paper-new] |" in a21b
    assert "| critical arm (worst single) | arm3 (3/3) | arm0 [paper-new] |" in a21b
    assert "| arm0 alone (others failed) | 20.00 ± 0.00 (n=3) | not published |" in a21b
    assert "| intact | missing | 64.34 [README-new, paper-new] |" in render_table(TABLE["a6b"], runs,
                                                                                 PublishedData.load())
    per_class = render_per_class(PER_CLASS[1], {"octopus_a18b_resilience": runs["octopus_a21b_resilience"]},
                                 PublishedData.load())
    assert "| arm0 (k3; paper M0) | ours (mean over seeds) | 0 | 10 | 20 |" in per_class
    assert "| arm0 (k3; paper M0) | published [paper-new] | 67 | 0 | 2 |" in per_class


def test_outputs_and_index_are_written(fake_runs):
    from octo.analysis.octopus.outputs import write_outputs

    layout, runs = fake_runs
    written = write_outputs(layout, runs)
    assert {p.name for p in written} >= {f"{t.id}.md" for t in TABLES} | {"README.md", "a21b.png", "a1_num_arms.png",
                                                                         "a15b_per_class.png"}
    index = (layout.tables / "README.md").read_text()
    # 2 rows x (validation-selected, best epoch, final epoch): the fake runs have no test curve
    assert "| [A8 — nerve ring on / off](a8_nerve_ring.md) | paper | 4 / 6 | 2 / 2 / 6 |" in index
    assert "[runs.csv](../octopus_a21b_resilience/runs.csv)" in index
    assert all(p.stat().st_size > 1000 for p in written if p.suffix == ".png")


def test_runs_csv_merges_pieces_from_different_machines(fake_runs, tmp_path):
    layout, _ = fake_runs
    path = layout.runs_csv("octopus_a8_nerve_ring")
    assert len(load_runs("octopus_a8_nerve_ring", layout)) == 5 and path.exists()
    other = tmp_path / "elsewhere"  # a later piece, run on another machine, sees only its own folders
    _job(other, "octopus_a8_nerve_ring", {"model.nerve_ring.enabled": "False", "seed": 2}, {"test/acc": 0.42})
    merged = load_runs("octopus_a8_nerve_ring", Layout("full", layout.results, other))
    assert len(merged) == 6 and merged["run_dir"].is_unique
    # a fresh clone renders from runs.csv alone; list cells (per-class accuracy) survive the round trip
    reread = load_runs("octopus_a21b_resilience", Layout("full", layout.results, tmp_path / "nothing"))
    assert "[0.0, 0.1" in str(reread["evaluation.resilience.specialization.arm0"].iloc[0])
    text = render_per_class(PER_CLASS[1], {"octopus_a18b_resilience": reread}, PublishedData.load())
    assert "| ours (mean over seeds) | 0 | 10 | 20 |" in text


def test_estimate_total_is_the_one_in_the_docs():
    df = estimate()
    assert df["runs"].sum() == sum(len(sweep_jobs(s.name)) for s in SWEEPS)
    doc = (REPO / "docs" / "reproduce.md").read_text()
    assert f"**{df['GPU-min (est.)'].sum():.1f}**" in doc


def test_make_target_passes_scale_piece_and_overrides():
    out = subprocess.run(["make", "-n", "reproduce-tables", "SCALE=smoke", "PIECE=octopus_a8_nerve_ring",
                          "ARGS=seed=0 launcher=joblib"], cwd=REPO, capture_output=True, text=True, check=True)
    assert ("-m octo.analysis.octopus.reproduce run --scale smoke --piece octopus_a8_nerve_ring -- seed=0 "
            "launcher=joblib" in out.stdout)


@pytest.mark.slow
def test_smoke_pipeline_on_three_sweeps(tmp_path):
    from octo.algorithms.base import LocalAlgorithm
    from octo.algorithms.octopus import Octopus

    piece = "octopus_a8_nerve_ring,octopus_a21b_resilience,bp_cnn_block_failure"
    env = {**os.environ, "OCTO_ROOT": str(REPO), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "octo.analysis.octopus.reproduce", "run", "--scale", "smoke",
                          "--piece", piece, "--results", str(tmp_path / "smoke"), "--parallel", "2"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    tables = tmp_path / "smoke" / "tables"
    a8 = (tables / "a8_nerve_ring.md").read_text()
    assert a8.count("(n=1)") == 2 and "datasets: synthetic" in a8
    assert a8.splitlines()[0].endswith("[SMOKE SCALE: generated data, 1 epoch; tests the pipeline, not OctopusNet]")
    bp = (tables / "bp_cnn.md").read_text()
    assert "| classes predicted, block1 failed | 1.0 (n=1) |" in bp  # block failure -> one class, by construction
    assert "(n=1)" in (tables / "headline.md").read_text().split("A21b")[1].splitlines()[0]
    if Octopus.final_evaluation is not LocalAlgorithm.final_evaluation:  # OctopusNet's resilience hook exists
        assert "| floor, 2 failed (worst pair) | no value" not in (tables / "a21b.md").read_text()
    assert (tmp_path / "smoke" / "figures" / "a21b.png").exists()
    for sweep in piece.split(","):
        assert (tmp_path / "smoke" / sweep / "runs.csv").exists()
    # again: every job is skipped, nothing retrained
    again = subprocess.run([sys.executable, "-m", "octo.analysis.octopus.reproduce", "run", "--scale", "smoke",
                            "--piece", "bp_cnn_block_failure", "--results", str(tmp_path / "smoke")], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    log = (tmp_path / "smoke" / "runs" / "_logs" / "bp_cnn_block_failure.log").read_text()
    assert "skipping finished job" in log


def test_accuracy_tables_show_the_test_curve_beside_the_selected_number(fake_runs):
    """Published numbers are best- or final-epoch test accuracies: ours show both (from the test curve, never used
    for selection) beside the validation-selected one."""
    layout, runs = fake_runs
    a8 = runs["octopus_a8_nerve_ring"].copy()
    a8["test_curve.best.acc"], a8["test_curve.final.acc"] = 0.53, 0.52
    text = render_table(TABLE["a8_nerve_ring"], {**runs, "octopus_a8_nerve_ring": a8}, PublishedData.load())
    assert "test curve: best epoch (%): ours" in text and "test curve: final epoch (%): ours" in text
    assert "| with nerve ring | 51.00 ± 1.00 (n=3) | 51.45 [paper] | 53.00 ± 0.00 (n=3) |" in text
