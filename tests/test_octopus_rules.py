"""OctopusNet learning rules: golden values, locality, the faithful-vs-corrected switches, resilience."""

import math

import pytest
from conftest import assert_local
import torch
import torch.nn.functional as F

from octo.algorithms.octopus import Octopus
from octo.algorithms.octopus_rules import arm_ff_loss, cg_loss, midpoint_threshold, module_dropout_keep
from octo.evaluation.locality import gradient_leaks
from octo.evaluation.resilience import failure_patterns, resilience_report
from octo.nn.octopus import OctopusNet
from octo.utils.errors import ConfigError

from octopus_helpers import TINY, algo, batch  # noqa: E402 - the shared tiny OctopusNet


def sp(v):
    return math.log1p(math.exp(v))


# --- golden values -------------------------------------------------------------------------------------------------
def test_cg_loss_golden():
    g = torch.tensor([[3.0, 1.0, 0.0], [0.5, 2.5, 1.5]])
    y = torch.tensor([0, 1])
    # G_y = [3, 2.5]; mean of the wrong groups = [0.5, 1.0]; theta = 2
    truth = (sp(-1.0) + sp(-0.5)) / 2 + (sp(-1.5) + sp(-1.0)) / 2
    assert cg_loss(g, y, 2.0).item() == pytest.approx(truth, abs=1e-6)


def test_cg_group_goodness_from_features():
    net = OctopusNet([1, 4, 4], 3, arm="cg", num_arms=1, **TINY)
    a = net.arms[0]
    r = torch.tensor([[[[1.0]], [[3.0]], [[2.0]], [[0.0]], [[1.0]], [[1.0]]]])  # [1, C*S=6, 1, 1]
    assert torch.allclose(a.goodness((r, r)), torch.tensor([[5.0, 2.0, 1.0]]))  # means of (1+9)/2, (4+0)/2, 1


def test_arm_ff_loss_is_the_sum_of_two_batch_means():
    gp, gn = torch.tensor([1.0, 3.0]), torch.tensor([0.5, 1.5])
    theta = midpoint_threshold(gp, gn)
    assert theta.item() == pytest.approx(1.5)
    truth = (sp(0.5) + sp(-1.5)) / 2 + (sp(-1.0) + sp(0.0)) / 2
    assert arm_ff_loss(gp, gn, theta).item() == pytest.approx(truth, abs=1e-6)
    same = torch.ones(4)
    assert arm_ff_loss(same, same, midpoint_threshold(same, same)).item() == pytest.approx(2 * math.log(2))


def test_ff_arm_loss_uses_overlaid_positives_and_wrong_label_negatives():
    a = algo(dict(num_arms=1))  # one full-resolution CNN arm
    x, y = batch()
    torch.manual_seed(5)
    loss = a.local_losses(x, y, "ff", ["arm0"])["arm0"]
    torch.manual_seed(5)
    y_neg = (y + torch.randint(1, 4, y.shape)) % 4
    arm = a.net.arms[0]
    pats = a.overlay.patterns
    g = arm.goodness(arm.forward_trunk(0.5 * torch.cat([x, x]) + 0.5 * pats[torch.cat([y, y_neg])].unsqueeze(1),
                                       torch.ones(3)))
    assert (y_neg != y).all()
    assert loss.item() == pytest.approx(arm_ff_loss(g[:8], g[8:], midpoint_threshold(g[:8], g[8:])).item(), rel=1e-5)


# --- locality ------------------------------------------------------------------------------------------------------
CASES = {
    "ff_standard": ({}, {}),
    "ff_corrected": ({}, dict(train_bottleneck=True, train_nerve_ring=True, module_dropout=0.5,
                             feedback_mode="paper_modulation", adaptive_threshold_respected=True)),
    "cg_stride": (dict(arm="cg", cg={"channels_per_group": 2, "compress": "stride"}), dict(train_bottleneck=True)),
    "sff": ({}, dict(readout="sff")),
    "hetero": (dict(arm_types=["cnn", "cg", "transformer", "lstm"]), dict(train_bottleneck=True, passes=1)),
    "gumbel": (dict(coordinator={"hidden": 8, "competition": "gumbel"}), dict(train_nerve_ring=True)),
}


