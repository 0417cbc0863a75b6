"""Recurrent FF (octo/algorithms/recurrent_ff.py, octo/nn/recurrent.py): golden values, locality, updates per batch.
Every rff_* / bp_rff_* experiment runs end to end in tests/test_experiments.py."""

import math

import pytest
from conftest import assert_local
import torch

from octo.algorithms.recurrent_ff import RecurrentFF, badness, default_window
from octo.evaluation.locality import gradient_leaks
from octo.nn.recurrent import RecurrentNet, l2_normalize, rms_normalize
from octo.utils.errors import ConfigError



def _batch(n=16):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 6, 6, generator=g), torch.randint(0, 4, (n,), generator=g)


def _identity_net(layers=1, lateral=True, bias=False):
    """2 pixels, 2 classes, hidden layers of width 2 whose three maps are identities (no biases)."""
    net = RecurrentNet([1, 1, 2], [2] * layers, num_classes=2, bias=bias, lateral=lateral)
    with torch.no_grad():
        for layer in net.layers:
            for m in (layer.forward_map, layer.backward_map, layer.lateral_map):
                if m is not None:
                    m.weight.copy_(torch.eye(2))
                    if m.bias is not None:
                        m.bias.zero_()
    return net


def sp(v):
    return math.log1p(math.exp(v))


# --- golden values ------------------------------------------------------------------------------------------
def test_normalisations_golden():
    v = torch.tensor([[3.0, 4.0]])
    assert torch.allclose(rms_normalize(v), v / math.sqrt(12.5 + 1e-8))  # unit mean square
    assert torch.allclose(l2_normalize(v), v / 5.0, atol=1e-7)             # unit length
    assert torch.equal(rms_normalize(torch.zeros(1, 3)), torch.zeros(1, 3))
    assert torch.allclose(badness(v), torch.tensor([12.5]))


def test_default_eval_window_matches_the_spec_table():
    assert [default_window(t) for t in (10, 15, 20, 150)] == [(4, 6), (6, 8), (8, 12), (60, 90)]


def test_layer_step_golden():
    # u = x, d = label (top layer), s = rms(prev); a = F u - B d + R s; leaky_relu(0.01)
    net = _identity_net()
    x, label, prev = torch.tensor([[1.0, -2.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]])
    h = net.layer_step(0, x, label, [prev])
    s = 2.0 / math.sqrt(2.0)  # rms of [2, 0] is sqrt(2)
    assert torch.allclose(h, torch.tensor([[1 - 1 + s, -0.01 * 2.0]]), atol=1e-6)
    # the top-down term is subtracted with its bias
    net.layers[0].backward_map.bias = torch.nn.Parameter(torch.tensor([0.5, 0.5]))
    h = net.layer_step(0, x, label, [prev])
    assert torch.allclose(h, torch.tensor([[s - 0.5, -0.01 * 2.5]]), atol=1e-6)


def test_two_layer_step_reads_neighbours_normalised():
    net = _identity_net(layers=2)
    x, label = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 1.0]])
    prev = [torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 4.0]])]
    r0, r1 = torch.tensor([[math.sqrt(2), 0.0]]), torch.tensor([[0.0, math.sqrt(2)]])  # rms-normalised states
    h0, h1 = net.step(x, label, prev)
    assert torch.allclose(h0, torch.relu(x - r1 + r0) + 0.01 * torch.clamp(x - r1 + r0, max=0), atol=1e-6)
    a1 = r0 - label + r1
    assert torch.allclose(h1, torch.nn.functional.leaky_relu(a1, 0.01), atol=1e-6)


def test_loss_golden_inverted_and_hinton():
    # one layer, no pre-label step, one labelled step from zero states: h = 0.7 * relu(x - onehot)
    x, y = torch.tensor([[1.0, 2.0]]).view(1, 1, 1, 2), torch.tensor([0])  # negative label is then 1
    algo = RecurrentFF(_identity_net(), 2, threshold=1.0, damping=0.7, prelabel_steps=0, steps=1)
    b_pos = (0.0 + (0.7 * 2) ** 2) / 2   # a = [0, 2]
    b_neg = ((0.7 * 1) ** 2 + (0.7 * 1) ** 2) / 2  # a = [1, 1]
    loss = algo.local_losses(x, y, "train", ["layer0"])["layer0"]
    assert loss.item() == pytest.approx(0.5 * (sp(1 - b_neg) + sp(b_pos - 1)), abs=1e-6)
    algo.objective = "hinton"
    loss = algo.local_losses(x, y, "train", ["layer0"])["layer0"]
    assert loss.item() == pytest.approx(0.5 * (sp(1 - b_pos) + sp(b_neg - 1)), abs=1e-6)


