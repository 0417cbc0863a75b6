"""OctopusNet as a plain network: N arms, the nerve ring and the coordinator.

No losses and no optimisers here: ``octo.algorithms.octopus.Octopus`` decides what is trained, when and by which
local loss. Arms share one interface (``forward_trunk``, ``goodness``, ``token``, ``pooled``; ``trunk`` = the part
their FF loss trains, ``bottleneck`` = the part from there to the B-dimensional token).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from octo.encodings.fourier import downsample
from octo.nn.octopus.cg_arm import CGArm
from octo.nn.octopus.cnn_arm import CNNArm
from octo.nn.octopus.common import clamp_kernel, merged, resolve_kernels, resolve_scales
from octo.nn.octopus.coordinator import Coordinator
from octo.nn.octopus.nerve_ring import NerveRing
from octo.nn.octopus.seq_arms import LSTMArm, TransformerArm
from octo.utils.errors import ConfigError, check_choice

ARM_TYPES = ("cnn", "cg", "transformer", "lstm")

CG_DEFAULTS = {"channels_per_group": 16, "compress": "pool", "pool_size": 4, "residual_blocks": 0,
               "goodness_before_pool": False}
TRANSFORMER_DEFAULTS = {"patch": 4, "dim": 64, "layers": 2, "heads": 4, "ffn": 256, "dropout": 0.1}
LSTM_DEFAULTS = {"hidden": 128, "layers": 2}
RING_DEFAULTS = {"enabled": True, "heads": 4, "dropout": 0.1, "rounds": 1}
COORDINATOR_DEFAULTS = {"hidden": 256, "competition": "soft", "topk": 2, "gumbel_tau": 0.5,
                        "gumbel_eval_hard_argmax": False}


class OctopusNet(nn.Module):
    """Args (``conf/model/octopus*.yaml``):
        input_shape, num_classes: from the dataset.
        num_arms: N >= 1.
        arm: type of every arm (``cnn`` = FF-standard, ``cg`` = channel grouping, ``transformer``, ``lstm``);
            ``arm_types`` (one per arm) overrides it, e.g. the heterogeneous A9 list [cnn, cnn, transformer, lstm].
        scales: input resolution per arm; null = base, base/2, base/4, max(base/8, 4), cycled (never below 4).
        multiscale: false = every arm at the input resolution (``--no_multiscale``).
        kernel_sizes: per arm; null = 3 for CNN arms, [3, 5, 7, 9] by position (cycled) for CG arms. CNN kernels are
            clamped to the largest odd number <= the arm's resolution when ``multiscale`` (published clamp).
        channels: CNN arm conv widths; bottleneck: B (token size); bottleneck_pool: CNN bottleneck pool (2 -> 2x2).
        cg, transformer, lstm, nerve_ring, coordinator: nested settings (defaults in this module).
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, num_arms: int = 4, arm: str = "cnn",
                 arm_types: Sequence[str] | None = None, scales: Sequence[int] | None = None,
                 multiscale: bool = True, kernel_sizes: Sequence[int] | None = None,
                 channels: Sequence[int] = (64, 128, 256), bottleneck: int = 64, bottleneck_pool: int = 2,
                 cg: Mapping | None = None, transformer: Mapping | None = None, lstm: Mapping | None = None,
                 nerve_ring: Mapping | None = None, coordinator: Mapping | None = None) -> None:
        super().__init__()
        input_shape = [int(s) for s in input_shape]
        if len(input_shape) != 3 or input_shape[1] != input_shape[2]:
            raise ConfigError(f"OctopusNet needs square images [C, H, H]; got input_shape={input_shape}")
        if not isinstance(num_arms, int) or num_arms < 1:
            raise ConfigError(f"model.num_arms={num_arms!r} must be an int >= 1")
        if not isinstance(bottleneck, int) or bottleneck < 1:
            raise ConfigError(f"model.bottleneck={bottleneck!r} must be an int >= 1")
        if not channels or not all(isinstance(c, int) and c >= 1 for c in channels):
            raise ConfigError(f"model.channels={channels!r} must be a non-empty list of positive ints")
        if arm_types is None:
            check_choice("model.arm", arm, ARM_TYPES)
            types = [arm] * num_arms
        else:
            types = list(arm_types)
            if len(types) != num_arms:
                raise ConfigError(f"model.arm_types={types} must list one type per arm (model.num_arms={num_arms})")
            for t in types:
                check_choice("model.arm_types[]", t, ARM_TYPES)
        cg = merged("model.cg", CG_DEFAULTS, cg)
        tf = merged("model.transformer", TRANSFORMER_DEFAULTS, transformer)
        ls = merged("model.lstm", LSTM_DEFAULTS, lstm)
        ring = merged("model.nerve_ring", RING_DEFAULTS, nerve_ring)
        coord = merged("model.coordinator", COORDINATOR_DEFAULTS, coordinator)

        c_in, base = input_shape[0], input_shape[-1]
        self.input_shape, self.num_classes, self.dim = tuple(input_shape), int(num_classes), bottleneck
        self.base, self.multiscale, self.arm_types = base, bool(multiscale), types
        self.scales = resolve_scales(scales, num_arms, base, multiscale)
        kernels = resolve_kernels(kernel_sizes, types)
        arms = []
        for t, s, k in zip(types, self.scales, kernels):
            if t == "cnn":
                arms.append(CNNArm(c_in, s, clamp_kernel(k, s) if multiscale else k, channels, bottleneck,
                                   bottleneck_pool))
            elif t == "cg":
                arms.append(CGArm(c_in, num_classes, s, k, bottleneck, **cg))
            elif t == "transformer":
                arms.append(TransformerArm(c_in, s, bottleneck, **tf))
            else:
                arms.append(LSTMArm(c_in, s, bottleneck, **ls))
        self.arms = nn.ModuleList(arms)
        self.kernels = [a.kernel for a in arms]
        self.ring = (NerveRing(bottleneck, ring["heads"], ring["dropout"], ring["rounds"])
                     if ring["enabled"] else None)
        self.coordinator = Coordinator(num_arms, bottleneck, num_classes, **coord)

    @property
    def num_arms(self) -> int:
        return len(self.arms)

    def head(self, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Tokens ``[b, N, B]`` -> nerve ring -> coordinator: (logits, alpha, h_agg)."""
        return self.coordinator(self.ring(tokens) if self.ring is not None else tokens)

    @staticmethod
    def rescale(x: Tensor, sizes: Sequence[int]) -> dict[int, Tensor]:
        """``x`` bilinearly downsampled once per distinct size."""
        return {s: downsample(x, s) for s in dict.fromkeys(sizes)}

    def describe(self) -> dict:
        return {"arm_types": list(self.arm_types), "scales": list(self.scales), "kernels": list(self.kernels),
                "bottleneck": self.dim, "nerve_ring": None if self.ring is None else
                {"heads": self.ring.heads, "rounds": self.ring.rounds},
                "competition": self.coordinator.competition, "topk": self.coordinator.topk,
                "gumbel_tau": self.coordinator.gumbel_tau,
                "gumbel_eval_hard_argmax": self.coordinator.gumbel_eval_hard_argmax}
