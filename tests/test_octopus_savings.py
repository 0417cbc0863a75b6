"""OctopusNet's FF arms see labelled images through ``Octopus._labelled_trunks``: image part and label maps are
downsampled and convolved separately and summed after the first convolution. These tests hold that path to the
direct one (overlay at full resolution -> bilinear downsampling -> arm), which they spell out as the code did
before, for every arm type with an FF loss and both label encodings: trunk outputs, label scores, training losses
and their gradients, the evaluation's separation metrics, and locality."""

import pytest
import torch
from conftest import assert_local

from octo.algorithms.octopus import Octopus
from octo.algorithms.octopus_rules import LabelOverlay, arm_ff_loss, midpoint_threshold
from octo.encodings.negatives import wrong_labels
from octo.encodings.onehot import onehot_overlay, onehot_split
from octo.evaluation.locality import gradient_leaks
from octo.nn.octopus import OctopusNet
from octo.nn.octopus.common import labelled_conv

C = 4
# 10x10 inputs; arms at 10 (no resampling), 5, 6 and 4: bilinear downsampling by integer and non-integer factors,
# kernels 3 and 5 with zero padding, patches 3 (stride 3, no padding)
TINY = {"channels": [4, 8, 8], "bottleneck": 8, "coordinator": {"hidden": 8},
        "transformer": {"dim": 8, "heads": 2, "ffn": 8, "patch": 3}, "lstm": {"hidden": 4}}
ARMS = {"cnn": [("cnn", 10, 3), ("cnn", 5, 5)], "transformer": [("transformer", 6, 3)], "lstm": [("lstm", 4, 3)]}
FEEDBACK = ("none", "as_coded_rgb_gain", "paper_modulation")


def algo(arms=("cnn",), encoding="fourier", dtype=torch.float64, **kw) -> Octopus:
    """float64 by default; the LSTM arm needs float32 (it casts its input)."""
    spec = [a for name in arms for a in ARMS[name]]
    torch.manual_seed(0)
    net = OctopusNet([3, 10, 10], C, num_arms=len(spec), arm_types=[t for t, _, _ in spec],
                     scales=[s for _, s, _ in spec], kernel_sizes=[k for _, _, k in spec], **TINY)
    a = Octopus(net, C, label_encoding=encoding, **kw).to(dtype)
    # non-trivial feedback state, so that the input gains (CNN arms) or first-map gains are exercised
    g = torch.Generator().manual_seed(2)
    a.fb_gain.copy_(torch.rand(a.fb_gain.shape, generator=g) + 0.5)
    a.fb_mod.copy_(torch.rand(a.fb_mod.shape, generator=g) + 0.5)
    return a


def batch(b=6, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 3, 10, 10, generator=g, dtype=dtype), torch.arange(b) % C


def ff_arms(a) -> list[int]:
    return [i for i, arm in enumerate(a.net.arms) if arm.loss_kind == "ff"]


# --- the direct path, as it was written before the saving ----------------------------------------------------------
def direct_trunks(a, x, labels):
    """Every (label row, image) pair overlaid at full resolution, then downsampled and run through the arms."""
    return a._trunks(a.overlay(x.repeat(labels.shape[0], 1, 1, 1), labels.flatten()), ff_arms(a), ff_scales=True)


def direct_scores(a, x):
    b = x.shape[0]
    trunks = direct_trunks(a, x, torch.arange(C).view(C, 1).expand(C, b))
    return torch.stack([a.net.arms[i].goodness(trunks[i]).view(C, b).T for i in ff_arms(a)])


def direct_losses(a, x, y):
    """``_arm_losses`` of the FF arms before the saving (same RNG draw for the negatives)."""
    b = x.shape[0]
    labels = torch.stack([y, wrong_labels(y, C)])
    trunks = direct_trunks(a, x, labels)
    out = {}
    for i in ff_arms(a):
        g = a.net.arms[i].goodness(trunks[i])
        out[f"arm{i}"] = arm_ff_loss(g[:b], g[b:], midpoint_threshold(g[:b], g[b:]))
    return out


# --- the pieces ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding,value", [("fourier", None), ("onehot", None), ("onehot", -1.5)])
def test_overlay_split_is_bit_exact(encoding, value):
    ov = LabelOverlay(encoding, C, 10, 10, 0.3, value)
    x, _ = batch(dtype=torch.float32)
    y = torch.tensor([3, 0, 1, 2, 2, 1])
    image, maps = ov.split(x)
    assert maps.shape == ((C, 1, 10, 10) if encoding == "fourier" else (C, 3, 10, 10))
    assert torch.equal(ov(x, y), image + maps[y])


def test_onehot_split_across_rows_and_channels():
    x = torch.randn(5, 3, 2, 2)
    y = torch.tensor([9, 0, 4, 5, 7])  # 10 labels on 4-pixel channels: the label pixels span three channels
    image, maps = onehot_split(x, 10)
    assert torch.equal(onehot_overlay(x, y, 10), image + maps[y])


def test_labelled_conv_needs_zero_padding():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")
    with pytest.raises(ValueError, match="zero padding"):
        labelled_conv(conv, torch.randn(2, 3, 5, 5), torch.randn(C, 1, 5, 5), torch.zeros(1, 2, dtype=torch.long))


