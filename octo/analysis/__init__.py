"""Analysis: collect a sweep's runs into a tidy DataFrame, then tables (mean ± sd, n) and figures.

``collect`` (collect.py) -> ``summarize`` / ``render_markdown`` / ``write_sweep_outputs`` (tables.py) ->
``sweep_figure`` (plots.py, imported on use because seaborn is slow to import). CLI: ``octo-tables``.
"""

from octo.analysis.collect import collect, find_job_dirs
from octo.analysis.tables import render_markdown, summarize, write_sweep_outputs

__all__ = ["collect", "find_job_dirs", "summarize", "render_markdown", "write_sweep_outputs"]