@pytest.mark.parametrize("case", CASES)
def test_every_block_learns_only_from_its_own_loss(case):
    net_kw, kw = CASES[case]
    a = algo(net_kw, **kw)
    report = gradient_leaks(a, *batch())
    expected = {f"{ph}:{b}" if len(a.phases) > 1 else b for ph in a.phases for b in a.phase_blocks(ph)}
    assert_local(report, expected)


# --- faithful switches ---------------------------------------------------------------------------------------------
def test_untrained_bottleneck_and_ring_are_not_blocks_and_stay_fixed():
    a = algo()
    assert list(a.blocks()) == ["arm0", "arm1", "arm2", "arm3", "coordinator"]
    x, y = batch()
    for ph in a.phases:
        sum(a.local_losses(x, y, ph, a.phase_blocks(ph)).values()).backward()
    assert all(p.grad is None for arm in a.net.arms for p in arm.bottleneck.parameters())
    assert all(p.grad is None for p in a.net.ring.parameters())
    assert all(p.grad is not None for p in a.net.arms[0].trunk.parameters())
    b = algo(train_bottleneck=True, train_nerve_ring=True)
    assert list(b.blocks()) == ["arm0", "arm1", "arm2", "arm3", "bottleneck", "nerve_ring", "coordinator"]
    assert b.phase_blocks("coordinator") == ["bottleneck", "nerve_ring", "coordinator"]
    losses = b.local_losses(x, y, "coordinator", b.phase_blocks("coordinator"))
    assert set(losses) == {"bottleneck", "nerve_ring", "coordinator"}


def test_as_coded_feedback_is_three_stale_input_gains():
    a = algo(dict(num_arms=2, arm_types=["cnn", "cg"])).eval()
    x1, _ = batch()
    x2 = torch.randn(8, 3, 8, 8)
    assert torch.equal(a.fb_gain, torch.ones(2, 3))
    with torch.no_grad():
        fwd = a.full_forward(x1)
        logits, alpha, h_agg = a.net.head(a._tokens(fwd["trunks"]))
        fb = a.net.coordinator.feedback_vectors(h_agg, alpha)
        assert torch.equal(a.fb_gain, torch.ones(2, 3))        # stored, not yet applied
        a.full_forward(x2)
    assert torch.allclose(a.fb_gain, fb[0, :, :3])              # sample 0's first 3 entries, per arm
    g = a.fb_gain[0]
    assert ((g > 0) & (g < 1)).all()
    in_gain, mid = a._gains(0)
    assert torch.equal(in_gain, g) and mid is None
    assert a._gains(1) == (None, None)                          # CG arms have no feedback hook (bug 5 fixed)
    arm = a.net.arms[0]
    with torch.no_grad():
        expected = arm.forward_trunk(x1 * g.view(1, 3, 1, 1))
        assert torch.allclose(a._trunks(x1, [0])[0], expected)  # applied to every later use of the arm
    none = algo(feedback_mode="none").eval()
    with torch.no_grad():
        none.full_forward(x1)
    assert none._gains(0) == (None, None)


def test_paper_feedback_modulates_first_feature_maps_on_the_next_batch():
    a = algo(feedback_mode="paper_modulation")
    x, y = batch()
    a.local_losses(x, y, "coordinator", ["coordinator"])
    assert not torch.equal(a.fb_mod, torch.ones_like(a.fb_mod))
    in_gain, mid = a._gains(0)
    assert in_gain is None and mid.shape == (4,)  # B = 8 feedback values stretched to 4 conv1 channels


def test_adaptive_threshold_flag_is_ignored_by_cnn_arms_as_coded():
    x, y = batch()
    losses = {}
    for respected in (False, True):
        for adaptive in (True, False):
            a = algo(dict(num_arms=1), ff_adaptive_threshold=adaptive, adaptive_threshold_respected=respected,
                     ff_threshold=50.0)
            torch.manual_seed(3)
            losses[respected, adaptive] = a.local_losses(x, y, "ff", ["arm0"])["arm0"].item()
    assert losses[False, True] == losses[False, False]           # A11 is a no-op as coded
    assert losses[True, True] == losses[False, True]
    assert losses[True, False] != losses[True, True]             # theta 50 when respected


