"""The GPU queue: the whole study as an ordered list of pieces of at most ~9 estimated GPU-minutes each.

A lent GPU machine is rare and brief (about 10 minutes of work per call), so the study is cut into *pieces*,
most valuable first, and every call runs the next pending ones (``python -m octo.gpu next``). A piece is a list
of *jobs*; a job is one ``python -m octo.train -m ...`` command that makes exactly one run folder, so each job
gets its own time limit and several run at once on the one GPU.

Done or pending is never written by hand: a job is done when the committed ``results/<sweep>/runs.csv`` has an
``ok`` row whose override columns match the job's overrides. Estimates use the seconds per epoch measured on a
GPU as soon as one exists (``results/gpu/speeds.csv``, written when results land) and the speed targets before
that; the ``basis`` column says which.

Order (most valuable first):

- P0 first contact: the environment, FF-standard 10 epochs in fp32 (the published anchor) and 3 in bf16, the
  reference FF run's whole-process time, aggregate throughput of k = 1, 2, 4, 8 concurrent jobs;
- P1 A21b (the headline) for 30 epochs, seed 0 first, then seeds 1-2;
- P2 the five ablations the platform exists for (A1, A2, A8, A10, A6) at a budget scale of 10 epochs, 3 seeds,
  under their own sweep names (``<sweep>_10ep``) so that budget numbers never mix with published-budget ones;
- P3 SFF, A18b, A6b, A21 and the BP CNN at their published budgets;
- P4 the other algorithms' GPU rows: FF and BP Hinton 4 x 2000 for 60 epochs, CCL MLP/CNN on CIFAR-10, PFF on
  CIFAR-10, Recurrent FF 3 x 2000 (CIFAR-100 and STL-10 rows are left out: no copy of that data exists here);
- P5 every other OctopusNet sweep at its published budget, until every cell has n = 3.
"""

from __future__ import annotations

import functools
import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from octo.analysis.collect import parse_scalar, read_runs_csv
from octo.analysis.octopus.budget import seconds_per_epoch, sweep_jobs
from octo.analysis.octopus.registry import SWEEPS

REPO = Path(__file__).resolve().parents[2]
#: a piece's estimated GPU time, one job at a time, stays under this
PIECE_SECONDS = 540.0
#: per job: Python and CUDA start-up, data load, final test and evaluation (estimate)
JOB_OVERHEAD_S = 30.0
#: FF-standard's target s/epoch: the target-based OctopusNet estimates scale with its measured value
FF_STANDARD_TARGET_S = 3.0
#: override keys that never change what a job trains (not part of its identity)
COSMETIC = ("paths.", "num_threads", "hydra.", "trainer.enable_progress_bar", "logger", "skip_done",
            "retry_failed")
#: the P4 rows: (experiment, estimated s/epoch on an H100, basis of the estimate)
OTHER_ROWS: tuple[tuple[str, float, str], ...] = (
    ("ff_hinton_4x2000", 3.0, "FLOPs: ~10 TFLOP/epoch (train + 10-label validation) + 500 steps of Python"),
    ("bp_hinton_4x2000", 2.0, "FLOPs: ~4.5 TFLOP/epoch + 500 steps of Python"),
    ("ccl_mlp_cifar10", 1.5, "4 x 1024 MLP, 176 batches of 256 per epoch: step overhead dominates"),
    ("bp_ccl_mlp_cifar10", 1.0, "4 x 1024 MLP, 176 batches of 256 per epoch: step overhead dominates"),
    ("ccl_cnn_cifar10", 4.0, "small CNN with forward and feedback convs, 176 batches per epoch"),
    ("bp_ccl_cnn_cifar10", 2.0, "small CNN, 176 batches per epoch"),
    ("pff_cifar10", 6.0, "PFF circuits, K inference steps per batch"),
    ("bp_pff_cifar10", 1.0, "MLP on the same images"),
    ("rff_readme_claim", 5.0, "3 x 2000 recurrent FF, several time steps per batch"),
    ("bp_rff_2000x3", 1.0, "3 x 2000 MLP"),
    ("uff_paper", 3.0, "4 x 2000 unsupervised FF + linear read-out: about the Hinton 4 x 2000 cost"),
    ("bp_uff_2000x4", 2.0, "4 x 2000 MLP, as bp_hinton_4x2000"),
    ("ff_extension_2000x2000", 0.05, "full batch: one step per epoch, 2 x 1000 steps of 2 x 50 000 vectors"),
)
BUDGET_SWEEPS = ("octopus_a1_num_arms", "octopus_a2_bottleneck", "octopus_a8_nerve_ring",
                 "octopus_a10_competition", "octopus_a6_resilience")
