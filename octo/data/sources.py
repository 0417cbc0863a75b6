"""Where each data set's files are looked for, and :func:`load_split`, the one entry point that reads them.

Every data set comes back the same way: uint8 images ``[N, C, H, W]`` and int64 labels ``[N]`` as CPU tensors.
Problems end in a one-line :class:`DataError` naming the file that was expected, what was wrong and how to get
it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from octo.data import cache, cifar, idx, stl10
from octo.data.classes import CIFAR10_CLASSES
from octo.data.synthetic import make_synthetic
from octo.utils.errors import DataError, check_choice

log = logging.getLogger(__name__)

DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100", "stl10", "synthetic")
SPLITS = ("train", "test")

#: classes of each real data set, to catch label files that do not belong to it
NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100, "stl10": 10}
#: sizes of the canonical files; other sizes (a generated fixture, a subset) only get a warning, because the
#: integrity of the files themselves is checked from their headers and decoders
CANONICAL_SIZES = {"mnist": (60000, 10000), "fashion_mnist": (60000, 10000), "cifar10": (50000, 10000),
                   "cifar100": (50000, 10000), "stl10": (5000, 8000)}

#: where the Debian package ``dataset-fashion-mnist`` installs the four IDX .gz files
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
#: torchvision's folder names, used by its downloaders
_TORCHVISION_DIRS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
CIFAR10_ARCHIVE = "cifar10-jpeg-q75.tar.xz"
CIFAR10_FOLDERS = ("cifar10-jpeg-q75", "cifar10", "CIFAR-10-images")
CIFAR_PICKLES = {
    "cifar10": ("cifar-10-batches-py",
                {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}, "labels"),
    "cifar100": ("cifar-100-python", {"train": ["train"], "test": ["test"]}, "fine_labels"),
}


def hint(name: str) -> str:
    """How to get ``name``: the fix part of every DataError."""
    wanted = {
        "mnist": "mnist/train-images-idx3-ubyte.gz",
        "fashion_mnist": ("fashion_mnist/train-images-idx3-ubyte.gz "
                          "(or apt-get install dataset-fashion-mnist)"),
        "cifar10": f"{CIFAR10_ARCHIVE} or cifar-10-batches-py/",
        "cifar100": "cifar-100-python/",
        "stl10": f"{stl10.FOLDER}/ (train_X.bin, train_y.bin, test_X.bin, test_y.bin)",
    }[name]
    return (f"set OCTO_DATA or paths.data_dir to a folder holding {wanted}, "
            "or pass dataset.download=true when online")


def idx_dirs(name: str, root: Path) -> list[Path]:
    """Folders searched, in order, for the IDX files of mnist / fashion_mnist."""
    dirs = [root / name, root / name / "raw", root / _TORCHVISION_DIRS[name] / "raw"]
    if name == "fashion_mnist":
        dirs += [root / "fashion-mnist", FASHION_MNIST_SYSTEM_DIR]
    return dirs


def find_source(name: str, split: str, root: str | os.PathLike) -> Path:
    """The file or folder :func:`load_split` reads ``split`` of ``name`` from; DataError if there is none.

    For CIFAR-10 torchvision's pickles (the original, lossless data) win over the JPEG copy when both exist.
    """
    check_choice("dataset.name", name, DATASETS[:-1])
    root = Path(root)
    if name in _TORCHVISION_DIRS:
        stem = idx.IDX_STEMS[split][0]
        for d in idx_dirs(name, root):
            if idx.find_idx_file(d, stem) is not None:
                return d
        looked = ", ".join(str(d) for d in idx_dirs(name, root))
        raise DataError(f"{name} {split} data not found: no {stem}(.gz) in {looked}; {hint(name)}")
    if name == "stl10":
        candidates = [root / stl10.FOLDER, root / "stl10" / stl10.FOLDER]
        for c in candidates:
            if c.is_dir():
                return c
        raise DataError(f"stl10 {split} data not found: none of {', '.join(map(str, candidates))} exists; "
                        f"{hint(name)}")
    folder = CIFAR_PICKLES[name][0]
    candidates = [root / folder]
    if name == "cifar10":
        candidates += [root / CIFAR10_ARCHIVE] + [root / f for f in CIFAR10_FOLDERS]
    for c in candidates:
        if c.is_file() or (c.is_dir() and (c.name == folder or (c / split).is_dir())):
            return c
    looked = ", ".join(map(str, candidates))
    raise DataError(f"{name} {split} data not found: none of {looked} exists; {hint(name)}")


def _download(name: str, root: Path) -> None:
    """Let torchvision fetch ``name`` into ``root`` (it skips files it has); failures become DataError."""
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10,
           "cifar100": tvd.CIFAR100, "stl10": tvd.STL10}[name]
    try:
        for split in SPLITS:
            if name == "stl10":
                cls(str(root), split=split, download=True)
            else:
                cls(str(root), train=split == "train", download=True)
    except Exception as err:  # noqa: BLE001 - URLError, HTTPError, OSError, RuntimeError(checksum): all one cause
        msg = " ".join(str(err).split())  # one line, whatever the library put in its message
        raise DataError(f"downloading {name} into {root} with torchvision failed "
                        f"({type(err).__name__}: {msg}); {hint(name)}") from None


def _read_jpeg_split(name: str, split: str, source: Path, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """A split of the CIFAR-10 JPEG copy, from the cache if present, else decoded (both splits) and cached."""
    cached = cache.load_cached(cache.cache_file(cache_dir, name, split, source))
    if cached is not None:
        return cached
    reader = cifar.read_jpeg_archive if source.is_file() else cifar.read_jpeg_folder
    encoded = reader(source, hint(name))
    classes = sorted(encoded["train"])
    if classes != list(CIFAR10_CLASSES) or sorted(encoded["test"]) != list(CIFAR10_CLASSES):
        raise DataError(f"{source}: class folders train/{classes}, test/{sorted(encoded['test'])} are not "
                        f"the 10 CIFAR-10 classes {list(CIFAR10_CLASSES)}; {hint(name)}")
    result = None
    for s in SPLITS:  # decode and cache both: the archive had to be decompressed entirely anyway
        arrays = cifar.decode_split(encoded[s], classes, source, hint(name))
        cache.save_cached(cache.cache_file(cache_dir, name, s, source), *arrays)
        result = arrays if s == split else result
    return result


def _read(name: str, split: str, source: Path, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch on the kind of source found by :func:`find_source`."""
    if name in _TORCHVISION_DIRS:
        return idx.read_idx_split(source, split, hint(name))
    if name == "stl10":
        return stl10.read_split(source, split, hint(name))
    folder, files, label_key = CIFAR_PICKLES[name]
    if source.name == folder:
        return cifar.read_pickle_batches(source, files[split], label_key, hint(name))
    return _read_jpeg_split(name, split, source, cache_dir)