# --- equal to the direct path --------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["fourier", "onehot"])
@pytest.mark.parametrize("feedback", FEEDBACK)
@pytest.mark.parametrize("arms", ["cnn", "transformer"])
def test_trunks_scores_losses_and_gradients_equal_the_direct_path(arms, feedback, encoding):
    a = algo([arms], encoding, feedback_mode=feedback)
    x, y = batch()
    labels = torch.tensor([[0, 3, 2, 1, 1, 0], [2, 2, 0, 3, 1, 1], [1, 0, 3, 3, 2, 0]])
    with torch.no_grad():
        new, old = a._labelled_trunks(x, labels, ff_arms(a)), direct_trunks(a, x, labels)
        for i in ff_arms(a):
            assert torch.allclose(new[i], old[i], rtol=1e-12, atol=1e-12), i
        assert torch.allclose(a.arm_scores(x), direct_scores(a, x), rtol=1e-12, atol=1e-12)
        assert torch.allclose(a.arm_scores(x, max_rows=2 * x.shape[0]), direct_scores(a, x), rtol=1e-12, atol=1e-12)
    torch.manual_seed(7)
    losses = a.local_losses(x, y, "ff", a.arm_names())
    torch.manual_seed(7)
    expected = direct_losses(a, x, y)
    assert set(losses) == set(expected) == set(a.arm_names())
    for name, loss in losses.items():
        params = list(a.blocks()[name].parameters())
        got = torch.autograd.grad(loss, params)
        want = torch.autograd.grad(expected[name], params)
        assert loss.item() == pytest.approx(expected[name].item(), rel=1e-12, abs=1e-12), name
        for p, q in zip(got, want):
            assert torch.allclose(p, q, rtol=1e-10, atol=1e-12), name


@pytest.mark.parametrize("encoding", ["fourier", "onehot"])
def test_lstm_arm_equals_the_direct_path(encoding):
    # the LSTM arm runs in float32 whatever the input (its first op casts), and only regroups the downsampling
    a = algo(["lstm"], encoding, dtype=torch.float32)
    x, y = batch(dtype=torch.float32)
    with torch.no_grad():
        assert torch.allclose(a.arm_scores(x), direct_scores(a, x), rtol=1e-5, atol=1e-6)
    torch.manual_seed(7)
    loss = a.local_losses(x, y, "ff", ["arm0"])["arm0"]
    torch.manual_seed(7)
    expected = direct_losses(a, x, y)["arm0"]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    params = list(a.blocks()["arm0"].parameters())
    for p, q in zip(torch.autograd.grad(loss, params), torch.autograd.grad(expected, params)):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("encoding", ["fourier", "onehot"])
def test_evaluation_separation_equals_the_direct_path(encoding):
    a = algo(["cnn", "transformer", "lstm"], encoding, dtype=torch.float32).eval()
    x, y = batch(dtype=torch.float32)
    with torch.no_grad():
        got = a._separation(x, y)
        gen = torch.Generator().manual_seed(0)  # the evaluation's fixed-seed negatives
        labels = torch.stack([y, wrong_labels(y, C, generator=gen)])
        trunks = direct_trunks(a, x, labels)
    b = x.shape[0]
    for i in ff_arms(a):
        g = a.net.arms[i].goodness(trunks[i])
        assert got[f"arm{i}/g_pos"].item() == pytest.approx(g[:b].mean().item(), rel=1e-5)
        assert got[f"arm{i}/g_neg"].item() == pytest.approx(g[b:].mean().item(), rel=1e-5)


def test_float32_cifar_shaped_ff_standard_scores():
    """The FF-standard layout (4 CNN arms at 32/16/8/4, Fourier overlay, channels_last) in float32."""
    torch.manual_seed(0)
    a = Octopus(OctopusNet([3, 32, 32], 10, channels=[8, 16, 16], bottleneck=8, coordinator={"hidden": 8}), 10)
    a.fb_gain.uniform_(0.5, 1.5)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        scores = a.arm_scores(x)
        labels = torch.arange(10).view(10, 1).expand(10, 3)
        trunks = a._trunks(a.overlay(x.repeat(10, 1, 1, 1), labels.flatten()), range(4), ff_scales=True)
        direct = torch.stack([a.net.arms[i].goodness(trunks[i]).view(10, 3).T for i in range(4)])
    assert torch.allclose(scores, direct, rtol=1e-5, atol=1e-5)


# --- the standard code path takes the saving ------------------------------------------------------------------------
def test_no_labelled_image_is_built_at_full_resolution(monkeypatch):
    a = algo(["cnn", "transformer", "lstm"], "onehot", dtype=torch.float32)
    monkeypatch.setattr(a.overlay, "forward", lambda *args: pytest.fail("full-resolution overlay built"))
    x, y = batch(dtype=torch.float32)
    for ph in a.phases:
        a.local_losses(x, y, ph, a.phase_blocks(ph))
    a.eval()
    with torch.no_grad():
        a.evaluate(x, y)
        a.arm_scores(x)


@pytest.mark.parametrize("encoding", ["fourier", "onehot"])
def test_every_block_still_learns_only_from_its_own_loss(encoding):
    a = algo(["cnn", "transformer", "lstm"], encoding, feedback_mode="paper_modulation", train_bottleneck=True,
             train_nerve_ring=True, dtype=torch.float32)
    report = gradient_leaks(a, *batch(dtype=torch.float32))
    assert_local(report, {f"{ph}:{b}" for ph in a.phases for b in a.phase_blocks(ph)})
