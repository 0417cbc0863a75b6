"""Predictive Forward-Forward: golden values of every local rule, locality, batched prediction, experiments
(present here; each one runs end to end in tests/test_experiments.py).

The golden numbers are worked out by hand in the comments on a 2-input, 2-unit, 2-class network whose weights
are set explicitly (``_tiny``); the tests compare the code against those plain-float computations.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import assert_local
import torch
from PIL import Image

from octo.algorithms.pff import PFF, fit_diag_gmm
from octo.evaluation.locality import gradient_leaks
from octo.nn.pff_circuits import Lateral, PFFNet, competition_mask, goodness_loss, normalize, ste_relu
from octo.utils.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def _tiny(**settings) -> PFF:
    """d = 2 inputs, n = 2 units (one lateral group), C = 2 classes, 2 latents; noise off, K = 1 step.

    W1 = W2 = I, b1 = (0.1, -1), b2 = 0, V2 = [[0, .5], [.5, 0]], V = 0.1 I, L1 = 0,
    L2 = [[.5, .25], [.25, .5]], head W = I, b = 0; G2 = [[.5, .1], [.2, .3]], G1 = I, Gy = I.
    """
    net = PFFNet([1, 1, 2], num_classes=2, n_units=2, g_units=2, group_size=2)
    with torch.no_grad():
        eye = torch.eye(2)
        net.rep1.W.copy_(eye)
        net.rep1.b.copy_(torch.tensor([[0.1, -1.0]]))
        net.rep1.V.copy_(torch.tensor([[0.0, 0.5], [0.5, 0.0]]))
        net.rep1.lateral.weight.zero_()
        net.rep2.W.copy_(eye)
        net.rep2.b.zero_()
        net.rep2.V.copy_(0.1 * eye)
        net.rep2.lateral.weight.copy_(torch.tensor([[[0.5, 0.25], [0.25, 0.5]]]))
        net.head["W"].copy_(eye)
        net.head["b"].zero_()
        net.gen1["G"].copy_(torch.tensor([[0.5, 0.1], [0.2, 0.3]]))
        net.gen0["G"].copy_(eye)
        net.gen2["G"].copy_(eye)
    kwargs = {"steps": 1, "threshold": 1.0, "eps_r": 0.0, "eps_g": 0.0}
    return PFF(net, num_classes=2, **{**kwargs, **settings})


# Hand computation for x = (0.3, 0.4): n(x) = (0.6, 0.8)
#   bottom-up: z1_0 = relu((0.6, 0.8) + (0.1, -1)) = (0.7, 0); n(z1_0) = (1, 0); z2_0 = relu((1, 0)) = (1, 0)
#   step, layer 1 (label-free): top = n(z2_0) V2 = (0, 0.5);
#       pre1 = (0.6, 0.8) + (0, 0.5) + (0.1, -1) = (0.7, 0.3)
#       z1_1 = 0.7 * (0.7, 0.3) + 0.3 * (0.7, 0) = (0.7, 0.21);  sum z1_1^2 = 0.5341
#   step, layer 2: Lam2 = [[-.5, .25], [.25, -.5]], z2_0 Lam2 = (-0.5, 0.25)
#       -> -gamma z2_0 Lam2 = (0.5, -0.25)
#       label 0: top = 5 (1, 0) V = (0.5, 0):  pre2 = (1, 0) + (0.5, 0) + (0.5, -0.25) = (2, -0.25)
#                z2_1 = 0.7 * (2, 0) + 0.3 * (1, 0) = (1.7, 0);          sum z2_1^2 = 2.89
#       label 1: top = (0, 0.5):  pre2 = (1.5, 0.25);  z2_1 = 0.7 * (1.5, 0.25) + 0.3 * (1, 0) = (1.35, 0.175)
#                sum z2_1^2 = 1.8225 + 0.030625 = 1.853125
X = torch.tensor([[[[0.3, 0.4]]]])
SQ1, SQ2_Y0, SQ2_Y1 = 0.5341, 2.89, 1.853125


def test_normalize_and_ste_relu_golden():
    assert torch.allclose(normalize(torch.tensor([[3.0, 4.0]])), torch.tensor([[0.6, 0.8]]), atol=1e-7)
    v = torch.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    out = ste_relu(v)
    out.sum().backward()
    assert out.tolist() == [0.0, 0.0, 3.0]
    assert v.grad.tolist() == [1.0, 1.0, 1.0]  # straight through, also where v < 0


def test_lateral_matrix_matches_the_dense_reference_form():
    torch.manual_seed(0)
    lat = Lateral(6, 3)
    torch.nn.init.uniform_(lat.weight, -0.05, 0.05)  # some negative entries: relu switches them off
    dense_l = torch.block_diag(*lat.weight.detach())
    relu_l, m, eye = torch.relu(dense_l), competition_mask(6, 3), torch.eye(6)
    expected = relu_l * m * (1 - eye) - relu_l * eye  # lateral: inhibit the group, excite yourself
    assert torch.allclose(lat.dense(), expected)
    z = torch.rand(4, 6)
    assert torch.allclose(lat(z), z @ expected, atol=1e-6)
    assert competition_mask(4, 2).tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    # hand: L = [[.5, .25], [.25, .5]] -> Lam = [[-.5, .25], [.25, -.5]]; (1, 2) Lam = (0, -0.75)
    lat2 = Lateral(2, 2)
    with torch.no_grad():
        lat2.weight.copy_(torch.tensor([[[0.5, 0.25], [0.25, 0.5]]]))
    assert torch.allclose(lat2(torch.tensor([[1.0, 2.0]])), torch.tensor([[0.0, -0.75]]))


def test_goodness_loss_golden_both_signs():
    z = torch.tensor([[1.0, 2.0], [1.0, 2.0]])  # sum of squares 5
    lab = torch.tensor([1.0, 0.0])
    # low_is_positive, theta 3: logit = 3 - 5 = -2; positive: softplus(2), negative: softplus(-2)
    low = goodness_loss(z, lab, 3.0, -1.0).item()
    assert low == pytest.approx(0.5 * (softplus(2) + softplus(-2)), abs=1e-6)
    # high_is_positive: logit = 5 - 3 = 2; positive: softplus(-2), negative: softplus(2) -> same mean here
    assert goodness_loss(z[:1], lab[:1], 3.0, 1.0).item() == pytest.approx(softplus(-2), abs=1e-6)
    assert goodness_loss(z[:1], lab[:1], 3.0, -1.0).item() == pytest.approx(softplus(2), abs=1e-6)


def test_state_update_and_classification_golden():
    algo = _tiny(eval_steps=1, eval_window_start=0)
    m = algo.model
    z1, z2, _ = m.bottom_up(m.flatten(X), algo.phi)
    assert torch.allclose(z1, torch.tensor([[0.7, 0.0]]), atol=1e-6)
    assert torch.allclose(z2, torch.tensor([[1.0, 0.0]]), atol=1e-6)
    for label, z2_expected in ((0, [1.7, 0.0]), (1, [1.35, 0.175])):
        y = algo.y_scale * torch.nn.functional.one_hot(torch.tensor([label]), 2).float()
        z1n, z2n = m.step(m.x_drive(m.flatten(X)), y, z1, z2, alpha=0.3, gamma=1.0, phi=algo.phi)
        assert torch.allclose(z1n, torch.tensor([[0.7, 0.21]]), atol=1e-6)
        assert torch.allclose(z2n, torch.tensor([z2_expected]), atol=1e-6)
    # score_c = -(sum z1^2 + sum z2^2) / 2 over the window (1 step) / (K_high - K_low + 1 = 2)
    scores = algo.predict(X)
    expected = [-(SQ1 + SQ2_Y0) / 4, -(SQ1 + SQ2_Y1) / 4]
    assert torch.allclose(scores, torch.tensor([expected]), atol=1e-6)
    assert scores.argmax(1).item() == 1  # lowest energy wins
    flipped = _tiny(eval_steps=1, eval_window_start=0, goodness_sign="high_is_positive")
    assert flipped.predict(X).argmax(1).item() == 0


def test_local_losses_golden():
    algo = _tiny()
    # C = 2: the wrong label of y = 0 is always 1, so the negative row is (x, 1); K = 1, no noise
    (losses,) = list(algo.inference_steps(X, torch.tensor([0]), list(algo.blocks())))
    theta = 1.0
    # rep1: both rows sum 0.5341 -> logit theta - 0.5341; positive softplus(-logit), negative softplus(logit)
    l1 = theta - SQ1
    assert losses["rep1"].item() == pytest.approx(0.5 * (softplus(-l1) + softplus(l1)), abs=1e-5)
    # rep2: positive row 2.89 (label 0), negative row 1.853125 (label 1)
    lp, ln = theta - SQ2_Y0, theta - SQ2_Y1
    assert losses["rep2"].item() == pytest.approx(0.5 * (softplus(-lp) + softplus(ln)), abs=1e-5)
    # head on z2_0 = (1, 0): logits (1, 0), true class 0 -> 5 * log(1 + e^-1)
    assert losses["head"].item() == pytest.approx(5 * math.log1p(math.exp(-1)), abs=1e-5)
    # gen1: z1_hat = relu(n(z2_1) G2); positive n = (1, 0) -> (0.5, 0.1);
    #       negative n = (1.35, 0.175) / sqrt(1.853125) = (a, b)
    #       -> (a, b) G2 = (0.5 a + 0.2 b, 0.1 a + 0.3 b);
    #       target (0.7, 0.21) for both rows
    r = math.sqrt(SQ2_Y1)
    a, b = 1.35 / r, 0.175 / r
    e_pos = (0.5 - 0.7) ** 2 + (0.1 - 0.21) ** 2
    e_neg = (0.5 * a + 0.2 * b - 0.7) ** 2 + (0.1 * a + 0.3 * b - 0.21) ** 2
    assert losses["gen1"].item() == pytest.approx((e_pos + e_neg) / 2, abs=1e-5)
    # gen0: x_hat = clip(n(z1_1) I) = (0.7, 0.21) / sqrt(0.5341) vs x = (0.3, 0.4), same for both rows
    s = math.sqrt(SQ1)
    assert losses["gen0"].item() == pytest.approx((0.7 / s - 0.3) ** 2 + (0.21 / s - 0.4) ** 2, abs=1e-5)
    # gen2: z_g = 0 -> z2_hat = 0, E2 = mean of sum z2_1^2
    assert losses["gen2"].item() == pytest.approx((SQ2_Y0 + SQ2_Y1) / 2, abs=1e-5)
    # without negatives in the generative circuit only the positive row counts
    (pos_only,) = list(_tiny(gen_on_negatives=False).inference_steps(X, torch.tensor([0]), ["gen2"]))
    assert pos_only["gen2"].item() == pytest.approx(SQ2_Y0, abs=1e-5)


def test_latent_step_golden():
    # z_g = (3, 4): u = n(z_g) = (0.6, 0.8); Gy = [[1], [0]] -> z2_hat = 0.6; target 1 -> E2 = 0.16
    # dE2/dz2_hat = -0.8; dE2/du = (-0.8, 0); Jacobian of n at z_g = (I - u u^T) / 5
    #   = [[0.128, -0.096], [-0.096, 0.072]] -> dE2/dz_g = (-0.1024, 0.0768) (STE relu passes it on)
    net = PFFNet([1, 1, 2], num_classes=2, n_units=1, g_units=2, group_size=1)
    with torch.no_grad():
        net.gen2["G"].copy_(torch.tensor([[1.0], [0.0]]))
    algo = PFF(net, num_classes=2, beta=0.5)
    e2, z_next = algo.latent_step(torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0]]))
    assert e2.item() == pytest.approx(0.16, abs=1e-6)
    assert torch.allclose(z_next, torch.tensor([[3 + 0.5 * 0.1024, 4 - 0.5 * 0.0768]]), atol=1e-6)


def test_head_loss_is_finite_only_with_the_stable_log():
    # logits (-200, 200) for the true class 0: softmax underflows to 0, log(0) = -inf as coded (bug #6)
    for stable, finite in ((True, True), (False, False)):
        algo = _tiny(stable_log=stable)
        with torch.no_grad():
            algo.model.head["W"].copy_(torch.tensor([[-200.0, 200.0], [0.0, 0.0]]))
        loss = algo._head_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
        assert bool(torch.isfinite(loss)) is finite
        if stable:
            assert loss.item() == pytest.approx(5 * 400, rel=1e-5)  # 5 * CE = 5 * (200 - (-200))


def _small(seed: int = 0, **settings) -> tuple[PFF, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    algo = PFF(PFFNet([1, 6, 6], num_classes=4, n_units=20, g_units=5, group_size=5), num_classes=4, steps=4,
               threshold=1.0, **settings)
    g = torch.Generator().manual_seed(seed)
    return algo, torch.rand(16, 1, 6, 6, generator=g), torch.randint(0, 4, (16,), generator=g)


def test_every_block_learns_only_from_its_own_loss():
    algo, x, y = _small()
    report = gradient_leaks(algo, x, y)
    assert_local(report, {"rep1", "rep2", "head", "gen2", "gen1", "gen0"})
    # the per-step losses the reference steps on are local too, also after the weights changed
    blocks = algo.blocks()
    owner = {id(p): n for n, block in blocks.items() for p in block.parameters()}
    params = list(algo.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    learned = set()
    for losses in algo.local_loss_steps(x, y, "train", list(blocks)):
        for name, loss in losses.items():
            grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
            touched = {owner[id(p)] for p, g in zip(params, grads)
                       if g is not None and bool(g.abs().sum() > 0)}
            assert touched <= {name}, (name, touched)
            learned |= touched
        opt.zero_grad()
        torch.stack(list(losses.values())).sum().backward()
        opt.step()
    # gen2 gets no gradient at the first step only (z_g = 0 gives z2_hat = 0 whatever Gy is)
    assert learned == set(blocks)


def test_local_loss_steps_yields_one_dict_per_inference_step():
    algo, x, y = _small()
    assert len(list(algo.local_loss_steps(x, y, "train", ["rep1", "gen0"]))) == 4
    assert [set(d) for d in algo.local_loss_steps(x, y, "train", ["rep1"])] == [{"rep1"}] * 4
    settle, _, _ = _small(update_every_step=False)
    assert len(list(settle.local_loss_steps(x, y, "train", ["rep1"]))) == 1
    assert settle.describe()["updates_per_batch"] == 1


def test_batched_prediction_equals_a_loop_over_labels():
    algo, x, _ = _small()
    m, scores = algo.model, []
    for c in range(4):  # the reference's classify: one run per label from a copy of the bottom-up state
        z1, z2, _ = m.bottom_up(m.flatten(x), algo.phi)
        y = algo.y_scale * torch.nn.functional.one_hot(torch.full((16,), c), 4).float()
        acc = torch.zeros(16)
        for k in range(algo.eval_steps):
            z1, z2 = m.step(m.x_drive(m.flatten(x)), y, z1, z2, alpha=algo.alpha, gamma=algo.gamma,
                            phi=algo.phi)
            if k >= algo.eval_window_start:
                acc += -0.5 * (z1.pow(2).sum(1) + z2.pow(2).sum(1))
        scores.append(acc / 3)
    assert (algo.eval_steps, algo.eval_window_start) == (3, 1)  # K = 4: K // 2 + 1, K // 2 - 1
    assert torch.allclose(algo.predict(x), torch.stack(scores, 1), atol=1e-5)
    metrics = algo.evaluate(x, torch.zeros(16, dtype=torch.long))
    assert {"acc", "rep1/acc", "rep2/acc", "head/acc", "gen0/recon_sse"} <= set(metrics)


def test_bad_settings_fail_with_the_valid_choices():
    with pytest.raises(ConfigError, match="low_is_positive, high_is_positive"):
        _small(goodness_sign="low")
    with pytest.raises(ConfigError, match="eval_window_start"):
        _small(eval_steps=2, eval_window_start=2)
    with pytest.raises(ConfigError, match="multiple of"):
        PFFNet([1, 6, 6], num_classes=4, n_units=21, group_size=5)
    with pytest.raises(ConfigError, match="model=pff"):
        PFF(torch.nn.Linear(2, 2), num_classes=4)


def test_save_images_writes_a_grid(tmp_path):
    algo, x, _ = _small()
    path = algo.save_images(x, tmp_path / "img" / "grid.png", n=5, components=3)
    w, h = Image.open(path).size
    assert (w, h) == (5 * (6 + 2) + 2, 4 * (6 + 2) + 2)  # 5 columns, 4 rows of 6 x 6 with padding 2
    gmm = fit_diag_gmm(torch.cat([torch.randn(200, 2) - 5, torch.randn(200, 2) + 5]), 2,
                       generator=torch.Generator().manual_seed(0))
    assert sorted(gmm.means[:, 0].round().tolist()) == [-5.0, 5.0]


EXPERIMENTS = sorted(p.stem for p in (REPO / "experiments").glob("*pff_*.yaml"))


def test_experiments_exist():
    assert {"pff_mnist", "pff_fashion_mnist", "pff_cifar10", "bp_pff_mnist", "bp_pff_fashion_mnist",
            "bp_pff_cifar10", "pff_mnist_reduced", "bp_pff_mnist_reduced"} <= set(EXPERIMENTS)
