"""octo.analysis.audit: every result number in the Markdown is traceable to a machine-readable file under results/.

Fabricated trees check each rule; the last tests run the audit on the repository itself, which keeps the committed
results/ and README.md traceable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from octo.analysis.audit import ALLOWLIST, audit, claims_in_markdown, main

ROOT = Path(__file__).resolve().parents[1]

RUNS_CSV = """run_dir,status,seed,commit,wall_time_s,test/acc,val/acc_best
seed=0,ok,0,abc1234567,600.0,0.8287000060081482,0.81
seed=1,ok,1,abc1234567,660.0,0.8301000118255615,0.82
"""
PUBLISHED = """sources:
  arXiv 0000.00000: a paper
numbers:
  - {what: test error, value: 1.36, source: arXiv 0000.00000}
"""
PAGE = """# Results

Our run reached 82.87 % (seed 0) and 83.01 % (seed 1), 82.94 ± 0.10 % over both, in 10-11 min each (2 epochs,
seed 0, commit `ce6730d`, 2026-11-26, width 500). The paper reports 1.36 % err [arXiv 0000.00000]; the target
was ≤ 2.0 %.

| run | test acc (%) | published [source] |
|---|---|---|
| [sweep](sweep/runs.csv) | 82.87 (n=1) | 1.36 % err [arXiv 0000.00000] |
"""


def make_tree(tmp_path: Path, page: str = PAGE) -> Path:
    """A results/ folder with one sweep, a published file and one page; returns the results folder."""
    results = tmp_path / "results"
    (results / "sweep").mkdir(parents=True)
    (results / "sweep" / "runs.csv").write_text(RUNS_CSV)
    (results / "published").mkdir()
    (results / "published" / "paper.yaml").write_text(PUBLISHED)
    (results / "page.md").write_text(page)
    return results


def failures(results: Path, *paths: Path) -> list[tuple[str, int, str, str]]:
    out = audit(list(paths) or [results], results)
    return [(Path(c.path).name, c.line, c.text, why) for c, ok, why in out if not ok]


def test_clean_tree_passes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = make_tree(tmp_path)
    (tmp_path / "README.md").write_text("See results/. Nothing measured here: 3 seeds, 100 epochs.\n")
    assert main([str(results), str(tmp_path / "README.md")]) == 0
    assert capsys.readouterr().out == ""


def test_planted_number_fails_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = make_tree(tmp_path, PAGE + "\nA later run gave 91.23 % after 5 epochs.\n")
    assert main([str(results)]) == 1
    out = capsys.readouterr().out
    assert f"{(results / 'page.md').as_posix()}:11: '91.23 %'" in out
    assert len(out.strip().splitlines()) == 1  # only the planted number


def test_percentage_matches_a_fraction_in_a_csv(tmp_path: Path) -> None:
    results = make_tree(tmp_path, "82.87 % and 83.0 % and 17.13 % err\n")
    assert failures(results) == []
    # One more digit than recorded is a different claim: 82.871 % does not round from 0.82870000600.
    results = make_tree(tmp_path / "b", "82.871 %\n")
    assert [f[2] for f in failures(results)] == ["82.871 %"]


def test_error_reading_needs_the_word_error(tmp_path: Path) -> None:
    # 17.13 % is 100 - 82.87: accepted as an error rate, not as an accuracy.
    results = make_tree(tmp_path, "17.13 % err\n\nan accuracy of 17.13 %\n")
    assert [(f[1], f[2]) for f in failures(results)] == [(3, "17.13 %")]


def test_mean_sd_pair_from_the_rows_of_a_csv(tmp_path: Path) -> None:
    # mean of 82.87 and 83.01 = 82.94; sample sd = 0.14 / sqrt(2) = 0.099 -> 0.10
    results = make_tree(tmp_path, "82.94 ± 0.10 %\n\n82.94 ± 0.20 %\n")
    assert [(f[1], f[2]) for f in failures(results)] == [(3, "82.94 ± 0.20 %")]


def test_times_are_read_from_seconds(tmp_path: Path) -> None:
    # wall_time_s 600 and 660 s: 10 and 11 min; 0.2 h rounds from 0.17-0.18 h
    results = make_tree(tmp_path, "10-11 min, 600 s, 0.2 h\n\n12 min\n")
    assert [(f[1], f[2]) for f in failures(results)] == [(3, "12 min")]


def test_published_numbers_need_a_declared_tag_and_a_recorded_value(tmp_path: Path) -> None:
    # line 1 ok; 2: unknown tag; 3: value not recorded; 7: published column without a tag
    results = make_tree(tmp_path, """1.36 % err [arXiv 0000.00000]