P3_SWEEPS = ("octopus_a15b_sff", "octopus_a18b_resilience", "octopus_a6b_resilience", "octopus_a21_resilience",
             "bp_cnn_block_failure")
CONCURRENCY = (1, 2, 4, 8)
#: how the queue's comparison runs use the GPU: fp32 with PyTorch's defaults, and the per-epoch test curve
GPU_FP32 = ("trainer.accelerator=gpu", "track_test=true")


@dataclass(frozen=True)
class Job:
    """One ``octo.train -m`` command making one run folder under ``<runs>/<sweep>/``.

    ``args`` are the exact overrides (without ``-m``, ``sweep_name`` and paths); ``kind`` is ``train``, or
    ``bench`` for the reference-run benchmark (``octo.bench``), which leaves no run folder of its own.
    """

    sweep: str
    args: tuple[str, ...]
    epochs: int
    s_per_epoch: float
    basis: str
    kind: str = "train"
    #: jobs of one piece with the same ``together`` tag start at the same moment (the concurrency measurement)
    together: str | None = None

    @property
    def est_s(self) -> float:
        return JOB_OVERHEAD_S + self.epochs * self.s_per_epoch

    @property
    def identity(self) -> dict[str, object]:
        """The overrides that say what is trained: the runs.csv columns a finished row of this job matches."""
        ident = {}
        for arg in self.args:
            key, _, value = arg.lstrip("+").partition("=")
            if not key.startswith(COSMETIC):
                ident[key] = parse_scalar(value)
        return ident

    def command(self) -> str:
        if self.kind == "bench":
            return "python -m octo.bench " + " ".join(self.args)
        return f"python -m octo.train -m {' '.join(self.args)} sweep_name={self.sweep}"


@dataclass
class Piece:
    """A named set of jobs, at most :data:`PIECE_SECONDS` estimated (one job at a time)."""

    id: str
    title: str
    jobs: list[Job]
    done: list[bool] = field(default_factory=list)

    @property
    def est_s(self) -> float:
        """Estimated seconds of the pending jobs, one at a time; a ``together`` group counts as its longest job."""
        groups: dict[str, float] = {}
        alone = 0.0
        for job in self.pending:
            if job.together:
                groups[job.together] = max(groups.get(job.together, 0.0), job.est_s)
            else:
                alone += job.est_s
        return alone + sum(groups.values())

    @property
    def pending(self) -> list[Job]:
        return [j for j, d in zip(self.jobs, self.done or [False] * len(self.jobs)) if not d]


# --- measured speeds ------------------------------------------------------------------------------------------
def speeds_path(results: Path) -> Path:
    return results / "gpu" / "speeds.csv"


def measured_speeds(results: Path) -> dict[str, float]:
    """``{sweep_name: median s/epoch}`` measured on a GPU (written by ``octo.gpu land``)."""
    path = speeds_path(results)
    if not path.exists():
        return {}
    df = pd.read_csv(path)
    return {str(k): float(v) for k, v in df.groupby("sweep")["s_per_epoch"].median().items()}


@functools.cache
def _experiment_epochs(experiment: str) -> int:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    os.environ.setdefault("OCTO_ROOT", str(REPO))
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=[f"experiments={experiment}"])
    finally:
        GlobalHydra.instance().clear()
    return int(cfg.trainer.max_epochs)


# --- the queue ------------------------------------------------------------------------------------------------
def _speed(sweep_name: str, target: float, basis: str, measured: dict[str, float],
           octopus: bool) -> tuple[float, str]:
    """Measured s/epoch of this sweep if any; else the target, scaled by FF-standard's measured/target ratio for
    OctopusNet sweeps once FF-standard has been measured."""
    if sweep_name in measured:
        return measured[sweep_name], "measured on a GPU"
    anchor = measured.get("octopus_ff_standard_fp32")
    if octopus and anchor:
        return target * anchor / FF_STANDARD_TARGET_S, f"{basis}; scaled by FF-standard measured {anchor:.2f} s"
    return target, f"estimate: {basis}"


