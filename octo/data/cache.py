"""A decoded-array cache: slow sources (JPEG archives) are decoded once and then read from a ``.npz`` file.

The cache key holds the data set, the split and a fingerprint (size and modification time) of the source, so a
replaced or re-downloaded source is decoded afresh instead of silently serving stale arrays.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from pathlib import Path

import numpy as np

from octo.utils.files import atomic_file

log = logging.getLogger(__name__)

#: bump when the decoding changes (e.g. another resampling), so old caches are not reused
CACHE_VERSION = 1


def fingerprint(source: Path) -> str:
    """``size:mtime_ns`` of a file; for a folder the file count, total size and newest mtime of its files."""
    if source.is_file():
        st = source.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"
    count = size = newest = 0
    for dirpath, _, files in os.walk(source):
        for name in files:
            st = os.stat(os.path.join(dirpath, name))
            count, size, newest = count + 1, size + st.st_size, max(newest, st.st_mtime_ns)
    return f"{count}:{size}:{newest}"


def cache_file(cache_dir: str | os.PathLike, name: str, split: str, source: Path) -> Path:
    """Where the decoded ``split`` of ``name`` read from ``source`` is cached.

    The full path of the source is not part of the key on purpose: the same data mounted at another path (a
    cluster node, a container) keeps its cache.
    """
    key = f"{CACHE_VERSION}|{name}|{split}|{source.name}|{fingerprint(source)}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{name}-{split}-{digest}.npz"


def load_cached(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached ``(images, labels)`` at ``path``, or None if there is none or it is unreadable.

    An unreadable cache (an interrupted write from an older version, a full disk) is deleted and reported,
    since decoding again from the source is always possible.
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            images, labels = npz["images"], npz["labels"]
        if images.dtype != np.uint8 or images.ndim != 4 or labels.shape != (len(images),):
            raise ValueError(f"unexpected arrays {images.dtype}{images.shape} / {labels.shape}")
        return images, labels.astype(np.int64, copy=False)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        log.warning("ignoring unreadable data cache %s (%s); decoding the source again", path, err)
        path.unlink(missing_ok=True)
        return None


def save_cached(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write ``(images, labels)`` to ``path`` atomically; a failure only costs speed: logged, not raised.

    The temporary file plus rename (:func:`~octo.utils.files.atomic_file`) means concurrent runs (a sweep,
    several ranks) never read a half-written cache; if two write at once, both write the same content and the
    last rename wins.
    """
    try:
        with atomic_file(path, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, images=images, labels=labels)
    except OSError as err:
        log.warning("could not write the data cache %s (%s); the next run will decode again", path, err)