1.36 % err [arXiv 9999.99999]
1.37 % err [arXiv 0000.00000]

| what | published |
|---|---|
| paper | 1.36 % err |
""")
    found = {f[1]: f[3] for f in failures(results)}
    assert set(found) == {2, 3, 7}
    assert "unknown source tag 'arXiv 9999.99999'" in found[2]
    assert "not recorded" in found[3] and "without a source tag" in found[7]


def test_numbers_that_are_not_results_are_not_audited(tmp_path: Path) -> None:
    page = ("Epoch 12, seed 1234, width 2000, 10 000 images, commit ce6730d18e, 2026-11-26T16:33, 3x250, lr 1e-3, "
            "`python -m octo.train trainer.max_epochs=60` took `42 s`, the gate is ≥ 55 % and the target ≤ 7.0 %, "
            "n=3, 1.35× faster, 0.17 pp behind.\n")
    path = tmp_path / "page.md"
    path.write_text(page)
    assert claims_in_markdown(path) == []


def test_records_outside_the_page_folder_and_its_links_do_not_count(tmp_path: Path) -> None:
    results = make_tree(tmp_path)
    (results / "other").mkdir()
    (results / "other" / "README.md").write_text("82.87 %\n")
    (results / "linked").mkdir()
    (results / "linked" / "README.md").write_text("82.87 % ([runs](../sweep/runs.csv))\n")
    # other/README.md neither lies above sweep/ nor links to it: its 82.87 % is not traced by sweep/runs.csv
    assert [(f[0], f[2]) for f in failures(results)] == [("README.md", "82.87 %")]
    assert failures(results, results / "linked" / "README.md") == []


def test_runs_folder_is_ignored(tmp_path: Path) -> None:
    # results/runs/ is git-ignored run output: absent in CI, so it must not trace anything locally either
    results = make_tree(tmp_path, "77.77 %\n")
    (results / "runs" / "x").mkdir(parents=True)
    (results / "runs" / "x" / "metrics.json").write_text('{"test/acc": 0.7777}')
    assert [f[2] for f in failures(results)] == ["77.77 %"]


def test_every_allowlist_entry_has_a_reason() -> None:
    for entry in ALLOWLIST:
        assert entry.path and entry.text and len(entry.reason) > 10, entry


def test_repository_results_are_traceable() -> None:
    results = audit([ROOT / "results", ROOT / "README.md"], ROOT / "results")
    bad = [f"{c.path}:{c.line}: {c.text!r}: {why}" for c, ok, why in results if not ok]
    assert not bad, "\n".join(bad)
    assert len(results) > 100  # the audit did read the pages
    # Every allowlist entry still covers a number: a stale entry would hide a future one silently.
    used = {why for _, ok, why in results if why.startswith("allowlisted: ")}
    assert {f"allowlisted: {e.reason}" for e in ALLOWLIST} <= used


def test_command_line_on_the_repository() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "octo.analysis.audit", "results/", "README.md"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 untraceable" in proc.stderr


def test_only_the_declared_plan_file_is_exempt(tmp_path: Path) -> None:
    """The GPU queue's status holds estimates (a plan): exempt by name, with a reason; any other page is not."""
    results = make_tree(tmp_path)
    (results / "gpu").mkdir()
    (results / "gpu" / "queue.md").write_text("| P1.1 | A21b | 0/1 | 6.5 min | 12 s/epoch target |\n")
    (results / "gpu" / "notes.md").write_text("A21b took 6.5 min at 12 s/epoch.\n")
    assert sorted({f[0] for f in failures(results)}) == ["notes.md"]
