"""Counter-Current Learning: golden values of every local rule, locality of every network pair,
the published gradient processing, the input pipeline and the STL-10 recipes' loading. Every ccl_* / bp_ccl_*
experiment runs end to end in tests/test_experiments.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_local
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from octo.algorithms.ccl import (CCL, BPMatched, ae_pair_loss, confidence_mask, cosine_similarity_loss,
                                 dot_similarity_loss, paired_difference_loss)
from octo.evaluation.locality import gradient_leaks
from octo.nn.ccl_nets import CCLConvAE, CCLConvNet, CCLMLP
from octo.utils.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
EYE2 = torch.eye(2)

# --- golden values (hand-computed) --------------------------------------------------------------------------


def test_dot_similarity_rule():
    # S = A Bᵀ = [[1, 0], [1, 2]]; S - Y = [[0, 0], [1, 1]] -> mse 0.5; x 256 * 0.5 / d(=2) = 64 -> 32
    a, b = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    assert dot_similarity_loss(a, b, EYE2, scale_c=0.5).item() == pytest.approx(32.0)


def test_cosine_similarity_rule():
    # Â = [[.6, .8], [0, 1]], B̂ = I: cross mse((.4² + .8²) / 4) = 0.2; ÂÂᵀ off-diagonals .8 -> 1.28 / 4
    # = .32, x 0.5 = .16; B̂B̂ᵀ = I -> 0. Total 0.36.
    a, b = torch.tensor([[3.0, 4.0], [0.0, 2.0]]), torch.tensor([[5.0, 0.0], [0.0, 0.5]])
    loss = cosine_similarity_loss(a, b, EYE2, scale_c=1.0, scale_ssl=0.5)
    assert loss.item() == pytest.approx(0.36, abs=1e-6)


def test_paired_difference_rule():
    # B[y] = [[2, 2], [0, 0]]; A - B[y] = [[-1, 0], [3, 4]] -> 26 / 4 = 6.5, x 0.5 = 3.25
    a, b = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    assert paired_difference_loss(a, b, torch.tensor([2, 0]), scale_c=0.5).item() == pytest.approx(3.25)


def test_autoencoder_pair_rule():
    # mse(A, 0) = 30 / 4 = 7.5, x H = 2 -> 15; centred/normalised A has squared sum 1 -> mse .25, x 2 -> .5
    a, b = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]), torch.zeros(1, 1, 2, 2)
    assert ae_pair_loss(a, b, 1.0, 1.0, end=False).item() == pytest.approx(15.5, abs=1e-5)
    assert ae_pair_loss(a, b, 1.0, 1.0, end=True).item() == pytest.approx(15.0)


def test_confidence_filter_drops_samples_above_the_threshold():
    # softmax([5, 0, 0])_0 = e^5 / (e^5 + 2) = 0.9867 > 0.9 -> dropped; the same row with label 1 is kept
    logits = torch.tensor([[5.0, 0.0, 0.0], [5.0, 0.0, 0.0], [2.0, 0.0, 0.0]])  # last: p_0 = 0.787
    assert confidence_mask(logits, torch.tensor([0, 1, 0])).flatten().tolist() == [0.0, 1.0, 1.0]


def test_warmup_uses_the_in_epoch_batch_index():
    algo = CCL(CCLMLP([1, 2, 2], 2, hidden=[3]), 2, warmup=4, warmup_batches_per_epoch=3)
    scales = []
    for _ in range(6):
        scales.append(algo.warmup_scale())
        algo.steps += 1
    assert scales == [0.25, 0.5, 0.75, 0.25, 1.0, 1.0]  # step 3 starts epoch 2: (0 + 1) / 4, as published


@pytest.mark.parametrize("similarity, loss", [("dot", "similarity_matrix"), ("cosine", "similarity_matrix"),
                                              ("dot", "paired_difference")])
def test_split_pair_losses_have_the_published_gradients(similarity, loss):
    """Each module gets L(a, r.detach()) or L(a.detach(), r): together exactly the pair loss's gradient."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 6, generator=g, requires_grad=True)
    b = torch.randn(3, 6, generator=g, requires_grad=True)
    y = torch.tensor([0, 2, 1, 1, 0])
    target = F.one_hot(y, 3).float()
    algo = CCL(CCLMLP([1, 2, 3], 3, hidden=[6]), 3, similarity=similarity, ccl_loss=loss)
    full = {("dot", "similarity_matrix"): lambda: dot_similarity_loss(a, b, target, 0.5),
            ("cosine", "similarity_matrix"): lambda: cosine_similarity_loss(a, b, target, 0.5, 0.5),
            ("dot", "paired_difference"): lambda: paired_difference_loss(a, b, y, 0.5)}[(similarity, loss)]()
    ga, gb = torch.autograd.grad(full, [a, b])
    lf, lb = algo._pair_losses(a, b, y, target, end=False, want_f=True, want_b=True)
    assert torch.allclose(torch.autograd.grad(lf, a)[0], ga, atol=1e-6)
    assert torch.allclose(torch.autograd.grad(lb, b)[0], gb, atol=1e-6)


def test_autoencoder_split_losses_have_the_published_gradients():
    g = torch.Generator().manual_seed(1)
    a, b = (torch.randn(2, 3, 4, 4, generator=g, requires_grad=True) for _ in range(2))
    algo = CCL(CCLConvAE([3, 16, 16], channels=[2, 2, 2, 2]), 10, loss_scale_c=1.0, loss_scale_d=1.0)
    ga, gb = torch.autograd.grad(ae_pair_loss(a, b), [a, b])
    lf, lb = algo._pair_losses(a, b, None, None, end=False, want_f=True, want_b=True)
    assert torch.allclose(torch.autograd.grad(lf, a)[0], ga)
    assert torch.allclose(torch.autograd.grad(lb, b)[0], gb)


