"""The OctopusNet ablation study as data: which sweeps exist and how each published table is laid out.

A table is a grid. Every row and every column is an :class:`Axis` that contributes part of what a grid point
shows: the sweep it reads, the cell of that sweep (override values, e.g. ``{"model.num_arms": 8}``) and the
quantity (``acc``, ``single.arm1``, ``floor_double``...; see ``octo.analysis.octopus.quantities``). A grid point
merges its row and its column (table defaults first), and shows our value (mean ± sd over seeds, n) beside the
published one, which lives in ``results/published/octopusnet.yaml`` under the same table/row/column ids.

The registry itself (every sweep and table of the OctopusNet study) is ``octo.analysis.octopus.registry``; keeping
the layout there and the numbers in the YAML lets one renderer serve every table and lets a test check that every
published number has a place in some table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Sweep:
    """A sweep file ``sweeps/<name>.yaml``; ``family`` picks its smoke scale (``conf/scale/smoke_<family>``).

    ``s_per_epoch`` is an *estimate* of GPU seconds per epoch (a number, or per value of ``speed_key``), from the
    speed targets (FF-standard 3 s, SFF 5 s) and the CG estimate (12 s); ``speed_note`` says how.
    """

    name: str
    family: str
    s_per_epoch: float | Mapping[str, float]
    speed_note: str
    speed_key: str | None = None


@dataclass(frozen=True)
class Axis:
    """A row or column: an id (the YAML key of its published values), a label, and its part of a grid point."""

    id: str
    label: str
    sweep: str | None = None
    cell: Mapping[str, Any] = field(default_factory=dict)
    quantity: str | None = None


@dataclass(frozen=True)
class Table:
    """A published table: rows x cols of grid points; ``published_in`` lists the source tags of its published
    numbers (``results/published/octopusnet.yaml``; "none": none published); ``figure`` names the figure drawn for
    it (or None)."""

    id: str
    title: str
    published_in: str
    rows: tuple[Axis, ...]
    cols: tuple[Axis, ...]
    sweep: str | None = None
    notes: tuple[str, ...] = ()
    row_header: str = "setting"
    figure: str | None = None

    def point(self, row: Axis, col: Axis) -> tuple[str | None, dict[str, Any], str]:
        """(sweep, cell, quantity) of one grid point."""
        quantity = col.quantity or row.quantity
        if quantity is None:
            raise ValueError(f"table {self.id}: no quantity for row {row.id} / column {col.id}")
        return col.sweep or row.sweep or self.sweep, {**row.cell, **col.cell}, quantity

    def sweeps(self) -> list[str]:
        names = [self.sweep, *(a.sweep for a in (*self.rows, *self.cols))]
        return list(dict.fromkeys(n for n in names if n))


FF_ARMS = ("arm0 (32×32; paper M1)", "arm1 (16×16; paper M2)", "arm2 (8×8; paper M3)", "arm3 (4×4; paper M4)")
CG_ARMS = ("arm0 (k3; paper M0)", "arm1 (k5; paper M1)", "arm2 (k7; paper M2)", "arm3 (k9; paper M3)")
CNN_BLOCKS = ("block0 (64 ch)", "block1 (128 ch)", "block2 (256 ch)")


def resilience_rows(names: tuple[str, ...], unit: str = "arm", alone: bool = True,
                    extra: tuple[Axis, ...] = ()) -> tuple[Axis, ...]:
    """Intact, every single failure, every pair, (each unit alone), floors, degradation and the critical unit."""
    n = len(names)
    short = [f"{unit}{i}" for i in range(n)]
    rows = [Axis("intact", "intact", quantity="intact")]
    rows += [Axis(f"single.{s}", f"{names[i]} failed", quantity=f"single.{s}") for i, s in enumerate(short)]
    rows += [Axis(f"pair.{a}+{b}", f"{a} + {b} failed", quantity=f"pair.{a}+{b}")
             for i, a in enumerate(short) for b in short[i + 1:]]
    if alone:
        rows += [Axis(f"alone.{s}", f"{s} alone (others failed)", quantity=f"alone.{s}") for s in short]
    rows += [Axis("floor_single", "floor, 1 failed (worst single)", quantity="floor_single"),
             Axis("floor_double", "floor, 2 failed (worst pair)", quantity="floor_double"),
             Axis("degradation_single", "intact − worst single (pp)", quantity="degradation_single"),
             Axis("critical", f"critical {unit} (worst single)", quantity="critical")]
    return tuple(rows) + extra


def cells(key: str, *items: tuple[str, str, Any], quantity: str | None = None) -> tuple[Axis, ...]:
    """Axes that each pick one value of ``key``: ``(id, label, value)`` triples."""
    return tuple(Axis(i, label, cell={key: value}, quantity=quantity) for i, label, value in items)


# ours selected on validation, and beside it the test curve's best and final epoch (never used for selection):
# the published numbers are best- or final-epoch test accuracies, so these are the like-for-like comparison
ACC = (Axis("acc", "test accuracy (%)", quantity="acc"),
       Axis("acc_best_epoch", "test curve: best epoch (%)", quantity="acc_best_epoch"),
       Axis("acc_final_epoch", "test curve: final epoch (%)", quantity="acc_final_epoch"))
SEEDS_NOTE = ("Published figures are single runs with the best epoch selected on the test set; ours select on a "
              "validation split held out of the training set.")
