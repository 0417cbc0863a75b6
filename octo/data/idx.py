"""Reading MNIST-style IDX files (gzip-compressed or not) without torchvision.

We parse the files ourselves because the offline MNIST copy has ``.gz`` wrappers whose MD5 differs from the
ones torchvision expects (its integrity check would refuse them although the content is byte-exact), and
because a corrupt file should end the run with one line that names the file, not a deep traceback.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from octo.utils.errors import DataError

#: IDX magic numbers: two zero bytes, type code 0x08 (unsigned byte), number of dimensions
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

#: file name stems of the four standard files, per split
IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def find_idx_file(directory: Path, stem: str) -> Path | None:
    """The uncompressed ``stem`` in ``directory`` if present (fastest to read), else ``stem.gz``, or None."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_bytes(path: Path, hint: str) -> bytes:
    """Whole content of ``path``, decompressed if it is gzip (detected by content, not by the file name)."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        if head != _GZIP_MAGIC:
            return path.read_bytes()
        with gzip.open(path, "rb") as f:
            return f.read()
    except EOFError as err:  # gzip stream cut short: an interrupted download or copy
        raise DataError(f"{path}: truncated gzip file ({err}); {hint}") from None
    except (gzip.BadGzipFile, zlib.error) as err:  # must precede OSError: BadGzipFile is an OSError
        raise DataError(f"{path}: corrupt gzip file ({err}); {hint}") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err}); {hint}") from None


def read_idx(path: Path, magic: int, hint: str) -> np.ndarray:
    """Parse the IDX file at ``path`` into a uint8 array shaped as its header says.

    Checks the magic number (which also fixes the element type and number of dimensions) and that the payload
    holds exactly the number of bytes the header declares, so truncated or padded files are refused.
    """
    data = _read_bytes(path, hint)
    kind = "images" if magic == IMAGES_MAGIC else "labels"
    if len(data) < 4:
        raise DataError(f"{path}: truncated, only {len(data)} bytes; {hint}")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(f"{path}: bad magic number 0x{found:08x} (IDX {kind} files start with "
                        f"0x{magic:08x}); "
                        f"the file is neither a valid gzip nor an IDX {kind} file; {hint}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated inside the header ({len(data)} of {header} bytes); {hint}")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected, actual = math.prod(dims), len(data) - header
    if actual < expected:
        raise DataError(f"{path}: truncated, the header declares {dims[0]} {kind} ({expected} bytes) "
                        f"but only {actual} bytes follow; {hint}")
    if actual > expected:
        raise DataError(f"{path}: {actual - expected} unexpected bytes after the {dims[0]} {kind} the header "
                        f"declares; {hint}")
    # copy: a view on the immutable bytes object would be read-only, which torch.from_numpy warns about
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(dims).copy()


def read_idx_split(directory: Path, split: str, hint: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 1, H, W]`` uint8 and labels ``[N]`` int64 of ``split`` from IDX files in ``directory``.

    Both files must be there and hold the same number of items.
    """
    images_stem, labels_stem = IDX_STEMS[split]
    paths = []
    for stem in (images_stem, labels_stem):
        path = find_idx_file(directory, stem)
        if path is None:
            raise DataError(f"{directory / stem}(.gz): missing (the folder holds the other {split} file); "
                            f"{hint}")
        paths.append(path)
    images = read_idx(paths[0], IMAGES_MAGIC, hint)
    labels = read_idx(paths[1], LABELS_MAGIC, hint)
    if len(images) != len(labels):
        raise DataError(f"{paths[1]}: {len(labels)} labels but {paths[0].name} holds {len(images)} images; "
                        f"{hint}")
    return images[:, None], labels.astype(np.int64)