# --- locality -----------------------------------------------------------------------------------------------


def _check_local(algo, x, y):
    report = gradient_leaks(algo, x, y)
    assert_local(report, algo.blocks())
    # the blocks partition the network's trainable parameters
    ids = [id(p) for m in algo.blocks().values() for p in m.parameters()]
    assert len(ids) == len(set(ids)) == sum(1 for _ in algo.net.parameters())


def test_ccl_mlp_every_module_learns_only_from_its_own_pair():
    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 4, 4), torch.randint(0, 3, (8,))
    _check_local(CCL(CCLMLP([1, 4, 4], 3, hidden=[6, 5, 4]), 3), x, y)


@pytest.mark.parametrize("arch", ["cnn", "cnn_pool"])
def test_ccl_cnn_every_module_learns_only_from_its_own_pair(arch):
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 3, (8,))
    net = CCLConvNet([3, 8, 8], 3, channels=[4, 6, 8], arch=arch, input_size=8)
    _check_local(CCL(net, 3, similarity="cosine", filter_confident=arch == "cnn_pool"), x, y)


def test_ccl_autoencoder_every_module_learns_only_from_its_own_pair():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 16, 16)
    _check_local(CCL(CCLConvAE([3, 16, 16], channels=[4, 4, 6, 6]), 10), x, torch.zeros(4, dtype=torch.long))


def test_bp_matched_is_one_block_over_the_forward_modules_only():
    torch.manual_seed(0)
    algo = BPMatched(CCLMLP([1, 4, 4], 3, hidden=[6]), 3)
    assert gradient_leaks(algo, torch.randn(8, 1, 4, 4), torch.randint(0, 3, (8,))) == {
        "network": {"own": True, "leaks_to": []}}
    fb = {id(p) for layer in algo.net.layers.values() for p in layer.fb.parameters()}
    assert not fb & {id(p) for p in algo.blocks()["network"].parameters()}


# --- networks, input pipeline, safety -----------------------------------------------------------------------


def test_cnn_pairs_have_matching_shapes_and_mnist_is_brought_to_32():
    net = CCLConvNet([1, 28, 28], 10)
    algo = CCL(net, 10, similarity="cosine", input_transform="mnist_as_coded", input_normalization="none",
               dataset_mean=[0.5], dataset_std=[0.5])
    x = torch.zeros(2, 1, 28, 28)  # normalised 0 = raw 0.5
    for train in (True, False):
        xi = algo.prepare_input(x, train)
        hs, rs = net.forward_chain(xi), net.reverse_chain(torch.eye(10))
        assert [h[0].numel() for h in hs] == [r[0].numel() for r in rs]
    # as coded: eval resizes the digit (no background border); consistent: eval pads it with black (raw 0)
    assert algo.prepare_input(x, False).min().item() == pytest.approx(0.5)
    algo.input_transform = "mnist_consistent"
    assert algo.prepare_input(x, False)[0, 0, 0, 0].item() == 0.0
    assert algo.prepare_input(x, False)[0, 0, 16, 16].item() == pytest.approx(0.5)


def test_invalid_settings_fail_with_the_choices():
    with pytest.raises(ConfigError, match="similarity_matrix, paired_difference"):
        CCL(CCLMLP([1, 2, 2], 2, hidden=[3]), 2, ccl_loss="pairs")
    with pytest.raises(ConfigError, match="input_transform"):  # 28x28 data, 32x32 network, no transform
        CCL(CCLConvNet([1, 28, 28], 10), 10)
    with pytest.raises(ConfigError, match="divisible"):
        CCLConvAE([3, 20, 20])


def test_autoencoder_evaluates_reconstruction_and_saves_an_image(tmp_path):
    algo = CCL(CCLConvAE([3, 16, 16], channels=[2, 2, 2, 2]), 10)
    assert algo.monitor == ("recon_mse", "min")
    x = torch.rand(3, 3, 16, 16)
    assert set(algo.evaluate(x, torch.zeros(3, dtype=torch.long))) == {"recon_mse"}
    assert algo.save_reconstructions(x, tmp_path / "recon.png").stat().st_size > 0


# --- experiments (each one runs end to end in tests/test_experiments.py) ------------------------------------

EXPERIMENTS = sorted(p.stem for p in (REPO / "experiments").glob("*ccl_*.yaml"))


def test_every_ccl_experiment_is_present():
    assert len(EXPERIMENTS) == 22, EXPERIMENTS


def test_stl10_experiments_load_stl10(compose_cfg, tmp_path):
    # the four STL-10 recipes read the binary release (generated here in its layout): 96x96 for the
    # autoencoders, resized once to 32x32 for the classifiers (STL10_cls); without the files, one DataError line
    from conftest import tiny_stl10
    from hydra.utils import instantiate

    from octo.utils.errors import DataError

    tiny_stl10(tmp_path / "data", n_train=520, n_test=6)
    for name in [n for n in EXPERIMENTS if "stl10" in n]:
        cfg = compose_cfg([f"experiments={name}"])
        OmegaConf.update(cfg, "dataset.root", str(tmp_path / "empty"), merge=False)
        with pytest.raises(DataError, match="stl10_binary"):
            instantiate(cfg.dataset, _convert_="all").setup("fit")
        OmegaConf.update(cfg, "dataset.root", str(tmp_path / "data"), merge=False)
        dm = instantiate(cfg.dataset, _convert_="all")
        dm.setup("fit")
        size = 96 if "_ae_" in name else 32
        assert tuple(dm.splits["train"][0].shape) == (20, 3, size, size), name
        assert dm.num_classes == 10 and dm.val_size == 500