def _sweep_piece_jobs(name: str, measured: dict[str, float], epochs: int | None = None,
                      suffix: str = "") -> list[Job]:
    """The jobs of ``sweeps/<name>.yaml``, one per cell and seed, on the GPU in fp32 with the test curve.

    fp32 (PyTorch's defaults), because these runs are compared with published fp32 numbers and no measurement yet
    shows that bf16 gives the same accuracy (P0a puts the two side by side); the test curve gives the best and
    final epochs beside the validation-selected number, as the published tables report them."""
    sweep = next(s for s in SWEEPS if s.name == name)
    jobs = []
    for j in sweep_jobs(name):
        target = seconds_per_epoch(sweep, j)
        sweep_name = name + suffix
        spe, basis = _speed(sweep_name, target, sweep.speed_note, measured, sweep.family == "octopus")
        args = [f"sweeps={name}", *GPU_FP32, *(f"{k}={v}" for k, v in j.values.items())]
        if epochs is not None:
            args.append(f"trainer.max_epochs={epochs}")
        jobs.append(Job(sweep_name, tuple(args), epochs or j.epochs, spe, basis))
    return jobs


def _pack(prefix: str, title: str, jobs: list[Job], first: int = 1) -> list[Piece]:
    """Consecutive jobs packed into pieces of at most PIECE_SECONDS (a longer job is a piece of its own)."""
    pieces: list[Piece] = []
    current: list[Job] = []
    for job in jobs:
        if current and sum(j.est_s for j in current) + job.est_s > PIECE_SECONDS:
            pieces.append(Piece("", title, current))
            current = []
        current.append(job)
    if current:
        pieces.append(Piece("", title, current))
    for i, p in enumerate(pieces):
        p.id = prefix if len(pieces) == 1 and first == 1 else f"{prefix}.{i + first}"
    return pieces


def p0_jobs(measured: dict[str, float]) -> tuple[list[Job], list[Job]]:
    """First contact: anchors and speed (P0a), and the concurrency measurement (P0b)."""
    ff = "experiments=octopus_ff_standard"
    fp32 = "octopus_ff_standard_fp32"
    bf16 = "octopus_ff_standard_bf16"
    s32, b32 = _speed(fp32, FF_STANDARD_TARGET_S, "FF-standard target", measured, False)
    s16, b16 = _speed(bf16, FF_STANDARD_TARGET_S, "FF-standard target", measured, False)
    anchors = [
        # the published anchor is fp32 with PyTorch's defaults: trainer.precision=32-true, matmul "highest"
        Job(fp32, (ff, "trainer.accelerator=gpu", "trainer.precision=32-true", "trainer.max_epochs=10",
                   "faithful_eval=true", "seed=0"), 10, s32, b32),
        Job(bf16, (ff, "trainer=gpu", "trainer.max_epochs=3", "faithful_eval=true", "seed=0"), 3, s16, b16),
        Job("bench", ("--device", "cuda", "--reference-run", "--note", "octo.gpu P0 (reference FF run, fp32)"),
            0, 0.0, "the public code's reference run takes 25.3 s on an H100", kind="bench"),
    ]
    conc = [Job("gpu_concurrency", (ff, "trainer.accelerator=gpu", "trainer.max_epochs=2", f"+gpu_k={k}",
                                    f"seed={i}"), 2, s32 * k, f"{b32}; k jobs share the GPU", together=f"k{k}")
            for k in CONCURRENCY for i in range(k)]
    return anchors, conc