def test_damping_and_prelabel_golden():
    # P = 1 undamped neutral step: h1 = relu(x - [.5, .5]); then one damped labelled step from h1
    net = _identity_net(lateral=False)
    algo = RecurrentFF(net, 2, prelabel_steps=1, steps=1, damping=0.7)
    x = torch.tensor([[1.0, 2.0]])
    h1 = algo.prelabel(x)[0]
    assert torch.allclose(h1, torch.tensor([[0.5, 1.5]]))
    h2 = algo.damped_step(x, torch.tensor([[0.0, 1.0]]), [h1])[0]
    assert torch.allclose(h2, 0.3 * h1 + 0.7 * torch.tensor([[1.0, 1.0]]))


def test_prediction_golden_argmin_badness():
    # same single step as the loss golden: label 0 -> badness 0.98, label 1 -> 0.49; lowest badness wins
    algo = RecurrentFF(_identity_net(), 2, prelabel_steps=0, steps=1)
    x = torch.tensor([[1.0, 2.0]]).view(1, 1, 1, 2)
    bad = algo.layer_badness(x)
    assert torch.allclose(bad, torch.tensor([[[0.98, 0.49]]]), atol=1e-6)
    assert algo.predict(x).argmax(1).item() == 1
    algo.objective = "hinton"
    assert algo.predict(x).argmax(1).item() == 0


def test_batched_prediction_equals_one_run_per_label():
    torch.manual_seed(0)
    algo = RecurrentFF(RecurrentNet([1, 6, 6], [12, 10, 8], 4), 4, prelabel_steps=3, steps=6)
    x, _ = _batch(5)
    xf = x.flatten(1)
    first, last = algo.eval_window
    per_label = []
    for c in range(4):  # the repository's brute force: reset, P neutral steps, T labelled steps, per label
        states = algo.prelabel(xf)
        label = torch.nn.functional.one_hot(torch.full((5,), c), 4).float()
        acc = 0
        for t in range(last + 1):
            states = algo.damped_step(xf, label, states)
            if t >= first:
                acc = acc + torch.stack([badness(s) for s in states])
        per_label.append(acc / (last - first + 1))
    expected = torch.stack(per_label, dim=2)  # [L, B, C]
    assert torch.allclose(algo.layer_badness(x), expected, atol=1e-5)


def test_local_losses_are_the_mean_of_the_per_step_losses():
    x, y = _batch()
    torch.manual_seed(1)
    algo = RecurrentFF(RecurrentNet([1, 6, 6], [12, 10, 8], 4), 4, prelabel_steps=2, steps=3)
    torch.manual_seed(5)
    steps = list(algo.labelled_step_losses(x, y, ["layer0", "layer1", "layer2"]))
    torch.manual_seed(5)
    mean = algo.local_losses(x, y, "train", ["layer0", "layer1", "layer2"])
    assert len(steps) == 3
    for k in mean:
        assert mean[k].item() == pytest.approx(sum(s[k].item() for s in steps) / 3, abs=1e-6)


def test_init_follows_the_repository():
    torch.manual_seed(0)
    net = RecurrentNet([1, 28, 28], [300, 300], num_classes=10, bias=False)
    top, bottom = net.layers[1], net.layers[0]
    assert top.backward_map.weight.std().item() == pytest.approx(3 * math.sqrt(2 / 10), rel=0.05)
    assert bottom.backward_map.weight.abs().max().item() <= 0.05
    r = bottom.lateral_map.weight
    assert torch.allclose(r @ r.T, 2 * torch.eye(300), atol=1e-4)  # orthogonal, gain sqrt(2)
    bound = math.sqrt(6 / 784)
    assert bottom.forward_map.weight.abs().max().item() <= bound
    assert all(m.bias is None for layer in net.layers for m in (layer.forward_map, layer.backward_map))


