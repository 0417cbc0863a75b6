"""Class names of the labelled data sets, in label order (label k is ``<NAME>_CLASSES[k]``).

Plain constants, no imports: the analysis and the loggers label their tables and figures with them without loading
any data code.
"""

from __future__ import annotations

#: CIFAR-10's classes, in label order (also the published OctopusNet tables' column order)
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: STL-10's classes, in label order (its ``_y.bin`` files count from 1: label k is stored as k + 1)
STL10_CLASSES: tuple[str, ...] = (
    "airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