def test_sff_second_pass_ff_step_switch():
    a = algo(readout="sff")
    assert a.phases == ("ff", "sff") and "coordinator" not in a.blocks()
    assert a.phase_blocks("sff") == ["arm0", "arm1", "arm2", "arm3", "sff_heads"]
    b = algo(readout="sff", sff_second_pass_ff_step=False)
    assert b.phase_blocks("sff") == ["sff_heads"]
    x, y = batch()
    assert set(b.local_losses(x, y, "sff", b.phase_blocks("sff"))) == {"sff_heads"}
    b.eval()
    m = b.evaluate(x, y)
    assert {"acc", "acc_ensemble", "acc_ensemble_logits", "arm0/acc", "arm3/weight"} <= set(m)


def test_sff_second_pass_steps_the_arms_before_the_heads():
    a = algo(readout="sff")
    x, y = batch()
    steps = list(a.local_loss_steps(x, y, "sff", a.phase_blocks("sff")))
    assert [set(s) for s in steps] == [{"arm0", "arm1", "arm2", "arm3"}, {"sff_heads"}]
    assert [set(s) for s in a.local_loss_steps(x, y, "ff", a.phase_blocks("ff"))] == [set(a.arm_names())]


def test_cg_eval_multiscale_switch():
    a = algo(dict(arm="cg"))
    assert [a.ff_scale(i) for i in range(4)] == [8, 8, 8, 8]   # CG arms FF-train at full resolution
    assert [a.eval_scale(i) for i in range(4)] == [8, 4, 4, 4]    # ...but see downsampled images later (as coded)
    b = algo(dict(arm="cg"), cg_eval_multiscale=False)
    assert [b.eval_scale(i) for i in range(4)] == [8, 8, 8, 8]


def test_module_dropout_zeroes_one_token():
    torch.manual_seed(0)
    keeps = torch.stack([module_dropout_keep(4, 1.0, "cpu") for _ in range(200)])
    assert (keeps.sum(1) == 3).all() and (keeps == 0).any(0).all()  # always exactly one, every arm chosen
    assert (module_dropout_keep(4, 0.0, "cpu") == 1).all()


def test_bad_settings_fail_fast():
    with pytest.raises(ConfigError, match="feedback_mode"):
        algo(feedback_mode="paper")
    with pytest.raises(ConfigError, match="label_encoding"):
        algo(label_encoding="binary")
    with pytest.raises(ConfigError, match="nerve_ring"):
        algo(dict(nerve_ring={"enabled": False}), train_nerve_ring=True)


def test_onehot_label_encoding_and_more_than_12_classes():
    torch.manual_seed(0)
    a = Octopus(OctopusNet([3, 8, 8], 20, **TINY), 20)  # Fourier patterns continue past the published 12
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 13, 19, 7])
    assert set(a.local_losses(x, y, "ff", a.phase_blocks("ff"))) == {"arm0", "arm1", "arm2", "arm3"}
    b = algo(label_encoding="onehot", onehot_label_value=1.0)
    x, y = batch(4)
    over = b.overlay(x, y)
    assert torch.equal(over.flatten(1)[:, :4], F.one_hot(y, 4).float())


# --- resilience ----------------------------------------------------------------------------------------------------
def test_failure_patterns():
    keep, pats = failure_patterns(4)
    assert len(pats) == 1 + 4 + 6 + 4
    assert keep[0].tolist() == [1, 1, 1, 1] and keep[1 + 4].tolist() == [0, 0, 1, 1]  # first pair: arms 0, 1
    assert keep[-1].tolist() == [0, 0, 0, 1]                                           # arm 3 alone
    assert failure_patterns(1)[0].tolist() == [[1.0], [0.0]]


def test_every_single_and_pair_failure_zeroes_those_tokens():
    a = algo().eval()
    x, y = batch()
    keep, pats = failure_patterns(4)
    r = a.resilience_batch(x, keep, max_rows=20)  # several chunks
    with torch.no_grad():
        tokens = a._tokens(a._trunks(x))
        for row, (_, failed) in enumerate(pats):
            t = tokens.clone()
            t[:, list(failed)] = 0
            assert torch.allclose(r["logits"][row], a.net.head(t)[0], atol=1e-5), failed


