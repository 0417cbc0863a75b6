"""``python -m octo.gpu land [ARCHIVE ...]``: merge what a GPU call measured into the committed results.

For each archive made by ``octo.gpu next`` (default: every ``*.tgz`` in ``../shared/gpu-results/`` not landed
yet):

- refuses a dry archive (CPU smoke numbers must never enter a results table);
- merges its runs.csv rows into ``results/<sweep>/runs.csv`` (keyed by run folder, so landing twice changes
  nothing) and re-renders that sweep's table and figure, and the OctopusNet study tables;
- copies its bench records into ``results/bench/`` and its bench README lines into ``results/bench/README.md``;
- appends the measured seconds per epoch to ``results/gpu/speeds.csv`` (the queue's estimates use them) and the
  concurrency measurement to ``results/bench/concurrency.csv``;
- records the archive (name, SHA-256, device, commit, pieces) in ``results/gpu/landed.csv`` and rewrites the
  queue's status, ``results/gpu/queue.md``.

Then commit ``results/``.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from octo.gpu.queue import REPO, build_queue, median_epoch_seconds, status_markdown
from octo.utils.files import write_text_atomic

SHARED_RESULTS = REPO.parent / "shared" / "gpu-results"


class LandError(Exception):
    """An archive that must not be landed (dry, unreadable); the message is the one line shown."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    if member is None:
        raise LandError(f"{name} is not a file in the archive")
    return member.read()


def _append_csv(path: Path, rows: pd.DataFrame, key: Sequence[str]) -> None:
    """Append ``rows`` to ``path``, keeping one row per ``key`` (the newest)."""
    old = pd.read_csv(path) if path.exists() and path.stat().st_size else pd.DataFrame()
    both = pd.concat([old, rows], ignore_index=True).drop_duplicates(subset=list(key), keep="last")
    write_text_atomic(path, both.to_csv(index=False))


def render_sweep(runs_csv: Path) -> None:
    """``table.md`` and ``figure.png`` beside a runs.csv, from the file alone."""
    from octo.analysis.collect import read_runs_csv
    from octo.analysis.plots import sweep_figure
    from octo.analysis.tables import default_keys, render_markdown, scaled_title, summarize

    df = read_runs_csv(runs_csv)
    keys = default_keys(df)
    title = scaled_title(runs_csv.parent.name, df)
    note = f"Runs: {runs_csv.name} (landed from GPU archives; see ../gpu/landed.csv)."
    text = render_markdown(summarize(df, keys, "test/acc"), title, [note])
    write_text_atomic(runs_csv.parent / "table.md", text)
    sweep_figure(df, keys, "test/acc", runs_csv.parent / "figure.png", title=title)


def speeds_rows(rows: pd.DataFrame, archive: str) -> pd.DataFrame:
    """One row per finished run with epoch timings: sweep, run, median s/epoch after the first, precision."""
    out = []
    for _, r in rows.iterrows():
        seconds = r.get("train_epoch_seconds")
        values = json.loads(seconds) if isinstance(seconds, str) and seconds.startswith("[") else None
        median = median_epoch_seconds(values)
        if median is None:
            continue
        out.append({"sweep": r.get("sweep_name"), "run_dir": r.get("run_dir"), "s_per_epoch": median,
                    "epochs": r.get("epochs"), "precision": r.get("trainer.precision", r.get("trainer")),
                    "device": r.get("device"), "commit": r.get("commit"), "archive": archive})
    return pd.DataFrame(out)


def concurrency_rows(rows: pd.DataFrame, archive: str) -> pd.DataFrame:
    """Aggregate training images/s of k concurrent FF-standard jobs (sum over the k jobs), and its ratio to k=1."""
    if "gpu_k" not in rows.columns or rows.empty:
        return pd.DataFrame()
    ok = rows[rows["status"] == "ok"]
    out = []
    for k, group in ok.groupby("gpu_k"):
        med = [median_epoch_seconds(json.loads(s)) for s in group["train_epoch_seconds"] if isinstance(s, str)]
        out.append({"k": int(k), "jobs_ok": len(group), "aggregate_images_per_s": group["train_images_per_s"].sum(),
                    "per_job_s_per_epoch_median": pd.Series([m for m in med if m]).median(),
                    "device": group["device"].iloc[0], "commit": group["commit"].iloc[0], "archive": archive})
    df = pd.DataFrame(out).sort_values("k")
    one = df.loc[df["k"] == 1, "aggregate_images_per_s"]
    df["over_k1"] = df["aggregate_images_per_s"] / float(one.iloc[0]) if len(one) else float("nan")
    return df