# --- locality -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lateral", [True, False])
def test_every_layer_learns_only_from_its_own_loss(lateral):
    torch.manual_seed(0)
    algo = RecurrentFF(RecurrentNet([1, 6, 6], [12, 10, 8], 4, lateral=lateral), 4, prelabel_steps=2, steps=4)
    report = gradient_leaks(algo, *_batch())
    assert_local(report, {"layer0", "layer1", "layer2"})


def test_every_time_step_is_local():
    # each per-step loss (what the repository steps on) touches only its own layer as well
    torch.manual_seed(0)
    algo = RecurrentFF(RecurrentNet([1, 6, 6], [12, 10, 8], 4), 4, prelabel_steps=1, steps=3)
    x, y = _batch()
    params = {n: list(m.parameters()) for n, m in algo.blocks().items()}
    flat = [p for ps in params.values() for p in ps]
    for losses in algo.labelled_step_losses(x, y, list(params)):
        for name, loss in losses.items():
            grads = torch.autograd.grad(loss, flat, allow_unused=True, retain_graph=True)
            moved = {id(q) for g, q in zip(grads, flat) if g is not None and g.abs().sum() > 0}
            touched = {n for n, ps in params.items() if any(id(p) in moved for p in ps)}
            assert touched == {name}


def test_only_active_layers_get_losses():
    torch.manual_seed(0)
    algo = RecurrentFF(RecurrentNet([1, 6, 6], [12, 10, 8], 4), 4, prelabel_steps=1, steps=2)
    assert set(algo.local_losses(*_batch(), "train", ["layer1"])) == {"layer1"}


# --- config -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{"objective": "positive"}, {"damping": 0.0}, {"damping": 1.5},
                                    {"steps": 0}, {"prelabel_steps": -1}, {"eval_window": [3, 9]},
                                    {"eval_window": [5, 2]}, {"neg_label": "shuffle"}])
def test_bad_algorithm_settings_fail_fast(kwargs):
    with pytest.raises(ConfigError):
        RecurrentFF(RecurrentNet([1, 6, 6], [12, 10], 4), 4, **{"steps": 8, **kwargs})


@pytest.mark.parametrize("kwargs", [{"activation": "tanh"}, {"normalization": "layer"}, {"hidden": []}])
def test_bad_model_settings_fail_fast(kwargs):
    with pytest.raises(ConfigError):
        RecurrentNet([1, 6, 6], **{"hidden": [4], "num_classes": 4, **kwargs})


def test_num_classes_mismatch_fails():
    with pytest.raises(ConfigError):
        RecurrentFF(RecurrentNet([1, 6, 6], [4], 10), 4)


# --- updates per batch (every rff_* experiment runs end to end in tests/test_experiments.py) -------------
def test_loss_steps_per_step_and_per_batch():
    x, y = _batch()
    torch.manual_seed(1)
    algo = RecurrentFF(RecurrentNet([1, 6, 6], [12, 10], 4), 4, prelabel_steps=1, steps=3)
    assert algo.updates == "per_step"  # the repository's rule is the default
    assert len(list(algo.local_loss_steps(x, y, "train", ["layer0", "layer1"]))) == 3
    algo.updates = "per_batch"
    (only,) = list(algo.local_loss_steps(x, y, "train", ["layer0", "layer1"]))
    assert set(only) == {"layer0", "layer1"}


def test_per_step_updates_move_the_weights_between_steps():
    # what the module does with local_loss_steps: step after each yield; step t+1 must see the updated weights
    torch.manual_seed(0)
    algo = RecurrentFF(RecurrentNet([1, 6, 6], [12, 10], 4), 4, prelabel_steps=1, steps=2)
    opt = torch.optim.SGD(algo.parameters(), lr=0.5)
    x, y = _batch()
    w = algo.model.layers[0].forward_map.weight
    seen = []
    for losses in algo.local_loss_steps(x, y, "train", ["layer0", "layer1"]):
        seen.append(w.detach().clone())
        opt.zero_grad()
        torch.stack(list(losses.values())).sum().backward()
        opt.step()
    assert len(seen) == 2 and not torch.equal(seen[0], seen[1])
