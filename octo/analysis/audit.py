"""Integrity audit: every result number in the Markdown is traceable to a machine-readable file under results/.

Command line::

    python -m octo.analysis.audit [results/ README.md ...] [--records results] [--show-matches]

Paths are Markdown files or folders (searched for ``*.md``; default ``results/`` and ``README.md``). Each untraced
number is printed as ``file:line: text: why``; the exit code is 1 if there is any, 0 otherwise.

What is audited (a "claim"):

1. a number followed by the unit of a result: ``%``, a time (``s``, ``ms``, ``min``, ``h``, their long forms,
   ``CPU-hours``...) or a rate (``img/s``, ``images/s``, ``vectors/s``, ``s/epoch``);
2. a mean ± sd pair (``61.00 ± 1.94``), with or without a unit;
3. any number in a table cell whose column header has a unit (``test/acc (%)``, ``BP img/s``).

A list or range that ends in a unit shares it: ``58.81 / 61.69 / 62.50 %``, ``93-98 %``, ``10.4, 26.3, 71.1 %``.

Not audited: digits inside a word, identifier, version or path (commit hashes, ``3x250``, ``1e-3``); inline
`code`; numbers without a unit outside a unit column (epochs, seeds, widths, counts, dates); ``n=3``; numbers
after a comparison sign (``≤ 7.0 %``, ``≥ 55 %``: targets and gates, not results); table header rows (labels);
``pp`` differences and ``×`` ratios (derived from audited numbers); text covered by an :data:`ALLOWLIST` entry,
each of which gives its reason.

Published numbers: a claim directly followed by a source tag, ``1.36 % err [arXiv 2212.13345]``, is someone
else's number. It is not looked up among our records; instead every name in the tag (comma separated) must be
declared under ``sources:`` in a ``results/published/*.yaml`` file, and its value must be recorded in one of those
files. A number in a column whose header says "published", or in a table row with a ``published [tag]`` cell
(whose tag then covers the row), must carry a tag.

Traced: a claim printed with d decimals is traced when a recorded number v of the same kind gives
|f(v) - x| <= 0.5 * 10^-d. Kinds come from the column or key name: accuracies and errors (``acc``, ``err``) for %,
times (``wall``, ``time``, ``seconds``, ``..._s``) for time units, rates (``per_s``) for img/s; a bare mean ± sd may
come from any column. The readings f: for %, 100 v for a recorded fraction (v <= 1) and v for a recorded percentage
(v > 1), plus 100 (1 - v) and 100 - v when the claim is an error ("err" / "error" next to it or in its column
header); times are recorded in seconds, so v, v / 60 or v / 3600 for s, min or h.

The records are every number (list cells included) of every ``.csv`` and ``.json`` file below the records folder
(default: the first folder given, else ``results``), except ``runs/`` (git-ignored run output, absent from a fresh
checkout) and ``published/``. Config YAML files are settings, not records. For a mean ± sd pair the records also
hold the mean and sample sd (ddof=1) of every numeric CSV column over the whole file and over the rows of one
configuration (one value of ``sweep_name``, ``sweep`` or ``experiment``, or one ``run_dir`` once its ``seed=...``
item is removed); both numbers must then come from the same column and rows, unless each is recorded on its own.

Scope: a Markdown file's numbers are looked up only in the records below its own folder and below the folders of
the local files it links to (links up to a parent folder excepted), so a number on ``results/rff/README.md`` cannot
be "traced" to an unrelated sweep whose value happens to round the same. Pages at the top (``results/*.md``,
``README.md``) see every record.

Limits: values are matched, not meanings, so a short number (``46 %``) can still be traced by coincidence within
its scope; ``--show-matches`` prints where each claim was found so that a reader can check.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import json
import math
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

csv.field_size_limit(2**31 - 1)  # a runs.csv cell may hold a long list (per-class accuracies, epoch times)

PUBLISHED_DIR = "published"  # below the records folder: published numbers and their source tags
IGNORED_DIR = "runs"  # below the records folder: git-ignored run output, absent from a fresh checkout


@dataclass(frozen=True)
class Allowed:
    """A number that is not a result: ``text`` is a piece of one line of a file ending in ``path``."""

    path: str
    text: str
    reason: str


# Specific non-result numbers that the rules above would audit. Every entry must say why it is not a result.
ALLOWLIST: tuple[Allowed, ...] = (
    Allowed("results/ff/README.md", "(about 10 % of them the true one)",
            "arithmetic: a random permutation of the labels of 10 balanced classes keeps about one in ten"),
    Allowed("results/ccl/README.md", "validation CE of a 10 % split",
            "a setting (the size of the validation split), not a result"),
    Allowed("results/ccl/README.md", "the published 10 % validation split",
            "a setting (the size of the validation split), not a result"),
    # Notes rendered by octo/analysis/octopus/registry.py into the OctopusNet tables: quotations of the published
    # sources (not ours, and they cannot carry a bracketed tag inside a quotation) and one arithmetic fact.
    Allowed("results/tables/a6_resilience.md", '"~30 %"',
            "quotes README-new; recorded in results/published/octopusnet.yaml (value 30, tag README-new)"),
    Allowed("results/tables/resilience_summary.md", '"~30 %"',
            "quotes README-new; recorded in results/published/octopusnet.yaml (value 30, tag README-new)"),
    Allowed("results/tables/resilience_summary.md", "its 10 % holds by construction",
            "chance level of 10 classes when every prediction is the same class, not a measurement"),
    Allowed("results/tables/bp_cnn.md", '"10.00 % for each block"',
            "quotes the paper's statement; the values are in results/published/octopusnet.yaml (tags README, paper)"),
    Allowed("results/tables/a7_feedback.md", 'the README\'s "+~0.5 %"',
            "quotes an unsupported README claim in order to say that it is unsupported"),
    Allowed("results/tables/a17_rounds.md", "10-epoch CG checkpoint (62.49 %)",
            "the paper's starting checkpoint for A17, quoted in the study's note; not a number of ours"),
)

# Generated files that hold a plan (estimates and targets), not results: not audited, each with its reason.
PLAN_FILES: dict[str, str] = {
    "gpu/queue.md": "the GPU queue's status: estimated GPU-minutes and speed targets of work not yet done, "
                    "rewritten from code (octo.gpu plan --write); measured speeds live in gpu/speeds.csv",
}

# --- extracting claims from Markdown ------------------------------------------------------------------------

_NUM = r"(?:\d{1,3}(?:[ \u00a0\u202f]\d{3})+|\d+(?:\.\d+)?)(?![\w]|\.\d)"  # 10 000 / 14 123 are one number
_SEP = r"\s*(?:/|,|–|—|-|\bto\b)\s*"
_UNIT = (r"%|s/epoch|img/s|images/s|vectors/s|(?:CPU|GPU)-(?:seconds|minutes|hours)|ms|seconds?|sec|minutes?"
         r"|min|hours?|h|s")
_GROUP = re.compile(
    rf"(?<![\w.\-/=^±])(?P<body>{_NUM}(?:{_SEP}{_NUM})*)"
    rf"(?:\s*±\s*(?P<sd>{_NUM}))?"
    rf"(?:\s?(?P<unit>{_UNIT})(?![\w/]))?")
_BODY_NUMBER = re.compile(_NUM)
_TAG = re.compile(r"\s*(?:(?:test\s+)?err(?:or)?\s*)?\[(?P<tag>[^\]]+)\]")
_COMPARISON = re.compile(r"(?:≤|≥|<|>|<=|>=)\s*$")
_COUNT = re.compile(r"\bn\s*=\s*$")
_INLINE_CODE = re.compile(r"`[^`]*`")
_ROW_TAG = re.compile(r"^published\s*\[(?P<tag>[^\]]+)\]$", re.IGNORECASE)
_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}")
_TIME_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "min": 60.0, "minute": 60.0,
               "minutes": 60.0, "h": 3600.0, "hour": 3600.0, "hours": 3600.0, "CPU-seconds": 1.0,
               "GPU-seconds": 1.0, "CPU-minutes": 60.0, "GPU-minutes": 60.0, "CPU-hours": 3600.0,
               "GPU-hours": 3600.0}


@dataclass(frozen=True)
class Number:
    """A number as printed: its value and its count of decimals (the precision it claims)."""

    value: float
    decimals: int

    @classmethod
    def parse(cls, text: str) -> Number:
        digits = re.sub(r"[\s\u00a0\u202f]", "", text)
        return cls(float(digits), len(digits.split(".")[1]) if "." in digits else 0)

    @property
    def tolerance(self) -> float:
        return 0.5 * 10.0 ** -self.decimals + 1e-9 * max(1.0, abs(self.value))


@dataclass
class Claim:
    """One audited group of numbers at ``path:line``: a value or a list/range, an optional sd, a unit."""

    path: str
    line: int
    text: str
    numbers: list[Number]
    sd: Number | None = None
    unit: str | None = None
    tag: str | None = None
    published: bool = False  # in a published column or row: it must carry a tag
    error: bool = False  # an error rate: "err" / "error" next to it or in its column header
    span: tuple[int, int] = (0, 0)
    line_text: str = ""


def _blank_code(text: str) -> str:
    """Inline code replaced by spaces (same length, so offsets stay): commands and identifiers, not results."""
    return _INLINE_CODE.sub(lambda m: " " * len(m.group()), text)


def claims_in_text(text: str, header_unit: str | None = None, row_tag: str | None = None
                   ) -> Iterator[tuple[int, int, list[Number], Number | None, str | None, str | None]]:
    """The claims of one prose line or table cell: (start, end, numbers, sd, unit, tag)."""
    clean = _blank_code(text)
    for m in _GROUP.finditer(clean):
        before = clean[:m.start()]
        if _COMPARISON.search(before) or _COUNT.search(before):
            continue
        unit = m.group("unit") or header_unit
        sd = Number.parse(m.group("sd")) if m.group("sd") else None
        tag_match = _TAG.match(clean, m.end())
        if unit is None and sd is None and tag_match is None:
            continue  # a bare number: an epoch, a seed, a width, a count (unless it carries a source tag)
        tag = tag_match.group("tag").strip() if tag_match else row_tag
        numbers = [Number.parse(n) for n in _BODY_NUMBER.findall(m.group("body"))]
        yield m.start(), m.end(), numbers, sd, unit, tag


def _split_row(line: str) -> list[tuple[int, str]]:
    """The cells of a Markdown table row with their offsets; ``\\|`` is an escaped pipe, not a border."""
    cells, start = [], 0
    body = line.rstrip()
    for m in re.finditer(r"(?<!\\)\|", body):
        cells.append((start, body[start:m.start()]))
        start = m.end()
    cells.append((start, body[start:]))
    if cells and not cells[0][1].strip():
        cells = cells[1:]  # text before the leading border
    if cells and not cells[-1][1].strip():
        cells = cells[:-1]  # text after the trailing border
    return cells


def _header_unit(header: str) -> str | None:
    """The unit a column header gives its cells, if any."""
    if "%" in header:
        return "%"
    if re.search(r"img/s|images/s", header):
        return "img/s"
    if re.search(r"\((?:s|seconds)\)", header):
        return "s"
    return None


def _says_error(text: str, start: int, end: int) -> bool:
    """Whether the words "err" / "error" stand within a few words of text[start:end]."""
    return re.search(r"\berr(?:or)?s?\b", text[max(0, start - 30):end + 30], re.IGNORECASE) is not None


def _claims(shown: str, lineno: int, line: str, text: str, offset: int, header: str = "",
            row_tag: str | None = None) -> list[Claim]:
    """The claims of ``text`` (a prose line, or the cell at ``offset`` of a table row under ``header``)."""
    published = row_tag is not None or "published" in header.lower()
    out = []
    for start, end, numbers, sd, unit, tag in claims_in_text(text, _header_unit(header), row_tag):
        error = "err" in header.lower() or _says_error(text, start, end)
        out.append(Claim(shown, lineno, text[start:end].strip(), numbers, sd=sd, unit=unit, tag=tag,
                         published=published, error=error, span=(offset + start, offset + end), line_text=line))
    return out


def claims_in_markdown(path: Path, shown: str | None = None) -> list[Claim]:
    """Every claim of one Markdown file (prose, tables and fenced code alike)."""
    shown = shown or path.as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    claims: list[Claim] = []
    header: list[str] = []
    for i, line in enumerate(lines):
        is_row = line.lstrip().startswith("|")
        if is_row and not header and i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1].strip()):
            header = [cell.strip() for _, cell in _split_row(line)]  # the header row holds labels
        elif is_row and header:
            if _TABLE_RULE.match(line.strip()):
                continue
            cells = _split_row(line)
            row_tag = next((m.group("tag") for _, c in cells if (m := _ROW_TAG.match(c.strip()))), None)
            for col, (offset, cell) in enumerate(cells):
                name = header[col] if col < len(header) else ""
                claims += _claims(shown, i + 1, line, cell, offset, name, row_tag)
        else:  # prose, fenced code, or a row without a header: audited as text
            header = []
            claims += _claims(shown, i + 1, line, line, 0)
    return claims


# --- records ------------------------------------------------------------------------------------------------

_RECORD_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_GROUP_COLUMNS = ("sweep_name", "sweep", "experiment")
# What a recorded number measures, read from its column or key name. A claim is looked up only among the
# numbers of its own kind, so that a percentage cannot be "traced" to a learning rate or a seed.
_KIND_PATTERNS = (("rate", re.compile(r"per_s\b|per_s$|throughput", re.IGNORECASE)),
                  ("time", re.compile(r"wall|time|seconds|secs?\b|duration|_s$", re.IGNORECASE)),
                  ("pct", re.compile(r"acc|err", re.IGNORECASE)))
_UNIT_KINDS = {"%": "pct", "img/s": "rate", "images/s": "rate", "vectors/s": "rate",
               **{unit: "time" for unit in _TIME_UNITS}}


def kind_of(name: str) -> str:
    """The kind of a recorded number from its column / key name: rate, time, pct (accuracy, error) or other."""
    leaf = name.rsplit(" ", 1)[-1]
    return next((kind for kind, pattern in _KIND_PATTERNS if pattern.search(leaf)), "other")


@dataclass
class Index:
    """Sorted numbers of one kind, each with where it came from and the record file that holds it."""

    values: list[float] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def freeze(self) -> None:
        order = sorted(range(len(self.values)), key=self.values.__getitem__)
        self.values = [self.values[i] for i in order]
        self.origins = [self.origins[i] for i in order]
        self.files = [self.files[i] for i in order]

    def find(self, low: float, high: float, scope: Sequence[str] | None = None) -> str | None:
        """Where a value in [low, high] was recorded in a file below one of the ``scope`` folders, or None."""
        i = bisect.bisect_left(self.values, low)
        while i < len(self.values) and self.values[i] <= high:
            if in_scope(self.files[i], scope):
                return self.origins[i]
            i += 1
        return None


def in_scope(file: str, scope: Sequence[str] | None) -> bool:
    """Whether the resolved ``file`` lies below one of the ``scope`` folders (None: anywhere)."""
    return scope is None or any(file.startswith(folder) for folder in scope)


@dataclass
class Pair:
    """The mean and sample sd of a CSV column over some rows, with their kind and origin."""

    mean: float
    sd: float
    kind: str
    origin: str
    file: str


@dataclass
class Records:
    """Every recorded number by kind, and the mean ± sd aggregates of CSV columns."""

    by_kind: dict[str, Index] = field(default_factory=lambda: defaultdict(Index))
    pairs: list[Pair] = field(default_factory=list)

    def add(self, value: float, origin: str, file: str, kind: str | None = None) -> None:
        if math.isfinite(value):
            index = self.by_kind[kind or kind_of(origin)]
            index.values.append(value)
            index.origins.append(origin)
            index.files.append(file)

    def freeze(self) -> None:
        for index in self.by_kind.values():
            index.freeze()

    def find(self, low: float, high: float, kinds: Iterable[str], scope: Sequence[str] | None = None) -> str | None:
        for kind in kinds:
            if kind in self.by_kind and (origin := self.by_kind[kind].find(low, high, scope)) is not None:
                return origin
        return None


def _cell_numbers(cell: str) -> list[float]:
    """The numbers of a CSV cell: a plain number, or the items of a list cell (``[199.45, 204.65]``)."""
    cell = cell.strip()
    if cell.startswith("["):
        return [float(n) for n in _RECORD_NUMBER.findall(cell)]
    if cell.lower() in {"true", "false", "nan", "inf", "-inf", ""}:
        return []
    try:
        return [float(cell)]
    except ValueError:
        return []


def _configuration(row: dict[str, str]) -> str | None:
    """The configuration a runs.csv row belongs to: its ``run_dir`` without the ``seed=...`` item."""
    run_dir = row.get("run_dir")
    if not run_dir or "=" not in run_dir:
        return None
    return ",".join(p for p in run_dir.split(",") if not p.startswith("seed="))


def _read_csv(path: Path, shown: str, records: Records) -> None:
    file = path.resolve().as_posix()
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    columns: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for n, row in enumerate(rows, start=2):  # line 1 is the header
        for col, cell in row.items():
            numbers = _cell_numbers(cell or "") if col is not None else []
            for value in numbers:
                records.add(value, f"{shown}:{n} {col}", file)
            if len(numbers) == 1 and not (cell or "").lstrip().startswith("["):
                columns[col].append((row, numbers[0]))
    for col, items in columns.items():
        groups: dict[str, list[float]] = defaultdict(list)
        for row, value in items:
            groups["all rows"].append(value)
            for key in _GROUP_COLUMNS:
                if row.get(key):
                    groups[f"{key}={row[key]}"].append(value)
            if (config := _configuration(row)) is not None:
                groups[f"run_dir~{config}"].append(value)
        for name, values in groups.items():
            if len(values) >= 2:
                origin = f"{shown} mean ± sd over {name} of {col}"
                mean, sd = statistics.fmean(values), statistics.stdev(values)
                records.pairs.append(Pair(mean, sd, kind_of(col), origin, file))
                records.add(mean, origin, file, kind_of(col))


def _walk(node: object, where: str, file: str, records: Records) -> None:
    """Every number of a parsed JSON / YAML document, keyed by its dotted path."""
    if isinstance(node, bool):
        return
    if isinstance(node, (int, float)):
        records.add(float(node), where, file)
    elif isinstance(node, dict):
        for k, v in node.items():
            _walk(v, f"{where}{k}" if where.endswith(" ") else f"{where}.{k}", file, records)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _walk(v, f"{where}[{i}]", file, records)


def load_records(root: Path) -> Records:
    """The numbers of every .csv / .json file below ``root`` (``root/runs`` and ``root/published`` excluded)."""
    records = Records()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or rel.parts[0] in (IGNORED_DIR, PUBLISHED_DIR):
            continue
        shown = (root / rel).as_posix()
        if path.suffix == ".csv":
            _read_csv(path, shown, records)
        elif path.suffix == ".json":
            _walk(json.loads(path.read_text(encoding="utf-8")), f"{shown} ", path.resolve().as_posix(), records)
    records.freeze()
    return records


@dataclass
class PublishedRecords:
    """Source tags declared under ``sources:`` and every number recorded in ``results/published/*.yaml``."""

    tags: set[str] = field(default_factory=set)
    records: Records = field(default_factory=Records)


def load_published(root: Path) -> PublishedRecords:
    """The tags and numbers of ``root/published/*.yaml`` (published numbers are matched whatever their kind)."""
    out = PublishedRecords()
    for path in sorted((root / PUBLISHED_DIR).glob("*.y*ml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        out.tags |= {str(t).strip() for t in (data.get("sources") or {})}
        _walk({k: v for k, v in data.items() if k != "sources"}, f"{path.as_posix()} ", path.resolve().as_posix(),
              out.records)
    out.records.freeze()
    return out


# --- matching -----------------------------------------------------------------------------------------------


def _readings(unit: str | None, error: bool = False) -> list[tuple[float, float, float, float]]:
    """The readings f(v) = a v + b under which a recorded v may be printed in ``unit``, as (a, b, lo, hi): the
    reading applies to records with lo < v <= hi. A recorded accuracy up to 1 is a fraction, above 1 a
    percentage, so "0.5 %" is never read from a fraction of 0.5; an error is read from an accuracy only when
    the claim says it is an error."""
    inf = math.inf
    if unit == "%":
        readings = [(100.0, 0.0, -inf, 1.0), (1.0, 0.0, 1.0, inf)]
        if error:
            readings += [(-100.0, 100.0, -inf, 1.0), (-1.0, 100.0, 1.0, inf)]
        return readings
    if unit in _TIME_UNITS:  # every record of a time is in seconds (wall_time_s, train_epoch_seconds...)
        return [(1.0 / _TIME_UNITS[unit], 0.0, -inf, inf)]
    if unit is None:
        return [(1.0, 0.0, -inf, inf), (100.0, 0.0, -inf, 1.0)]
    return [(1.0, 0.0, -inf, inf)]


def _kinds(unit: str | None, records: Records) -> list[str]:
    """The kinds of record a claim in ``unit`` may come from (every kind for a bare mean ± sd pair)."""
    return [_UNIT_KINDS[unit]] if unit in _UNIT_KINDS else sorted(records.by_kind)


# A published number is recorded as printed by its source: matched as it is, or as the complement of an
# accuracy printed as an error (98.64 % vs 1.36 % err).
_PUBLISHED_READINGS = [(1.0, 0.0, -math.inf, math.inf), (-1.0, 100.0, -math.inf, math.inf)]


def _find(records: Records, number: Number, unit: str | None, error: bool = False, published: bool = False,
          scope: Sequence[str] | None = None) -> str | None:
    """Where ``number`` (printed in ``unit``) was recorded below the ``scope`` folders, or None."""
    kinds = sorted(records.by_kind) if published else _kinds(unit, records)
    for a, b, lo, hi in _PUBLISHED_READINGS if published else _readings(unit, error):
        low, high = sorted(((number.value - number.tolerance - b) / a, (number.value + number.tolerance - b) / a))
        low, high = max(low, math.nextafter(lo, math.inf)), min(high, hi)
        if low <= high and (origin := records.find(low, high, kinds, scope)) is not None:
            return origin
    return None


def _find_pair(records: Records, mean: Number, sd: Number, unit: str | None, error: bool = False,
               scope: Sequence[str] | None = None) -> str | None:
    """Where the pair mean ± sd was recorded: one aggregate, or each number on its own."""
    kinds = set(_kinds(unit, records))
    for a, b, lo, hi in _readings(unit, error):
        for p in records.pairs:
            if (p.kind in kinds and lo < p.mean <= hi and in_scope(p.file, scope)
                    and abs(a * p.mean + b - mean.value) <= mean.tolerance
                    and abs(abs(a) * p.sd - sd.value) <= sd.tolerance):
                return p.origin
    found_mean, found_sd = _find(records, mean, unit, error, scope=scope), _find(records, sd, unit, scope=scope)
    return f"{found_mean}; {found_sd}" if found_mean and found_sd else None


def _allowed(claim: Claim, allowlist: Iterable[Allowed]) -> Allowed | None:
    for entry in allowlist:
        if not claim.path.endswith(entry.path):
            continue
        for m in re.finditer(re.escape(entry.text), claim.line_text):
            if m.start() <= claim.span[0] and claim.span[1] <= m.end():
                return entry
    return None


def check(claim: Claim, records: Records, published: PublishedRecords,
          allowlist: Iterable[Allowed] = ALLOWLIST, scope: Sequence[str] | None = None) -> tuple[bool, str]:
    """(traced?, where it was found or why it was not) for one claim, looked up below the ``scope`` folders."""
    if (entry := _allowed(claim, allowlist)) is not None:
        return True, f"allowlisted: {entry.reason}"
    if claim.tag is not None:
        unknown = [t for t in (p.strip() for p in claim.tag.split(",")) if t not in published.tags]
        if unknown:
            return False, (f"unknown source tag {', '.join(map(repr, unknown))} (declare it under sources: in "
                           f"results/{PUBLISHED_DIR}/*.yaml)")
        numbers = claim.numbers + ([claim.sd] if claim.sd else [])
        if any(_find(published.records, n, claim.unit, published=True) is None for n in numbers):
            return False, f"published value not recorded in results/{PUBLISHED_DIR}/*.yaml"
        return True, f"published [{claim.tag}]"
    if claim.published:
        return False, "published number without a source tag [tag]"
    if claim.sd is not None and len(claim.numbers) == 1:
        origin = _find_pair(records, claim.numbers[0], claim.sd, claim.unit, claim.error, scope)
        return (True, origin) if origin else (False, f"mean ± sd not found in {_WHERE}")
    origins = [_find(records, n, claim.unit, claim.error, scope=scope) for n in claim.numbers]
    if all(origins):
        return True, "; ".join(dict.fromkeys(o for o in origins if o))
    missing = [n for n, o in zip(claim.numbers, origins) if not o]
    return False, (f"{', '.join(f'{n.value:.{n.decimals}f}' for n in missing)} not found in {_WHERE} "
                   f"(a published number needs a source tag [tag])")


_WHERE = "the .csv/.json records below this file's folder or the folders it links to"
_LINK = re.compile(r"\]\(([^)\s#]+)")


def scope_of(md: Path) -> tuple[str, ...]:
    """The folders whose records may trace the numbers of ``md``: its own folder and those of the local files it
    links to, except folders above its own (a link up to an overview page does not make the whole tree a source).
    A number of results/rff/README.md must come from results/rff/... or a table it links to, not from an
    unrelated sweep whose value happens to round the same."""
    own = md.resolve().parent
    folders = {own}
    for target in _LINK.findall(md.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue  # http:, https:, mailto:
        path = (md.parent / target).resolve()
        folder = path if path.is_dir() else path.parent
        if not own.is_relative_to(folder):
            folders.add(folder)
    return tuple(sorted(f"{folder.as_posix().rstrip('/')}/" for folder in folders))


# --- command line -------------------------------------------------------------------------------------------


def markdown_files(paths: Sequence[Path], records_root: Path) -> list[Path]:
    """The Markdown files named or found below the given folders (the ignored run folder left out)."""
    ignored = (records_root / IGNORED_DIR).resolve()
    out = []
    for path in paths:
        found = sorted(path.rglob("*.md")) if path.is_dir() else [path]
        out += [p for p in found if ignored not in p.resolve().parents
                and not any(p.as_posix().endswith("/" + plan) for plan in PLAN_FILES)]
    return out


def audit(paths: Sequence[Path], records_root: Path,
          allowlist: Iterable[Allowed] = ALLOWLIST) -> list[tuple[Claim, bool, str]]:
    """Every claim of the Markdown in ``paths`` with (traced?, where / why)."""
    records, published = load_records(records_root), load_published(records_root)
    allowlist = tuple(allowlist)
    results = []
    for md in markdown_files(paths, records_root):
        scope = scope_of(md)
        for claim in claims_in_markdown(md):
            results.append((claim, *check(claim, records, published, allowlist, scope)))
    return results


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m octo.analysis.audit",
                                description="Check that every result number in the Markdown is traceable to a "
                                            "machine-readable file under results/ (rules: module docstring).")
    p.add_argument("paths", nargs="*", default=["results", "README.md"],
                   help="Markdown files or folders (default: results/ README.md)")
    p.add_argument("--records", help="folder of the records (default: the first folder given, else results)")
    p.add_argument("--show-matches", action="store_true", help="also print where each traced number was found")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    paths = [Path(p) for p in args.paths]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"audit: error: not found: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    root = Path(args.records) if args.records else next((p for p in paths if p.is_dir()), Path("results"))
    results = audit(paths, root)
    bad = 0
    for claim, ok, why in results:
        if not ok:
            bad += 1
            print(f"{claim.path}:{claim.line}: {claim.text!r}: {why}")
        elif args.show_matches:
            print(f"{claim.path}:{claim.line}: {claim.text!r}: ok: {why}")
    print(f"audit: {len(results)} numbers checked, {bad} untraceable", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