def build_queue(results: Path | None = None) -> list[Piece]:
    """Every piece, in order, with its done flags derived from the committed runs.csv files."""
    results = Path(results or REPO / "results")
    measured = measured_speeds(results)
    anchors, conc = p0_jobs(measured)
    pieces = [Piece("P0a", "first contact: FF-standard fp32 10 ep (anchor) and bf16 3 ep, reference FF run",
                    anchors),
              Piece("P0b", "aggregate throughput of k = 1, 2, 4, 8 concurrent FF-standard jobs (2 epochs)", conc)]
    a21b = _sweep_piece_jobs("octopus_a21b_resilience", measured)
    pieces += [Piece("P1.1", "A21b 30 epochs, seed 0 (headline 68.65 %, resilience)", a21b[:1]),
               *_pack("P1", "A21b 30 epochs, seeds 1-2", a21b[1:], first=2)]
    for name in BUDGET_SWEEPS:
        epochs = None if name == "octopus_a10_competition" else 10  # A10's published budget is 5 epochs
        suffix = "" if epochs is None else "_10ep"
        title = f"P2 {name} at " + ("its published 5 epochs" if epochs is None else "a budget of 10 epochs")
        pieces += _pack(f"P2.{name.split('_')[1]}", title, _sweep_piece_jobs(name, measured, epochs, suffix))
    for name in P3_SWEEPS:
        pieces += _pack(f"P3.{name.split('_')[1]}", f"P3 {name} at its published budget",
                        _sweep_piece_jobs(name, measured))
    other = []
    for experiment, target, basis in OTHER_ROWS:
        spe, why = _speed(experiment, target, basis, measured, False)
        other.append(Job(experiment, (f"experiments={experiment}", *GPU_FP32, "seed=0"),
                         _experiment_epochs(experiment), spe, why))
    pieces += _pack("P4", "other algorithms' GPU rows (seed 0)", other)
    done_sweeps = {"octopus_a21b_resilience", *P3_SWEEPS}
    for s in SWEEPS:
        if s.name not in done_sweeps:
            pieces += _pack(f"P5.{s.name.split('_')[1]}", f"P5 {s.name} at its published budget",
                            _sweep_piece_jobs(s.name, measured))
    for p in pieces:
        p.done = [job_done(j, results) for j in p.jobs]
    return pieces


# --- done or pending --------------------------------------------------------------------------------------------
@functools.cache
def _runs(path: Path, mtime: float) -> pd.DataFrame:
    return read_runs_csv(path)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return str(parse_scalar(str(a))) == str(b) or a == b


def job_done(job: Job, results: Path) -> bool:
    """True when ``results/<sweep>/runs.csv`` has an ``ok`` row matching every identity override of ``job``.
    The reference-run benchmark is done when a GPU bench record with a reference run exists."""
    if job.kind == "bench":
        return bool(reference_bench_rows(results))
    path = results / job.sweep / "runs.csv"
    if not path.exists() or not path.stat().st_size:
        return False
    df = _runs(path, path.stat().st_mtime)
    if "status" not in df.columns:
        return False
    ok = df[df["status"] == "ok"]
    for key, value in job.identity.items():
        if key not in ok.columns:
            return False
        ok = ok[ok[key].map(lambda v, want=value: _same(v, want))]
    return not ok.empty


def reference_bench_rows(results: Path) -> list[dict]:
    """GPU bench records that include the reference FF run (results/bench/*.json)."""
    import json

    rows = []
    for path in sorted((results / "bench").glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except ValueError:
            continue
        if "reference_run" in record and "cuda" in str(record.get("versions", {})).lower() \
                and "CPU" not in str(record.get("device", "")):
            rows.append(record)
    return rows


def status_markdown(pieces: Sequence[Piece]) -> str:
    """The queue as a Markdown table: piece, what, jobs done / all, estimated GPU-minutes left, basis."""
    lines = ["| piece | what | jobs done | est. GPU-min left | estimate basis |", "|---|---|---|---|---|"]
    for p in pieces:
        bases = sorted({j.basis for j in p.jobs})
        lines.append(f"| {p.id} | {p.title} | {sum(p.done)}/{len(p.jobs)} | {p.est_s / 60:.1f} | "
                     f"{'; '.join(bases)} |")
    total = sum(p.est_s for p in pieces)
    lines.append(f"| **total** | | {sum(sum(p.done) for p in pieces)}/{sum(len(p.jobs) for p in pieces)} | "
                 f"**{total / 60:.0f}** | one job at a time; start-up {JOB_OVERHEAD_S:.0f} s per job |")
    return "\n".join(lines)


def median_epoch_seconds(values) -> float | None:
    """Median of the epochs after the first (warm-up) of a ``train_epoch_seconds`` list."""
    seconds = [float(v) for v in values or []]
    steady = seconds[1:] or seconds
    return statistics.median(steady) if steady else None
