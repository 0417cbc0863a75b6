"""``python -m octo.gpu next``: run the queue's next pending pieces within a time budget, k jobs at a time.

On the GPU machine (``make gpu-next OUT=$OUT BUDGET_S=540``):

1. checks the environment and the data, and fails in seconds with one line if something is missing;
2. decodes each data set the chosen jobs need once into the cache, so concurrent jobs only read it;
3. runs the pending pieces that fit the budget, in queue order, ``k`` jobs at a time on the one GPU, each job
   with its own time limit (a stuck job cannot eat the call) and ``num_threads`` = cores / k;
4. packs everything but checkpoints of the jobs it ran (runs.csv rows, metrics.json, curves, configs, bench
   records, logs) into ``OUT/<date>-<pieces>.tgz`` plus ``OUT/summary.json`` and ``OUT/runner.log``.

``--dry`` runs the same command lines on the CPU with tiny overrides (1 epoch of a few batches, one validation
and test batch, accelerator cpu, the job's own precision, every phase exercised), one job per distinct command
shape, so a typo, a config key, a path or a dtype fails here and not on a lent GPU. A dry archive says so, and
``octo.gpu land`` refuses it.

A SIGTERM / SIGINT to the runner (its own time limit) is forwarded to the running jobs, which record what they
finished (status ``timeout``); the runner still packs everything and exits 5.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from octo.gpu.queue import REPO, Job, Piece, build_queue
from octo.utils.procs import Child, Children
from octo.utils.provenance import git_commit

#: per-job limit: this many times the estimate, plus start-up slack, capped by what is left of the budget
LIMIT_FACTOR, LIMIT_SLACK_S = 3.0, 90.0
#: seconds kept at the end of the budget for packing
PACK_RESERVE_S = 20.0
#: a dry job that takes longer than this is stuck (tiny overrides: it should take seconds)
DRY_LIMIT_S = 600.0
#: tiny overrides of a dry run: every phase gets a batch (the loader shares limited batches over the phases)
DRY_LIMITS = ("trainer.accelerator=cpu", "trainer.devices=1", "trainer.max_epochs=1",
              "trainer.limit_train_batches=4", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
              "trainer.check_val_every_n_epoch=1")
#: small batches too: an OctopusNet batch of 1000 images x 10 labels takes minutes on a CPU (full-batch recipes
#: such as the reference FF run keep their batch: they run through the bench, with DRY_LIMITS only)
DRY_TRAIN = (*DRY_LIMITS, "dataset.batch_size=16", "dataset.eval_batch_size=16")
DRY_BENCH = ("--device", "cpu", "--hidden", "16", "--batch", "8", "--steps", "2", "--reference-args",
             *DRY_LIMITS)


def log(message: str, sink: list[str]) -> None:
    line = f"[{datetime.now(UTC).strftime('%H:%M:%S')}] {message}"
    sink.append(line)
    print(f"octo.gpu: {message}", flush=True)


# --- environment ------------------------------------------------------------------------------------------------
def environment(dry: bool, data_dir: Path) -> tuple[dict, str | None]:
    """``(report, None)`` or ``(report, one-line problem)``: libraries, CUDA, GPU, the data files."""
    report: dict = {"python": sys.version.split()[0], "dry": dry}
    for name in ("torch", "lightning", "hydra", "omegaconf", "pandas"):
        try:
            module = __import__(name)
            report[name] = getattr(module, "__version__", "?")
        except ImportError:
            return report, (f"{name} is not importable: on the GPU machine install the carried wheels "
                            "(make gpu-next does it from .whl/) or pip install -e .")
    import torch

    report["cuda_available"] = torch.cuda.is_available()
    report["cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name(0)
        report["gpu_count"] = torch.cuda.device_count()
    elif not dry:
        return report, "no CUDA device is visible to torch: run with --dry on a CPU machine"
    report["cpus"] = os.cpu_count()
    for rel in ("mnist/train-images-idx3-ubyte.gz", "cifar10-jpeg-q75.tar.xz"):
        if not (data_dir / rel).exists():
            return report, (f"missing data file {data_dir / rel}: carry the data folder (make gpu-prepare) "
                            "and point OCTO_DATA at it")
    report["data_dir"] = str(data_dir)
    return report, None


def warm_cache(datasets: Sequence[str], data_dir: Path, cache_dir: Path, sink: list[str]) -> None:
    """Decode each data set once into the cache before jobs start, so concurrent jobs never decode it twice."""
    from octo.data.sources import load_split

    for name in datasets:
        t0 = time.perf_counter()
        for split in ("train", "test"):
            load_split(name, split, str(data_dir), str(cache_dir))
        log(f"cache ready: {name} ({time.perf_counter() - t0:.1f} s)", sink)


# --- choosing -----------------------------------------------------------------------------------------------------
def choose(pieces: Sequence[Piece], budget_s: float, only: Sequence[str] = (), dry: bool = False) -> list[Piece]:
    """Pending pieces in queue order whose estimates fit ``budget_s`` (a dry run takes every chosen piece).

    ``only`` restricts to piece ids or id prefixes (``P0``, ``P2.a1``)."""
    chosen, used = [], 0.0
    for p in pieces:
        if only and not any(p.id == o or p.id.startswith(o + ".") or p.id.startswith(o) for o in only):
            continue
        if not p.pending:
            continue
        if dry:
            chosen.append(p)
            continue
        if used + p.est_s > budget_s - PACK_RESERVE_S:
            if chosen:
                break
            if p.est_s > budget_s:  # nothing fits: a later call with a larger budget takes it
                break
        chosen.append(p)
        used += p.est_s
    return chosen


def dry_shape(job: Job) -> tuple:
    """Jobs that differ only in seed or swept values run the same code: a dry run needs one of each shape."""
    keys = tuple(sorted(a.split("=", 1)[0] for a in job.args if not a.startswith(("seed=", "+gpu_k="))))
    values = tuple(a for a in job.args if a.startswith(("sweeps=", "experiments=", "trainer=", "trainer.prec")))
    return job.kind, job.sweep.removesuffix("_10ep"), keys, values


# --- running ------------------------------------------------------------------------------------------------------
def job_command(job: Job, runs: Path, threads: int, dry: bool) -> list[str]:
    if job.kind == "bench":
        args = list(job.args)
        if dry:
            args = [a for a in args if a not in ("--device", "cuda")] + list(DRY_BENCH)
        return [sys.executable, "-m", "octo.bench", *args, "--out", str(runs / "bench")]
    extra = list(DRY_TRAIN) if dry else []
    return [sys.executable, "-m", "octo.train", "-m", *job.args, f"sweep_name={job.sweep}", f"paths.runs_dir={runs}",
            f"num_threads={threads}", "trainer.enable_progress_bar=false", *extra]


def run_jobs(jobs: list[tuple[str, Job]], runs: Path, k: int, deadline: float, dry: bool,
             sink: list[str]) -> list[dict]:
    """Run ``(piece id, job)`` pairs, at most ``k`` at a time; jobs sharing a ``together`` tag start together
    after the GPU is free. Returns one record per job that started."""
    threads = max(1, (os.cpu_count() or 2) // max(1, k))
    env = {**os.environ, "OCTO_ROOT": str(REPO), "OMP_NUM_THREADS": str(threads)}
    logs = runs / "_logs"
    logs.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    todo = list(jobs)
    with Children() as children:
        running: list[tuple[Child, dict]] = []

        def finish(child: Child, rec: dict) -> None:
            rec.update(rc=child.returncode, seconds=round(child.seconds, 1), stopped_by=child.stopped_by)
            log(f"{rec['piece']} {rec['sweep']} {' '.join(rec['args'])}: exit {child.returncode} after "
                f"{child.seconds:.0f} s{' (' + child.stopped_by + ')' if child.stopped_by else ''}", sink)
            running.remove((child, rec))

        def start(piece: str, job: Job) -> None:
            left = deadline - time.perf_counter()
            limit = max(5.0, min(left, LIMIT_FACTOR * job.est_s + LIMIT_SLACK_S)) if not dry else DRY_LIMIT_S
            n = len(records)
            rec = {"piece": piece, "sweep": job.sweep, "args": list(job.args), "kind": job.kind,
                   "est_s": round(job.est_s, 1), "limit_s": limit, "log": f"_logs/{n:03d}.log",
                   "dry_args": list(DRY_TRAIN) if dry and job.kind == "train" else []}
            out = open(logs / f"{n:03d}.log", "w")  # noqa: SIM115 - closed when the child has been reaped
            child = children.start(f"{piece}#{n}", job_command(job, runs, threads, dry), limit, cwd=REPO,
                                   env=env, stdout=out, stderr=out)
            out.close()  # the child holds its own descriptor
            records.append(rec)
            running.append((child, rec))

        def drain() -> None:
            """Wait for every running job (finish() removes each from ``running``)."""
            while running:
                child, rec = running[0]
                children.wait(child)
                finish(child, rec)

        while todo and not children.received:
            if time.perf_counter() > deadline - PACK_RESERVE_S:
                log(f"budget spent: {len(todo)} job(s) not started", sink)
                break
            piece, job = todo[0]
            if job.together:
                # a concurrency group: wait for a free GPU, start the whole group, wait for it
                drain()
                group = [(p, j) for p, j in todo if j.together == job.together and p == piece]
                for p, j in group:
                    todo.remove((p, j))
                    start(p, j)
                drain()
                continue
            if len(running) >= k:
                child = children.wait_any([c for c, _ in running])
                finish(child, next(r for c, r in running if c is child))
                continue
            todo.pop(0)
            start(piece, job)
        drain()
        if children.received:
            log(f"{children.received} received: {len(todo)} job(s) not started; packing what exists", sink)
    return records


# --- packing ------------------------------------------------------------------------------------------------------
def _job_dirs(runs: Path, records: list[dict]) -> dict[str, list[Path]]:
    """``{sweep: [job folders made by this call's jobs]}`` (matched on each folder's recorded overrides)."""
    from octo.analysis.collect import find_job_dirs, read_overrides
    from octo.gpu.queue import _same

    found: dict[str, list[Path]] = {}
    for rec in records:
        if rec["kind"] != "train" or not (runs / rec["sweep"]).is_dir():
            continue
        # what the job ran: a dry run's overrides come last and win (trainer.accelerator=cpu over =gpu)
        ident = Job(rec["sweep"], (*rec["args"], *rec.get("dry_args", ())), 0, 0.0, "").identity
        for folder in find_job_dirs(runs / rec["sweep"]):
            over = read_overrides(folder / ".hydra" / "overrides.yaml")
            if all(k in over and _same(over[k], v) for k, v in ident.items()):
                found.setdefault(rec["sweep"], [])
                if folder not in found[rec["sweep"]]:
                    found[rec["sweep"]].append(folder)
    return found


def pack(out: Path, runs: Path, records: list[dict], summary: dict, sink: list[str]) -> Path:
    """``out/<date>-<pieces>.tgz`` (rows, metrics, curves, configs, bench, logs; no checkpoints) and
    ``out/summary.json``; returns the archive."""
    from octo.analysis.collect import collect

    out.mkdir(parents=True, exist_ok=True)
    pieces = "_".join(dict.fromkeys(r["piece"] for r in records)) or "none"
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M")
    archive = out / f"{stamp}-{'dry-' if summary['dry'] else ''}{pieces[:80]}.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        def add_bytes(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))

        for sweep, folders in _job_dirs(runs, records).items():
            rows = collect(runs / sweep)
            keep = {f.relative_to(runs / sweep).as_posix() for f in folders}
            rows = rows[rows["run_dir"].isin(keep)]
            add_bytes(f"rows/{sweep}.csv", rows.to_csv(index=False).encode())
            for folder in folders:
                for path in folder.rglob("*"):
                    if path.is_file() and path.suffix not in (".ckpt", ".tmp") and "wandb" not in path.parts:
                        tar.add(path, arcname=f"runs/{path.relative_to(runs).as_posix()}")
        bench = runs / "bench"
        if bench.is_dir():
            for path in bench.glob("*.json"):
                tar.add(path, arcname=f"bench/{path.name}")
            if (bench / "README.md").exists():
                tar.add(bench / "README.md", arcname="bench/README.md")
        for rec in records:
            if (runs / rec["log"]).exists():
                tar.add(runs / rec["log"], arcname=f"logs/{Path(rec['log']).name}")
        summary["archive"] = archive.name
        add_bytes("summary.json", json.dumps(summary, indent=2, default=str).encode())
        add_bytes("runner.log", ("\n".join(sink) + "\n").encode())
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return archive


# --- the command --------------------------------------------------------------------------------------------------
def next_call(out: Path, budget_s: float, dry: bool = False, k: int | None = None, only: Sequence[str] = (),
              runs: Path | None = None, data_dir: Path | None = None, cache_dir: Path | None = None) -> int:
    t0 = time.perf_counter()
    deadline = t0 + budget_s if not dry else float("inf")  # a dry run checks every command, whatever it takes
    sink: list[str] = []
    data_dir = Path(data_dir or os.environ.get("OCTO_DATA", REPO.parent / "shared" / "data"))
    cache_dir = Path(cache_dir or os.environ.get("OCTO_CACHE", REPO / ".cache"))
    os.environ.setdefault("OCTO_CACHE", str(cache_dir))
    runs = Path(runs or REPO / "results" / "runs" / ("_gpu_dry" if dry else "_gpu"))
    env, problem = environment(dry, data_dir)
    summary = {"dry": dry, "env": env, "commit": git_commit(), "budget_s": budget_s,
               "time": datetime.now(UTC).isoformat(timespec="seconds"), "k": None, "jobs": []}
    if problem:
        print(f"octo.gpu: error: {problem}", file=sys.stderr)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps({**summary, "error": problem}, indent=2) + "\n")
        return 3
    log(f"environment: {json.dumps(env)}", sink)
    pieces = choose(build_queue(), budget_s, only, dry)
    jobs = [(p.id, j) for p in pieces for j in p.pending]
    if dry:  # one job per distinct command shape
        seen, unique = set(), []
        for pid, j in jobs:
            if dry_shape(j) not in seen:
                seen.add(dry_shape(j))
                unique.append((pid, j))
        jobs = unique
    if not jobs:
        log("nothing pending fits the budget", sink)
    k = k or (1 if dry else 4)
    summary["k"] = k
    summary["pieces"] = [{"id": p.id, "title": p.title, "est_s": round(p.est_s, 1), "jobs": len(p.pending)}
                         for p in pieces]
    log(f"{len(pieces)} piece(s), {len(jobs)} job(s), k = {k}: {', '.join(p.id for p in pieces)}", sink)
    needed = ["mnist", "cifar10"] if jobs else []
    try:
        warm_cache(needed, data_dir, cache_dir, sink)
    except Exception as err:  # noqa: BLE001 - a broken data file must fail in seconds, with one line
        print(f"octo.gpu: error: cannot decode the data: {err}", file=sys.stderr)
        return 3
    records = run_jobs(jobs, runs, k, deadline, dry, sink)
    summary["jobs"] = records
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    archive = pack(out, runs, records, summary, sink)
    failed = [r for r in records if r["rc"] not in (0, None)]
    log(f"packed {archive} ({len(records)} job(s), {len(failed)} non-zero)", sink)
    (out / "runner.log").write_text("\n".join(sink) + "\n")
    if any(r.get("stopped_by") not in (None, "limit") for r in records):
        return 5
    return 1 if failed else 0


def job_dicts(jobs: Sequence[Job]) -> list[dict]:
    return [asdict(j) for j in jobs]
