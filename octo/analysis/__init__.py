"""Analysis: collect a sweep's runs into a tidy DataFrame, then tables (mean ± sd, n) and figures.

``collect`` (collect.py) -> ``summarize`` / ``render_markdown`` / ``write_sweep_outputs`` (tables.py) ->
``sweep_figure`` (plots.py). CLI: ``octo-tables`` or ``python -m octo.analysis.tables``. ``audit`` checks that
every number in ``results/`` has a machine-readable source. The OctopusNet reproduction study is the subpackage
:mod:`octo.analysis.octopus`. Nothing is imported here, so ``python -m`` runs a module without a double import.
"""
