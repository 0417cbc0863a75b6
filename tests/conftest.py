"""Shared test setup: offline W&B, the offline data copies, and composed configs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

REPO = Path(__file__).resolve().parents[1]
# CI and developers keep the offline copies in ../shared/data; OCTO_DATA overrides
DATA = Path(os.environ.get("OCTO_DATA", REPO.parent / "shared" / "data"))
os.environ["OCTO_ROOT"] = str(REPO)


def mnist_available() -> bool:
    return (DATA / "mnist" / "train-images-idx3-ubyte.gz").exists()


needs_mnist = pytest.mark.skipif(not mnist_available(), reason=f"MNIST copy not found under {DATA}")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Test tensors are tiny: one torch thread is as fast, and immune to OpenMP spin-waiting on a shared CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def compose_cfg(tmp_path):
    """compose(overrides) -> DictConfig with paths pointed into tmp_path, as @hydra.main would build it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    def _compose(overrides=(), out: Path | None = None):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
        out = out or tmp_path / "run"
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(out)
            cfg.hydra.runtime.cwd = str(REPO)
            cfg.hydra.job.num = 0
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.output_dir = str(out)
            cfg.paths.data_dir = str(DATA)
            cfg.paths.cache_dir = str(tmp_path / "cache")
            del cfg["hydra"]
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


def read_offline_log(offline_dir, expect: bytes, timeout: float = 60.0) -> bytes:
    """The bytes of an offline W&B run's transaction log. W&B's service process may still be writing it when
    ``wandb.finish()`` returns (seen under CPU load), so wait until ``expect`` appears or ``timeout`` passes."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        log = next(offline_dir.glob("run-*.wandb")).read_bytes()
        if expect in log or time.monotonic() > deadline:
            return log
        time.sleep(0.5)


def write_stl10(folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """``images`` row-major uint8 [N, 3, 96, 96] written the way STL-10 stores them: column-major per channel."""
    folder.mkdir(parents=True, exist_ok=True)
    images.transpose(0, 1, 3, 2).astype(np.uint8).tofile(folder / f"{split}_X.bin")
    labels.astype(np.uint8).tofile(folder / f"{split}_y.bin")


def tiny_stl10(root: Path, n_train: int = 12, n_test: int = 6) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        labels = (np.arange(n) % 10 + 1).astype(np.uint8)  # STL-10 labels are 1..10
        write_stl10(root / "stl10_binary", split, images, labels)
        out[split] = images, labels
    return out


def assert_local(report: dict, blocks) -> None:
    """A ``gradient_leaks`` report of a local algorithm: exactly ``blocks``, each learning from its own loss and
    leaking into no other block."""
    assert set(report) == set(blocks), "every block must receive a loss"
    for block, r in report.items():
        assert r["own"], block
        assert r["leaks_to"] == [], block
