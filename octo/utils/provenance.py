"""Where a number came from: commit, device, library versions."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import torch


def git_commit(cwd: str | Path | None = None) -> str:
    """Short SHA of HEAD, with ``-dirty`` if the work tree has uncommitted changes; ``unknown`` outside git."""
    cwd = cwd or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: torch.device | str | None = None) -> str:
    """Human-readable name of the device a run used (GPU model, or the CPU and its core count)."""
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import os

    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


#: distribution name -> key in ``versions()``: the libraries whose versions can change a run's numbers or files
LIBRARIES = {"lightning": "lightning", "hydra-core": "hydra-core", "omegaconf": "omegaconf",
             "torchvision": "torchvision", "numpy": "numpy"}


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def versions(device: torch.device | str | None = None) -> dict:
    """Versions that change numbers: python, torch, the libraries in :data:`LIBRARIES`, and CUDA.

    ``cuda`` is the CUDA runtime the run used: torch's CUDA version when ``device`` (the run's training device)
    is a GPU, None otherwise; without a ``device``, when a GPU is visible (the caller did not say which device
    it used). ``cuda_build`` is the CUDA version torch was built with (None for a CPU-only build), recorded
    whatever the device, so that a CPU run does not look like a CUDA run.
    """
    device = torch.device(device) if device is not None else None
    on_gpu = device.type == "cuda" if device is not None else torch.cuda.is_available()
    out = {"python": platform.python_version(), "torch": torch.__version__}
    out.update({key: _version(dist) for dist, key in LIBRARIES.items()})
    out["cuda"] = torch.version.cuda if on_gpu else None
    out["cuda_build"] = torch.version.cuda
    if on_gpu and torch.backends.cudnn.is_available():
        out["cudnn"] = torch.backends.cudnn.version()
    return out
