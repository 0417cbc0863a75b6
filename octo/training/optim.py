"""Every optimiser setting has one home, the ``optimizer`` config node, and is resolved here.

The node holds the torch optimiser's own arguments (``_target_``, ``lr``, ``momentum``, ...) and octo's keys, which
are taken out before torch sees them (:func:`split_optimizer_node`):

``clip_norm``
    max total gradient norm before every step, per block (or per clip group); null = off.
``clip_value``
    element-wise gradient clip before every step; null = off.
``grad_centralize``
    subtract from every >= 2-D gradient its mean over all dimensions but the first (gradient centralisation).
``blocks``
    per-block values over the global ones: ``{name: {lr: ..., momentum: ..., clip_norm: ..., clip_group: ...}}``.
    A name is a block (``coordinator``) or one of the algorithm's block groups
    (:meth:`~octo.algorithms.base.LocalAlgorithm.block_groups`, e.g. CCL's ``forward`` / ``feedback``); a block
    named both ways gets both, its own name winning. ``clip_group``: blocks with the same label are clipped
    together, as one vector (CCL's published forward / feedback clip); by default each block is clipped alone,
    so that no block's update depends on another's gradient.

Algorithms never hold optimiser values: a recipe that needs them (an ``experiments/*.yaml`` file) writes them here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from octo.utils.errors import ConfigError

#: octo's keys, global or per block
GRADIENT_KEYS = ("clip_norm", "clip_value", "grad_centralize")
#: octo's keys allowed only per block
BLOCK_ONLY_KEYS = ("clip_group",)
OCTO_KEYS = (*GRADIENT_KEYS, "blocks")


def split_optimizer_node(node: Mapping) -> tuple[dict, dict]:
    """(torch's arguments, octo's settings: the :data:`GRADIENT_KEYS` that are set and ``blocks``)."""
    torch_args = {k: v for k, v in node.items() if k not in OCTO_KEYS}
    octo = {k: node[k] for k in OCTO_KEYS if k in node and node[k] is not None}
    return torch_args, octo


def block_settings(blocks: Sequence[str], groups: Mapping[str, Sequence[str]], settings: Mapping | None
                   ) -> dict[str, dict]:
    """Block -> the parameter-group values it gets over the optimiser's global ones: octo's global gradient
    settings, then its groups' entries of ``settings["blocks"]``, then its own entry. An entry naming neither a
    block nor a group is refused, with the valid names."""
    settings = dict(settings or {})
    named = dict(settings.get("blocks") or {})
    unknown = [k for k in named if k not in blocks and k not in groups]
    if unknown:
        raise ConfigError(f"optimizer.blocks names {', '.join(map(repr, unknown))}, which is neither a block nor "
                          f"a block group of this algorithm; blocks: {', '.join(blocks)}"
                          + (f"; groups: {', '.join(groups)}" if groups else ""))
    for name, entry in named.items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"optimizer.blocks.{name}={entry!r} must be a mapping of settings, e.g. {{lr: 0.001}}")
    base = {k: settings[k] for k in GRADIENT_KEYS if k in settings}
    out = {}
    for block in blocks:
        values = dict(base)
        for group, members in groups.items():
            if block in members and group in named:
                values.update(named[group])
        values.update(named.get(block, {}))
        out[block] = {k: v for k, v in values.items() if v is not None}
    return out


def check_clip_groups(settings: Mapping[str, Mapping], joint: bool) -> None:
    """A clip group spanning several blocks is clipped inside one optimiser: it needs the joint layout."""
    members: dict[str, list[str]] = {}
    for block, values in settings.items():
        if values.get("clip_group") is not None:
            members.setdefault(str(values["clip_group"]), []).append(block)
    shared = {g: b for g, b in members.items() if len(b) > 1}
    if shared and not joint:
        g, b = next(iter(shared.items()))
        raise ConfigError(f"optimizer clip_group '{g}' clips blocks {', '.join(b)} together, which needs one "
                          "optimiser for all of them: set schedule.optimizer_layout=joint, or drop clip_group")


@torch.no_grad()
def process_gradients(param_groups: Sequence[dict]) -> None:
    """What runs between backward and step, per parameter group (one group = one block): gradient
    centralisation, element-wise clipping, then total-norm clipping per clip group (groups sharing a
    ``clip_group`` are clipped together to their ``clip_norm``), in the published CCL order."""
    sets: dict[tuple, list[Tensor]] = {}
    for g in param_groups:
        if not (g.get("grad_centralize") or g.get("clip_value") or g.get("clip_norm")):
            continue  # the usual case: nothing to do, and no per-step walk over the parameters
        params = [p for p in g["params"] if p.grad is not None]
        if g.get("grad_centralize"):
            for p in params:
                if p.grad.dim() >= 2:
                    p.grad.sub_(p.grad.mean(dim=tuple(range(1, p.grad.dim())), keepdim=True))
        if g.get("clip_value"):
            torch.nn.utils.clip_grad_value_(params, float(g["clip_value"]))
        if g.get("clip_norm"):
            key = ("group", g["clip_group"]) if g.get("clip_group") is not None else ("block", g.get("name"))
            sets.setdefault((key, float(g["clip_norm"])), []).extend(params)
    for (_, max_norm), params in sets.items():
        torch.nn.utils.clip_grad_norm_(params, max_norm)
