"""Golden values for every local rule and label encoding (one tiny fixed input, hand-computed truth)."""

import math

import pytest
import torch

from octo.algorithms.goodness import ff_loss, goodness
from octo.encodings.fourier import fourier_overlay, fourier_patterns
from octo.encodings.negatives import hardest_wrong_labels, hybrid_images, smooth_masks, wrong_labels
from octo.encodings.onehot import onehot_overlay
from octo.nn.mlp import length_normalize


def test_goodness_mean_and_sum():
    h = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.allclose(goodness(h, "mean"), torch.tensor([2.5, 12.5]))
    assert torch.allclose(goodness(h, "sum"), torch.tensor([5.0, 25.0]))


def test_ff_loss_golden():
    # mean over [theta - g+, g- - theta] = softplus(-1) and softplus(1) -> their mean
    loss = ff_loss(torch.tensor([3.0, 1.0]), torch.tensor([1.0, 3.0]), 2.0)
    expected = 0.5 * (math.log1p(math.exp(-1)) + math.log1p(math.exp(1)))
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # at the midpoint the loss is ln 2 per value
    assert ff_loss(torch.tensor([2.0]), torch.tensor([2.0]), 2.0).item() == pytest.approx(math.log(2), abs=1e-6)
    # softplus does not overflow where log(1 + exp(.)) would
    assert torch.isfinite(ff_loss(torch.tensor([-1e4]), torch.tensor([1e4]), 0.0))


def test_length_normalize_golden():
    x = torch.tensor([[3.0, 4.0]])
    assert torch.allclose(length_normalize(x), torch.tensor([[3.0, 4.0]]) / (5.0 + 1e-4))


def test_onehot_overlay_golden():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    out = onehot_overlay(x, torch.tensor([2]), num_classes=3)
    # first 3 pixels zeroed, pixel 2 set to the batch max (11), everything else untouched
    assert out.flatten().tolist() == [0, 0, 11, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert x.flatten()[0] == 0 and x.flatten()[2] == 2  # input not modified
    fixed = onehot_overlay(x, torch.tensor([0]), num_classes=3, label_value=5.0)
    assert fixed.flatten()[:3].tolist() == [5, 0, 0]


def test_fourier_patterns_golden():
    p = fourier_patterns(10, 5, 5).double()
    row0 = torch.tensor([0.5, 1.0, 0.5, 0.0, 0.5], dtype=torch.float64)  # sin over 0..2pi, min-max scaled
    assert torch.allclose(p[0], row0.expand(5, 5), atol=1e-6)       # class 0: 0 degrees, f = 1 -> varies along x
    assert torch.allclose(p[2], row0.view(5, 1).expand(5, 5), atol=1e-6)  # class 2: 90 degrees -> along y
    p7 = fourier_patterns(10, 7, 7).double()
    row4 = torch.tensor([0.5, 1.0, 0.0, 0.5, 1.0, 0.0, 0.5], dtype=torch.float64)  # class 4: 0 degrees, f = 2
    assert torch.allclose(p7[4], row4.expand(7, 7), atol=1e-6)
    # class 1 (45 degrees) is symmetric under transposition and constant along anti-diagonals' direction
    assert torch.allclose(p[1], p[1].T, atol=1e-6)
    assert p.min() >= 0 and p.max() <= 1


def test_fourier_covers_more_than_12_classes():
    p = fourier_patterns(100, 32, 32)
    assert p.shape == (100, 32, 32)
    # classes 12+ continue the rule (new frequencies): no two of the first 20 patterns coincide
    flat = p[:20].flatten(1)
    d = torch.cdist(flat, flat) + torch.eye(20) * 1e3
    assert d.min() > 1.0


def test_fourier_overlay_golden():
    x = torch.ones(1, 3, 5, 5)
    out = fourier_overlay(x, torch.tensor([0]), 10, strength=0.5)
    expected = 0.5 + 0.5 * fourier_patterns(10, 5, 5)[0]
    assert torch.allclose(out[0, 1], expected)


def test_wrong_labels_never_true_and_uniform():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (20000,), generator=g)
    neg = wrong_labels(y, 10, "uniform", generator=g)
    assert not (neg == y).any()
    counts = torch.bincount((neg - y) % 10, minlength=10)
    assert counts[0] == 0 and counts[1:].min() > 1900  # offsets 1..9 about equally likely
    shuffled = wrong_labels(y, 10, "shuffle", generator=g)
    assert sorted(shuffled.tolist()) == sorted(y.tolist())  # a permutation: may hit the true label


def test_hardest_wrong_label():
    scores = torch.tensor([[5.0, 4.0, 1.0], [0.0, 1.0, 3.0]])
    assert hardest_wrong_labels(scores, torch.tensor([0, 2])).tolist() == [1, 1]
    sampled = hardest_wrong_labels(scores.repeat(50, 1), torch.tensor([0, 2]).repeat(50), sample=True)
    assert not (sampled.view(50, 2) == torch.tensor([0, 2])).any()