@pytest.mark.parametrize("mode", ["as_coded_rgb_gain", "paper_modulation"])
def test_resilience_moves_the_feedback_state_as_the_test_pass_does(mode):
    # started from the same state, the intact row of every batch equals the test pass's logits and leaves the
    # same state behind: the final evaluation does not depend on what ran before it
    a = algo(feedback_mode=mode).eval()
    x, y = batch(12)
    batches = [x[:4], x[4:8], x[8:]]
    with torch.no_grad():
        a.full_forward(torch.randn(4, 3, 8, 8))         # a non-trivial stored feedback to start from
    start = {k: v.clone() for k, v in a.named_buffers()}
    with torch.no_grad():
        test_logits = [a.full_forward(xb)["logits"] for xb in batches]
    after_test = {k: v.clone() for k, v in a.named_buffers()}
    for k, v in a.named_buffers():
        v.copy_(start[k])
    keep, _ = failure_patterns(4)
    for xb, expected in zip(batches, test_logits):
        assert torch.allclose(a.resilience_batch(xb, keep)["logits"][0], expected, atol=1e-5)
    for k, v in a.named_buffers():
        assert torch.equal(v, after_test[k]), k


def test_resilience_report():
    a = algo(dict(num_arms=3, arm_types=["cnn", "cg", "lstm"]))
    x, y = batch()
    rep = resilience_report(a, [(x[:5], y[:5]), (x[5:], y[5:])])
    assert a.training                              # mode restored
    assert set(rep["single_failure"]) == {"arm0", "arm1", "arm2"}
    assert set(rep["pair_failure"]) == {"arm0+arm1", "arm0+arm2", "arm1+arm2"}
    assert rep["floor_single"] == min(rep["single_failure"].values())
    assert rep["critical_arm"] == min(rep["single_failure"], key=rep["single_failure"].get)
    assert rep["floor_double"] == min(rep["pair_failure"].values())
    assert rep["n_images"] == 8 and len(rep["specialization"]["arm1"]) == 4
    assert sum(rep["attention"].values()) == pytest.approx(1.0, abs=1e-5)
    a.eval()
    with torch.no_grad():
        assert rep["intact"] == pytest.approx((a.predict(x).argmax(1) == y).float().mean().item())
        assert rep["arm_accuracy"]["arm1"] == pytest.approx(
            (a.arm_scores(x)[1].argmax(1) == y).float().mean().item())
    sff = resilience_report(algo(readout="sff"), [(x, y)])
    assert sff["failure"].startswith("aux logits") and len(sff["pair_failure"]) == 6


# --- speed paths: channels_last and bf16 autocast give the same computation --------------------------------------
def test_channels_last_and_bf16_autocast():
    kw = dict(train_bottleneck=True, train_nerve_ring=True)
    net_kw = dict(arm_types=["cnn", "cg", "transformer", "lstm"])
    x, y = batch()
    out = {}
    for cl in (False, True):
        a = algo(net_kw, channels_last=cl, **kw)
        torch.manual_seed(1)
        out[cl] = {k: v.item() for ph in a.phases for k, v in a.local_losses(x, y, ph, a.phase_blocks(ph)).items()}
    assert out[False] == pytest.approx(out[True], rel=1e-4)
    a = algo(net_kw, channels_last=True, **kw)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for ph in a.phases:
            losses = a.local_losses(x, y, ph, a.phase_blocks(ph))
            assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
            sum(losses.values()).backward()
        a.eval()
        assert 0 <= a.evaluate(x, y)["acc"] <= 1


@pytest.mark.parametrize("passes", [1, 2])
def test_per_block_stepping_like_the_training_module(passes):
    """Losses first, then zero_grad / backward / step block by block (schedule.optimizer_layout=per_block)."""
    a = algo(train_bottleneck=True, train_nerve_ring=True, feedback_mode="paper_modulation", passes=passes)
    opts = {n: torch.optim.Adam(m.parameters(), lr=1e-3) for n, m in a.blocks().items()}
    before = {n: [p.detach().clone() for p in m.parameters()] for n, m in a.blocks().items()}
    x, y = batch()
    for _ in range(2):
        for ph in a.phases:
            for name, loss in a.local_losses(x, y, ph, a.phase_blocks(ph)).items():
                opts[name].zero_grad()
                loss.backward()
                opts[name].step()
    for n, m in a.blocks().items():
        assert any(not torch.equal(p, q) for p, q in zip(m.parameters(), before[n])), n


def test_sff_rejects_switches_it_cannot_use():
    for kw in (dict(train_bottleneck=True), dict(train_nerve_ring=True), dict(module_dropout=0.5)):
        with pytest.raises(ConfigError, match="readout=sff"):
            algo(readout="sff", **kw)
