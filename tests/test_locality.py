"""Locality of FF and BP (other algorithms test theirs in their own files with the same helper)."""

import torch
from conftest import assert_local

from octo.algorithms.bp import BP
from octo.algorithms.ff import FF
from octo.evaluation.locality import gradient_leaks
from octo.nn.mlp import MLP


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 1, 6, 6, generator=g), torch.randint(0, 4, (16,), generator=g)


def test_ff_every_layer_learns_only_from_its_own_loss():
    torch.manual_seed(0)
    algo = FF(MLP([1, 6, 6], [12, 10, 8]), num_classes=4)
    report = gradient_leaks(algo, *_batch())
    assert_local(report, {"layer0", "layer1", "layer2"})


def test_gradient_leaks_detects_a_non_local_algorithm():
    # the checker must be able to fail: an FF variant that forgets to detach leaks into lower layers
    class LeakyFF(FF):
        def local_losses(self, x, y, phase, active):
            h = self.model.flatten(x)
            out = {}
            for i, layer in enumerate(self.model.layers):
                h = layer(h)  # no detach
                out[f"layer{i}"] = h.pow(2).mean()
            return out

    torch.manual_seed(0)
    report = gradient_leaks(LeakyFF(MLP([1, 6, 6], [12, 10]), num_classes=4), *_batch())
    assert report["layer1"]["leaks_to"] == ["layer0"]


def test_bp_is_one_block():
    torch.manual_seed(0)
    report = gradient_leaks(BP(MLP([1, 6, 6], [12]), num_classes=4), *_batch())
    assert report == {"network": {"own": True, "leaks_to": []}}


def test_ff_batched_label_scoring_equals_a_per_label_loop():
    from octo.algorithms.goodness import goodness
    from octo.encodings.onehot import onehot_overlay

    torch.manual_seed(0)
    for skip_first in (False, True):
        algo = FF(MLP([1, 6, 6], [12, 10, 8]), num_classes=4, predict_skip_first=skip_first)
        x, _ = _batch()
        batched = algo.predict(x)
        loop = torch.zeros(x.shape[0], 4)
        for c in range(4):
            label = torch.full((x.shape[0],), c)
            hs = algo.model(onehot_overlay(x, label, 4))
            loop[:, c] = sum(goodness(h) for h in (hs[1:] if skip_first else hs))
        assert torch.allclose(batched, loop, atol=1e-6)