def test_smooth_masks_and_hybrids():
    g = torch.Generator().manual_seed(0)
    masks = smooth_masks(4, 28, 28, generator=g)
    assert masks.shape == (4, 1, 28, 28) and masks.dtype == torch.bool
    assert not torch.equal(masks[0], masks[1])  # a fresh mask per negative
    # blurring makes large connected regions: neighbouring pixels agree far more often than chance
    agree = (masks[..., 1:] == masks[..., :-1]).float().mean()
    assert agree > 0.8
    a, b = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    m = torch.tensor([[[[True, False], [False, True]]]])
    assert hybrid_images(a, m, partner=b).flatten().tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("value", [None, 1.5])
def test_labelled_first_layer_equals_overlay_then_forward(normalize, value):
    # FF's first layer computes the image part once for all labels; outputs and weight gradients must equal the
    # plain overlay-then-forward path
    from octo.nn.mlp import NormLinear

    torch.manual_seed(0)
    layer = NormLinear(20, 7, normalize_input=normalize)
    x = torch.randn(5, 1, 4, 5)
    labels = torch.tensor([[0, 1, 2, 3, 2], [3, 3, 0, 1, 1]])
    v = x.max() if value is None else torch.tensor(value)
    fast = layer.forward_labelled(x, labels, 4, v)
    slow = torch.cat([layer(onehot_overlay(x, row, 4, value).reshape(5, -1)) for row in labels])
    assert fast.shape == (10, 7)
    assert torch.allclose(fast, slow, atol=1e-6)
    g_fast = torch.autograd.grad(fast.pow(2).sum(), list(layer.parameters()))
    g_slow = torch.autograd.grad(slow.pow(2).sum(), list(layer.parameters()))
    for a, b in zip(g_fast, g_slow):
        assert torch.allclose(a, b, atol=1e-5)


def test_ff_losses_equal_the_overlay_path():
    from octo.algorithms.ff import FF
    from octo.nn.mlp import MLP

    torch.manual_seed(0)
    algo = FF(MLP([1, 6, 6], [12, 10]), num_classes=4, neg_label="shuffle")
    x, y = torch.randn(8, 1, 6, 6), torch.randint(0, 4, (8,))
    torch.manual_seed(1)
    fast = algo.local_losses(x, y, "train", ["layer0", "layer1"])
    torch.manual_seed(1)
    neg = wrong_labels(y, 4, "shuffle")
    h = algo.model(torch.cat([onehot_overlay(x, y, 4), onehot_overlay(x, neg, 4)]))
    for i, hi in enumerate(h):
        g = goodness(hi)
        assert fast[f"layer{i}"].item() == pytest.approx(ff_loss(g[:8], g[8:], 2.0).item(), abs=1e-6)


def test_ff_shuffle_once_keeps_each_samples_negative():
    # the reference draws its negative labels once: with a full batch in a fixed order, every step must pair each
    # image with the same label; shuffle re-draws them
    from octo.algorithms.ff import FF
    from octo.nn.mlp import MLP

    torch.manual_seed(3)
    y = torch.arange(200) % 10
    x = torch.randn(200, 1, 6, 6)
    once = FF(MLP([1, 6, 6], [8]), num_classes=10, neg_label="shuffle_once")
    first, second = once._negative_labels(x, y), once._negative_labels(x, y)
    assert torch.equal(first, second) and not torch.equal(first, y)
    assert 0 < (first == y).float().mean() < 0.3            # a permutation: some negatives carry the true label
    fresh = FF(MLP([1, 6, 6], [8]), num_classes=10, neg_label="shuffle")
    assert not torch.equal(fresh._negative_labels(x, y), fresh._negative_labels(x, y))


@pytest.mark.parametrize("skip_first", [False, True])
def test_ff_evaluate_equals_the_two_pass_metrics(skip_first):
    # FF's evaluate scores every label once and derives the accuracy and the per-layer metrics from that one pass;
    # the numbers must equal the base class's two passes (predict, then block_metrics)
    from octo.algorithms.base import LocalAlgorithm
    from octo.algorithms.ff import FF
    from octo.nn.mlp import MLP

    torch.manual_seed(0)
    algo = FF(MLP([1, 6, 6], [12, 10, 8]), num_classes=4, predict_skip_first=skip_first)
    x, y = torch.randn(16, 1, 6, 6), torch.randint(0, 4, (16,))
    with torch.no_grad():
        one_pass = algo.evaluate(x, y)
        two_pass = LocalAlgorithm.evaluate(algo, x, y)
    assert list(one_pass) == list(two_pass)
    assert set(one_pass) == {"acc", *(f"layer{i}/{m}" for i in range(3) for m in ("acc", "separation"))}
    for key in two_pass:
        assert torch.equal(one_pass[key], two_pass[key]), key


def test_ff_evaluate_scores_the_labels_once(monkeypatch):
    from octo.algorithms.ff import FF
    from octo.nn.mlp import MLP

    algo = FF(MLP([1, 6, 6], [12, 10]), num_classes=4)
    calls = []
    original = FF.layer_goodness
    monkeypatch.setattr(FF, "layer_goodness", lambda self, x: calls.append(1) or original(self, x))
    algo.evaluate(torch.randn(8, 1, 6, 6), torch.randint(0, 4, (8,)))
    assert len(calls) == 1