def land(archive: Path, results: Path | None = None) -> str:
    """Land one archive; returns a one-line report. Raises :class:`LandError` for a dry or broken one."""
    results = Path(results or REPO / "results")
    landed_csv = results / "gpu" / "landed.csv"
    sha = _sha256(archive)
    if landed_csv.exists() and sha in set(pd.read_csv(landed_csv)["sha256"]):
        return f"{archive.name}: already landed, nothing changed"
    try:
        tar = tarfile.open(archive, "r:gz")  # noqa: SIM115 - used as a context manager just below
    except (tarfile.TarError, OSError) as err:
        raise LandError(f"{archive}: not a readable .tgz ({err})") from None
    with tar:
        names = tar.getnames()
        if "summary.json" not in names:
            raise LandError(f"{archive}: no summary.json, so not an octo.gpu archive")
        summary = json.loads(_read(tar, "summary.json"))
        if summary.get("dry"):
            raise LandError(f"{archive}: a dry run (CPU, tiny overrides): its numbers must not enter results/")
        if not summary.get("env", {}).get("cuda_available"):
            raise LandError(f"{archive}: made without a visible GPU, so not a GPU measurement")
        swept = []
        for name in sorted(n for n in names if n.startswith("rows/") and n.endswith(".csv")):
            rows = pd.read_csv(io.BytesIO(_read(tar, name)))
            if rows.empty:
                continue
            sweep = Path(name).stem
            from octo.analysis.tables import merge_runs

            target = results / sweep / "runs.csv"
            target.parent.mkdir(parents=True, exist_ok=True)
            merged = merge_runs(target, rows)
            write_text_atomic(target, merged.to_csv(index=False))
            render_sweep(target)
            speeds = speeds_rows(rows, archive.name)
            if not speeds.empty:
                _append_csv(results / "gpu" / "speeds.csv", speeds, ["sweep", "run_dir", "archive"])
            conc = concurrency_rows(rows, archive.name)
            if not conc.empty:
                _append_csv(results / "bench" / "concurrency.csv", conc, ["k", "archive"])
            swept.append(sweep)
        for name in (n for n in names if n.startswith("bench/") and n.endswith(".json")):
            dest = results / "bench" / f"{Path(archive.name).stem}_{Path(name).name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(_read(tar, name))
        if "bench/README.md" in names:
            readme = results / "bench" / "README.md"
            readme.parent.mkdir(parents=True, exist_ok=True)
            have = readme.read_text() if readme.exists() else ""
            new = [line for line in _read(tar, "bench/README.md").decode().splitlines()
                   if line.startswith("| 20") and line not in have]
            if new:
                with readme.open("a") as f:
                    f.write("\n".join(new) + "\n")
    env = summary.get("env", {})
    pieces = ",".join(p["id"] for p in summary.get("pieces", []))
    _append_csv(landed_csv, pd.DataFrame([{"archive": archive.name, "sha256": sha, "time": summary.get("time"),
                                           "device": env.get("gpu"), "commit": summary.get("commit"),
                                           "pieces": pieces, "sweeps": ",".join(swept)}]), ["sha256"])
    write_status(results)
    _render_study(results, swept)
    return f"{archive.name}: landed {len(swept)} sweep(s) ({', '.join(swept) or 'none'}) from {env.get('gpu')}"


def _render_study(results: Path, swept: Sequence[str]) -> None:
    """Re-render the OctopusNet study tables when a landed sweep belongs to it."""
    from octo.analysis.octopus.registry import SWEEPS

    if not set(swept) & {s.name for s in SWEEPS} or results != REPO / "results":
        return
    from octo.analysis.octopus.layout import Layout
    from octo.analysis.octopus.reproduce import render

    render(Layout.for_scale("full"))


def write_status(results: Path) -> Path:
    """``results/gpu/queue.md``: every piece with jobs done / all and the estimate left, from runs.csv."""
    return write_text_atomic(
        results / "gpu" / "queue.md",
        "# GPU queue status\n\nDerived from the committed runs.csv files by `python -m octo.gpu plan` (rewritten "
        "by `make gpu-land`). Estimates are estimates until `speeds.csv` holds a measurement.\n\n"
        + status_markdown(build_queue(results)) + "\n")


def land_all(archives: Sequence[Path], results: Path | None = None) -> int:
    """Land each archive; exit code 0, or 2 when one was refused (the others still land)."""
    if not archives:
        archives = sorted(SHARED_RESULTS.glob("*.tgz")) if SHARED_RESULTS.is_dir() else []
        if not archives:
            print(f"octo.gpu land: no archive given and none in {SHARED_RESULTS}")
            return 0
    code = 0
    for archive in archives:
        try:
            print(f"octo.gpu land: {land(Path(archive), results)}")
        except LandError as err:
            print(f"octo.gpu land: refused: {err}", file=sys.stderr)
            code = 2
    return code
