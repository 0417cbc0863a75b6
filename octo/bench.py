"""Throughput benchmark: training images/s of FF and BP on the same MLP, measured in one process on one device;
optionally the seconds per epoch of whole training recipes (``--recipes``) and the reference FF run.

Usage: ``python -m octo.bench [--hidden 2000 2000 2000 2000] [--batch 100] [--steps 50] [--device cuda]``
``[--recipes octopus_ff_standard octopus_sff bp_cnn_cifar10 --recipe-epochs 3] [--reference-run]`` (``make bench``).
Ratios against the BP baseline measured in the same run are the numbers to compare across machines; absolute
images/s depend on the device, which is recorded. Writes ``results/bench/<device>.json`` and appends to
``results/bench/README.md``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import torch

from octo.algorithms.bp import BP
from octo.algorithms.ff import FF
from octo.nn.mlp import MLP
from octo.training.module import LocalLearningModule
from octo.training.schedules import Schedule, Simultaneous
from octo.utils.errors import RunInterrupted
from octo.utils.files import write_json_atomic
from octo.utils.procs import Children
from octo.utils.provenance import device_name, git_commit, versions


def training_module(algorithm, optimizer: Callable | None = None, schedule: Schedule | None = None
                    ) -> tuple[LocalLearningModule, list]:
    """The :class:`LocalLearningModule` that ``octo.train`` would build around ``algorithm`` (default: Adam
    lr 1e-3, simultaneous schedule, joint layout) and its optimisers, to be stepped without a Trainer."""
    module = LocalLearningModule(algorithm, schedule or Simultaneous(optimizer_layout="joint"),
                                 optimizer or partial(torch.optim.Adam, lr=1e-3))
    opts = module.configure_optimizers()  # no scheduler factory: the list of optimisers
    return module, opts


def images_per_second(algorithm, x, y, batch: int, steps: int, warmup: int = 3) -> float:
    """Training images/s over ``steps`` batches (after ``warmup``), data already on the device: each batch is
    stepped by :meth:`LocalLearningModule.train_batch`, the stepping of a real training run."""
    module, opts = training_module(algorithm)
    phase = algorithm.phases[0]
    n = x.shape[0]
    idx = torch.randint(0, n - batch, (warmup + steps,)).tolist()
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for i in idx[:warmup]:
        module.train_batch(x[i:i + batch], y[i:i + batch], phase, opts)
    sync()
    t0 = time.perf_counter()
    for i in idx[warmup:]:
        module.train_batch(x[i:i + batch], y[i:i + batch], phase, opts)
    sync()
    return steps * batch / (time.perf_counter() - t0)


def train_in_subprocess(overrides: list[str], device: str, tag: str, children: Children
                        ) -> tuple[dict | None, float, Path, int]:
    """``python -m octo.train <overrides>`` as a user runs it, in a fresh temporary folder, without a logger.

    The child runs under ``children`` (signals forwarded, nothing orphaned). Returns ``(metrics.json or None if
    the run left none, wall seconds of the whole process, run folder, exit code)``; a run stopped by a signal
    leaves its metrics with status ``timeout`` and the epochs it finished.
    """
    import json
    import sys
    import tempfile

    out = Path(tempfile.mkdtemp(prefix=f"octo_bench_{tag}_"))
    accel = "gpu" if device.startswith("cuda") else "cpu"
    cmd = [sys.executable, "-m", "octo.train", *overrides, f"trainer.accelerator={accel}", "logger=none",
           "trainer.enable_progress_bar=false", f"hydra.run.dir={out}"]
    child = children.start(tag, cmd)
    rc = children.wait(child)
    metrics_path = out / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else None
    return metrics, child.seconds, out, rc


def reference_run(device: str, children: Children, overrides: list[str] | None = None) -> dict:
    """Whole-process time and test error of ``python -m octo.train experiments=ff_reference`` (data loading,
    training, validation every 100 steps and the final test included), as the public code's 25.3 s was measured.
    ``overrides`` are for rehearsals (the GPU queue's dry run); a timing made with them is not the reference's."""
    metrics, wall, out, rc = train_in_subprocess(["experiments=ff_reference", *(overrides or [])], device, "ref",
                                                 children)
    if metrics is None or metrics.get("status") != "ok":
        return {"failed": f"exit {rc}", "status": (metrics or {}).get("status", "failed"), "wall_time_s": wall,
                "run_dir": out.name}
    return {"status": "ok", "wall_time_s": wall, "test_error": 1 - metrics["test/acc"], "run_dir": out.name}


def recipe_epochs(experiment: str, epochs: int, device: str, overrides: list[str], children: Children) -> dict:
    """Train ``experiments=<experiment>`` for ``epochs`` epochs in a subprocess, as a user would.

    The s/epoch is the median training time (validation excluded, ``metrics.json["train_epoch_seconds"]``) of
    the epochs after the first, which pays for cuDNN autotuning and allocator warm-up. The run's accuracies come
    with it: a speed-up that loses accuracy shows in the same record. A run stopped by a signal still gives the
    epochs it finished (status ``timeout``).
    """
    import statistics

    m, wall, out, rc = train_in_subprocess([f"experiments={experiment}", f"trainer.max_epochs={epochs}",
                                            *overrides], device, experiment, children)
    row = {"experiment": experiment, "overrides": overrides, "epochs": epochs, "wall_time_s": wall,
           "run_dir": out.name, "status": (m or {}).get("status", "failed"), "s_per_epoch_median": None}
    seconds = (m or {}).get("train_epoch_seconds") or []
    steady = seconds[1:] or seconds
    if m is None or not seconds:  # one failed recipe must not lose the others' numbers
        cause = (m or {}).get("failure")
        row["failed"] = f"exit {rc}" + (f": {cause}" if cause else "") if rc else "no epoch finished"
        return row
    row.update({"epoch_seconds": seconds, "epochs_done": m.get("epochs"),
                "s_per_epoch_median": statistics.median(steady),
                "train_images_per_s": m.get("train_images_per_s"), "val_acc_best": m.get("val/acc_best"),
                "test_acc": m.get("test/acc")})
    return row


def _readme_line(record: dict, r: dict) -> str:
    if r["s_per_epoch_median"] is None:
        return (f"| {record['time']} | {record['device']} | recipe `{r['experiment']}` | "
                f"{r.get('failed', 'no epoch ran')} | | | | {record['commit']} | {record['note']} |\n")
    cut_short = "" if r["status"] == "ok" else f" ({r['status']} after {r['epochs_done']})"
    return (f"| {record['time']} | {record['device']} | recipe `{r['experiment']}` "
            f"{' '.join(r['overrides'])} | {r['epochs']} epochs{cut_short} | **{r['s_per_epoch_median']:.2f} "
            f"s/epoch** (median after the first) | {r['train_images_per_s']:.0f} img/s | val acc "
            f"{r['val_acc_best']} | {record['commit']} | {record['note']} |\n")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[500, 500])
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default="results/bench")
    p.add_argument("--note", default="", help="e.g. 'CPU shared with other jobs'")
    p.add_argument("--reference-run", action="store_true",
                   help="also time the whole reference FF configuration (experiments=ff_reference; 25.3 s for the "
                        "public code on an H100, hours on a 2-core CPU)")
    p.add_argument("--reference-args", nargs="*", default=[], metavar="OVERRIDE",
                   help="Hydra overrides for the reference run (rehearsals only: the timing is then not the "
                        "reference configuration's)")
    p.add_argument("--recipes", nargs="+", default=[], metavar="EXPERIMENT",
                   help="also time whole recipes (experiments/<name>.yaml) for --recipe-epochs epochs each, e.g. "
                        "octopus_ff_standard octopus_sff (published: 15.9 / 26.7 s per epoch on an H100)")
    p.add_argument("--recipe-epochs", type=int, default=3, help="epochs per recipe (the first is warm-up)")
    p.add_argument("--recipe-args", nargs="*", default=[], metavar="OVERRIDE",
                   help="Hydra overrides for every recipe, e.g. dataset.train_subset=5000 on a CPU")
    args = p.parse_args(argv)
    with Children() as children:
        return _run(args, children)


def _run(args, children: Children) -> dict:
    """Measure, writing the JSON record and the README line of each part as soon as it is measured, so that a
    time limit keeps everything measured before it; a signal is forwarded to the running child, whose finished
    epochs are recorded, and then ends the benchmark with exit code 5."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    out = Path(args.out)
    record = {
        "what": "training images/s, joint optimiser, data on device, same MLP",
        "hidden": args.hidden, "batch": args.batch, "steps": args.steps,
        "device": device_name(device), "commit": git_commit(), "versions": versions(),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "note": args.note, "status": "running",
    }
    slug = record["device"].split("(")[0].strip().replace(" ", "_").lower()
    path = out / f"mlp_{slug}_{'x'.join(map(str, args.hidden))}.json"
    readme = out / "README.md"
    if not readme.exists():
        out.mkdir(parents=True, exist_ok=True)
        readme.write_text("# Benchmarks\n\nTraining images/s (`python -m octo.bench`), data on the device, joint "
                          "optimiser; FF processes a positive and a negative per image.\n\n"
                          "| time (UTC) | device | MLP hidden | batch | BP img/s | FF img/s | FF/BP | commit | note |\n"
                          "|---|---|---|---|---|---|---|---|---|\n")

    def stopped() -> bool:
        if children.received:
            record["status"] = f"timeout ({children.received})"
            write_json_atomic(path, record)
        return bool(children.received)

    # MNIST-shaped random data: throughput does not depend on pixel values
    x = torch.randn(20 * args.batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (x.shape[0],), device=device)
    results = {}
    for name, cls in (("bp", BP), ("ff", FF)):
        algo = cls(MLP([1, 28, 28], args.hidden), num_classes=10).to(device)
        results[name] = images_per_second(algo, x, y, args.batch, args.steps)
    record.update({"bp_images_per_s": results["bp"], "ff_images_per_s": results["ff"],
                   "ff_over_bp": results["ff"] / results["bp"]})
    write_json_atomic(path, record)
    with readme.open("a") as f:
        f.write(f"| {record['time']} | {record['device']} | {args.hidden} | {args.batch} | {results['bp']:.0f} | "
                f"{results['ff']:.0f} | {record['ff_over_bp']:.2f} | {record['commit']} | {args.note} |\n")
    print(f"octo.bench: BP {results['bp']:.0f} img/s, FF {results['ff']:.0f} img/s, FF/BP "
          f"{record['ff_over_bp']:.2f} on {record['device']} -> {readme}")
    if args.reference_run and not stopped():
        record["reference_run"] = {**reference_run(args.device, children, list(args.reference_args)),
                                   "overrides": list(args.reference_args)}
        write_json_atomic(path, record)
    for experiment in args.recipes:
        if stopped():
            break
        r = recipe_epochs(experiment, args.recipe_epochs, args.device, list(args.recipe_args), children)
        record.setdefault("recipes", []).append(r)
        write_json_atomic(path, record)
        with readme.open("a") as f:
            f.write(_readme_line(record, r))
        if r["s_per_epoch_median"] is None:
            print(f"octo.bench: {r['experiment']}: {r.get('failed', 'no epoch ran')} (see the folder {r['run_dir']} "
                  "in the temporary directory)")
        else:
            print(f"octo.bench: {r['experiment']}: {r['s_per_epoch_median']:.2f} s/epoch, "
                  f"{r['train_images_per_s']:.0f} img/s, val acc {r['val_acc_best']} ({r['status']})")
    if stopped():
        raise SystemExit(RunInterrupted.exit_code)
    record["status"] = "ok"
    write_json_atomic(path, record)
    return record


if __name__ == "__main__":
    main()
