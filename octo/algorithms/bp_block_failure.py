"""Backprop baseline that also reports block failure after the final test (OctopusNet's BP CNN control row).

Training is exactly :class:`octo.algorithms.bp.BP`; only :meth:`final_evaluation` is added, so the run's
``metrics.json["evaluation"]["resilience"]`` holds the same failure table as an OctopusNet run (blocks in place of
arms). The network must keep its failable blocks in ``model.blocks`` (``octo.nn.cnn.ConvNet`` does).
"""

from __future__ import annotations

from torch import nn

from octo.algorithms.bp import BP
from octo.evaluation.block_failure import block_failure_report
from octo.utils.errors import ConfigError


class BPBlockFailure(BP):
    """:class:`BP` + block-failure evaluation on the test split (selected weights, eval mode)."""

    def __init__(self, model: nn.Module, num_classes: int) -> None:
        blocks = getattr(model, "blocks", None)
        if not isinstance(blocks, (nn.ModuleList, nn.Sequential)) or len(blocks) < 1:
            raise ConfigError("algorithm=bp_block_failure needs a model with a `blocks` ModuleList "
                              "(e.g. model=cnn)")
        super().__init__(model, num_classes)

    def final_evaluation(self, loader) -> dict:
        return {"resilience": block_failure_report(self.predict, list(self.net["model"].blocks), loader,
                                                   self.num_classes)}

    def describe(self) -> dict:
        return {"final_evaluation": "block failure: each block's and each pair's output zeroed at test time"}
