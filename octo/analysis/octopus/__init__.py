"""The OctopusNet reproduction study: every sweep and published table, our runs rendered beside the published
numbers, and the runner of ``make reproduce-tables``.

Modules, from data to outputs (nothing is imported here, so ``python -m`` runs a module without a double import):

- ``study``: the data model (:class:`~octo.analysis.octopus.study.Sweep`, ``Table``, ``Axis``);
- ``registry``: every sweep and table of the study (ids shared with ``results/published/octopusnet.yaml``);
- ``published``: the published numbers with their source tags, checked against the registry;
- ``quantities``: named quantities of a run (``acc``, ``single.arm1``, ...) read from a runs table;
- ``budget``: the jobs of each sweep and their estimated GPU-minutes (the GPU queue, ``octo.gpu``, uses them);
- ``layout``: where a scale's runs and outputs live;
- ``render`` (Markdown) and ``figures`` (PNG), then ``outputs``, which writes every table, figure and the index;
- ``reproduce``: ``python -m octo.analysis.octopus.reproduce run|render|estimate`` (``make reproduce-tables``).

The generic sweep tools (``collect``, ``tables``, ``plots``) stay in :mod:`octo.analysis`; this package builds on
them and nothing outside it but ``octo.gpu`` imports it.
"""
