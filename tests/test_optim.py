"""The optimiser config, octo's one home of every optimiser setting (``octo/training/optim.py``): golden values of
the gradient processing, how per-block values resolve, and that the recipes that used to hold their own optimiser
keys (FF's lr, CCL's forward/feedback clip, PFF's element-wise clip, UFF's read-out lr) get the same values."""

from __future__ import annotations

import math

import pytest
import torch

from octo.training.optim import block_settings, process_gradients, split_optimizer_node
from octo.utils.errors import ConfigError


def test_centralisation_then_clipping_per_clip_group_golden():
    w = torch.nn.Parameter(torch.zeros(2, 2))
    w.grad = torch.tensor([[1.0, 3.0], [2.0, 6.0]])  # row means 2, 4 -> [[-1, 1], [-2, 2]], norm sqrt(10)
    bias = torch.nn.Parameter(torch.zeros(2))
    bias.grad = torch.tensor([3.0, 5.0])  # 1-D: never centralised
    u = torch.nn.Parameter(torch.zeros(2))
    u.grad = torch.tensor([0.0, 2.0])  # a second block of the forward clip group
    v = torch.nn.Parameter(torch.zeros(2))
    v.grad = torch.tensor([0.3, 0.4])  # norm 0.5 < 1: its own group, untouched
    groups = [{"params": [w, bias], "name": "a", "grad_centralize": True, "clip_group": "fwd", "clip_norm": 1.0},
              {"params": [u], "name": "b", "clip_group": "fwd", "clip_norm": 1.0},
              {"params": [v], "name": "c", "grad_centralize": True, "clip_group": "fb", "clip_norm": 1.0}]
    process_gradients(groups)
    total = math.sqrt(10 + 9 + 25 + 4)  # forward group: centralised w, the bias and u, clipped together to norm 1
    assert torch.allclose(w.grad, torch.tensor([[-1.0, 1.0], [-2.0, 2.0]]) / total, atol=1e-6)
    assert torch.allclose(bias.grad, torch.tensor([3.0, 5.0]) / total, atol=1e-6)
    assert torch.allclose(u.grad, torch.tensor([0.0, 2.0]) / total, atol=1e-6)
    assert torch.allclose(v.grad, torch.tensor([0.3, 0.4]))


def test_without_a_clip_group_each_block_is_clipped_alone_and_value_clip_is_elementwise():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([0.6, 0.8])
    process_gradients([{"params": [a], "name": "a", "clip_norm": 1.0}, {"params": [b], "name": "b", "clip_norm": 1.0}])
    assert torch.allclose(a.grad, torch.tensor([0.6, 0.8]), atol=1e-6)  # 5 -> 1
    assert torch.allclose(b.grad, torch.tensor([0.6, 0.8]))  # already norm 1: untouched by a's norm
    c = torch.nn.Parameter(torch.zeros(3))
    c.grad = torch.tensor([-2.0, 0.005, 3.0])
    process_gradients([{"params": [c], "name": "c", "clip_value": 0.01}])
    assert c.grad.tolist() == pytest.approx([-0.01, 0.005, 0.01])


def test_block_values_resolve_global_then_group_then_block():
    blocks, groups = ["l0_fwd", "l0_fb", "l1_fwd"], {"forward": ["l0_fwd", "l1_fwd"], "feedback": ["l0_fb"]}
    settings = {"clip_norm": 5.0, "blocks": {"forward": {"lr": 0.1, "clip_group": "f"}, "l1_fwd": {"lr": 0.2}}}
    out = block_settings(blocks, groups, settings)
    assert out == {"l0_fwd": {"clip_norm": 5.0, "lr": 0.1, "clip_group": "f"}, "l0_fb": {"clip_norm": 5.0},
                   "l1_fwd": {"clip_norm": 5.0, "lr": 0.2, "clip_group": "f"}}
    with pytest.raises(ConfigError, match="'layer9', which is neither a block nor a block group.*groups: forward"):
        block_settings(blocks, groups, {"blocks": {"layer9": {"lr": 1.0}}})


def test_octo_keys_never_reach_torch():
    torch_args, octo = split_optimizer_node({"_target_": "torch.optim.SGD", "lr": 1.0, "clip_norm": None,
                                             "clip_value": 1.0, "grad_centralize": False, "blocks": {}})
    assert torch_args == {"_target_": "torch.optim.SGD", "lr": 1.0}
    assert octo == {"clip_value": 1.0, "grad_centralize": False, "blocks": {}}


@pytest.mark.parametrize("overrides, expect", [
    # FF brings its learning rate as optimizer.lr; the command line still wins
    (["algorithm=ff"], {"lr": 0.03}),
    (["algorithm=ff", "optimizer.lr=0.001"], {"lr": 0.001}),
    (["algorithm=bp"], {"lr": 0.001}),
    # PFF brings the reference's element-wise clip
    (["algorithm=pff", "model=pff"], {"clip_value": 1.0}),
    # the CCL recipe: SGD lr 1, no momentum, one clip over all forward and one over all feedback modules
    (["experiments=ccl_mlp_cifar10"], {"_target_": "torch.optim.SGD", "lr": 1.0, "momentum": 0.0,
                                       "blocks": {"forward": {"clip_norm": 1.0, "clip_group": "forward"},
                                                  "feedback": {"clip_norm": 1.0, "clip_group": "feedback"}}}),
    (["experiments=bp_ccl_mlp_cifar10"], {"_target_": "torch.optim.SGD", "lr": 1.0, "clip_norm": 1.0}),
    (["experiments=uff_extension"], {"lr": 0.03, "blocks": {"readout": {"lr": 0.1}}}),
])
def test_recipes_write_their_optimiser_values_in_the_optimizer_node(compose_cfg, overrides, expect):
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(compose_cfg(overrides).optimizer, resolve=True)
    assert {k: node.get(k) for k in expect} == expect


def test_ccl_recipe_clips_forward_and_feedback_modules_as_two_sets(compose_cfg):
    """Built from the recipe, one SGD step clips the forward modules' gradient as one vector and the feedback
    modules' as another (the published training loop), whatever their number."""
    from octo.train import build

    cfg = compose_cfg(["experiments=ccl_mlp_mnist", "dataset=synthetic", "model.hidden=[8,6]", "logger=none"])
    _, module = build(cfg)
    (opt,), _ = module.build_optimizers()
    sets = {}
    for g in opt.param_groups:
        for p in g["params"]:
            p.grad = torch.full_like(p, 10.0)
        sets.setdefault(g["clip_group"], []).extend(g["params"])
    assert set(sets) == {"forward", "feedback"}
    process_gradients(opt.param_groups)
    for params in sets.values():
        assert torch.cat([p.grad.flatten() for p in params]).norm().item() == pytest.approx(1.0, rel=1e-5)
