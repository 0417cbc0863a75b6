"""Code comments, docstrings, configs and docs never point outside the repository.

A reader of the repository cannot open a file on one of our machines (a work or home directory) or the team's
private specification files, so none of them may be cited: explain the point where it is made, or link a doc of
the repository (``docs/algorithms/<name>.md``, ``docs/reproduce.md``). Public sources stay citable: "the paper's
Table 3", "paper §3.2" (the paper's own section numbers), "the public code's README".

The patterns below are written so that this file does not match them itself (``\\u00a7`` for the section sign,
alternations inside the path and file-name patterns).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCOPE = ("octo", "conf", "experiments", "sweeps", "docs", "tests", "README.md")

# names of the private specification files; "docs/algorithms/ff.md" and other in-repo paths are fine
SPEC_FILE = re.compile(r"(?<![\w/.-])((?:ff|ccl|pff|octopusnet|recurrent-ff|targets|conventions)\.md)\b")
RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("machine path", re.compile(r"/(?:work|home)/")),
    ("private spec folder", re.compile(r"\bspecs?/")),
    ("spec reference", re.compile(r"\b[Ss]pec(?:'s)?\s*\(?\u00a7|\b[Ss]pec\s+[\w-]+\.md\b|\bSpec:\s"
                                  r"|\bthe (?:shared )?spec\b")),
    # a section number of the paper is written "paper §3.2"; any other section sign points into a private document
    ("section number that is not the paper's", re.compile(r"(?<!paper )(?<!paper-new )(?<!paper-old )\u00a7")),
)


def scanned_files(root: Path = REPO) -> list[Path]:
    """The files under ``SCOPE`` that git tracks or would track (untracked, not ignored), relative to ``root``."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *SCOPE],
                             cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    paths = sorted({Path(p) for p in out.decode().split("\0") if p})
    return [p for p in paths if (root / p).is_file()]


def scan(paths: list[Path], root: Path = REPO) -> list[str]:
    """``file:line: reason: text`` for every reference outside the repository in ``paths`` (relative to ``root``).

    A private spec file name is allowed only where it names a file of the repository relative to the citing file
    (the relative links between ``docs/algorithms/*.md``).
    """
    hits = []
    for rel in paths:
        data = (root / rel).read_bytes()
        if b"\0" in data:  # binary
            continue
        for no, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            reasons = [name for name, rule in RULES if rule.search(line)]
            reasons += [f"private spec file {m.group(1)}" for m in SPEC_FILE.finditer(line)
                        if not ((root / rel).parent / m.group(1)).is_file()]
            hits += [f"{rel.as_posix()}:{no}: {reason}: {line.strip()[:160]}" for reason in reasons]
    return hits


def test_no_references_outside_the_repository():
    files = scanned_files()
    assert any(p.as_posix() == "octo/train.py" for p in files)  # the listing works
    hits = scan(files)
    assert not hits, ("comments, docstrings, configs and docs must not cite machine paths or the private spec "
                      "files; explain the point in place or link docs/...:\n" + "\n".join(hits))


def test_scan_finds_planted_references(tmp_path):
    docs = tmp_path / "docs" / "algorithms"
    docs.mkdir(parents=True)
    name = "ccl" + ".md"  # a spec file name, and a doc of the repository: linked relatively, it is fine
    (docs / name).write_text("# CCL\n")
    (docs / "bp.md").write_text(f"Described in [{name}]({name}); see also docs/algorithms/ff.md.\n")
    sec = "\u00a7"
    planted = [
        "ok = 1",
        '"""Thing (spec /' + 'work/shared/spec' + 's/octopusnet.md)."""',  # 2: machine path, spec folder
        "# data in /" + "home/someone/data",  # 3: machine path
        "# the measured anchor of targets" + ".md",  # 4: private spec file
        f"# CG recipe (spec {sec}3)",  # 5: spec section
        f"# the published loop (bug list, {sec}6 #8)",  # 6: section sign, not the paper's
        "# Switches for the " + "spec's bug list",  # 7: spec's bug list
        "# see conventions" + ".md section 5",  # 8: private spec file
        "f'Spe" + "c: octopusnet" + ".md {table.spec}'",  # 9: the label and the file name
        "def f(tmp_path, spec: dict):",  # a variable named spec is fine
        "    spec = importlib.util.spec_from_file_location(name, tmp_path / 'x.py')",
        f"# Hinton's setting (arXiv 2212.13345, paper {sec}3.2); docs/algorithms/pff.md; ../shared/data",
        "# results/ff/README.md, recurrent_ff.md, `ff_unsupervised.md`",
    ]
    src = tmp_path / "octo" / "planted.py"
    src.parent.mkdir()
    src.write_text("\n".join(planted) + "\n")
    hits = scan([Path("octo/planted.py"), Path("docs/algorithms/bp.md"), Path("docs/algorithms") / name], tmp_path)
    lines = sorted({int(h.split(":")[1]) for h in hits})
    assert lines == [2, 3, 4, 5, 6, 7, 8, 9], "\n".join(hits)
    assert all(h.startswith("octo/planted.py:") for h in hits)
    line2 = [h for h in hits if h.startswith("octo/planted.py:2:")]
    assert {h.split(": ")[1] for h in line2} == {"machine path", "private spec folder"}