def load_split(name: str, split: str, root: str | os.PathLike, cache_dir: str | os.PathLike,
               download: bool = False, *,
               synthetic: Mapping | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[N, C, H, W]`` uint8 and labels ``[N]`` int64 (CPU tensors) of ``split`` of data set ``name``.

    ``download=True`` first lets torchvision fetch the data into ``root`` (only then is torchvision's
    downloader used) and reads torchvision's copy. ``synthetic`` holds the arguments of
    :func:`octo.data.synthetic.make_synthetic` (``n_train``, ``n_test``, ``seed``, ``shape``,
    ``num_classes``, ``noise``) and is used only when ``name == "synthetic"``, for which ``root`` and
    ``cache_dir`` are ignored.
    """
    check_choice("dataset.name", name, DATASETS)
    check_choice("split", split, SPLITS)
    if name == "synthetic":
        images, labels = make_synthetic(split, **dict(synthetic or {}))
        return torch.from_numpy(images), torch.from_numpy(labels)
    if download:
        _download(name, Path(root))
    source = resolve_source(name, split, root, download)
    images, labels = _read(name, split, source, Path(cache_dir))
    log.info("%s %s: %d images %s from %s", name, split, len(images), list(images.shape[1:]), source)
    _check_arrays(name, split, source, images, labels)
    return torch.from_numpy(images), torch.from_numpy(labels)


def resolve_source(name: str, split: str, root: str | os.PathLike, download: bool = False) -> Path:
    """What :func:`load_split` reads: torchvision's folder after a download, else :func:`find_source`."""
    if not download:
        return find_source(name, split, root)
    root = Path(root)
    if name in _TORCHVISION_DIRS:
        return root / _TORCHVISION_DIRS[name] / "raw"
    if name == "stl10":
        return root / stl10.FOLDER
    return root / CIFAR_PICKLES[name][0]


def _check_arrays(name: str, split: str, source: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Label range and count checks shared by all sources."""
    if len(labels) != len(images):
        raise DataError(f"{source}: {len(labels)} labels for {len(images)} images in {split}; {hint(name)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES[name]):
        raise DataError(f"{source}: {split} labels range over {labels.min()}..{labels.max()}, "
                        f"but {name} has classes 0..{NUM_CLASSES[name] - 1}; {hint(name)}")
    expected = CANONICAL_SIZES[name][SPLITS.index(split)]
    if len(images) != expected:
        log.warning("%s %s from %s holds %d images, not the canonical %d", name, split, source, len(images),
                    expected)
