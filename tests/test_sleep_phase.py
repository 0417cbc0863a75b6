"""OctopusNet's A16 sleep phase (``algorithm.sleep_phase``): off by default and then changes nothing; on, a decoder
block learns to reconstruct each arm's input from its token and its detached dreams are extra FF negatives."""

import csv
import math

import pytest
import torch
from conftest import assert_local

import octo.train
from octo.evaluation.locality import gradient_leaks
from octo.nn.octopus import ModuleDecoder
from octo.utils.errors import ConfigError

from octopus_helpers import algo, batch  # noqa: E402 - the shared tiny OctopusNet


def blobs(b=32, size=8, seed=2):
    """Generated images in the arm's input space: one bright square per class on a noisy background."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(b) % 4
    x = 0.1 * torch.randn(b, 3, size, size, generator=g)
    for i, c in enumerate(y.tolist()):
        r, col = divmod(c, 2)
        x[i, :, r * size // 2:(r + 1) * size // 2, col * size // 2:(col + 1) * size // 2] += 1.5
    return x, y


def all_losses(a, x, y, seed=3):
    torch.manual_seed(seed)
    return {f"{ph}:{k}": v.item() for ph in a.phases for k, v in a.local_losses(x, y, ph, a.phase_blocks(ph)).items()}


# --- off by default: nothing changes -------------------------------------------------------------------------------
# made with the code before the sleep phase existed (same network, batch and seeds)
BEFORE = {"ff:arm0": 1.3774427, "ff:arm1": 1.4004968, "ff:arm2": 1.4157872, "ff:arm3": 1.3903167,
          "coordinator:coordinator": 1.3914114}


def test_off_by_default_gives_the_losses_of_the_code_before_it(compose_cfg):
    assert compose_cfg(["experiments=octopus_ff_standard"]).algorithm.sleep_phase is False
    a = algo()
    assert a.sleep_phase is False and a.decoders is None
    assert list(a.blocks()) == ["arm0", "arm1", "arm2", "arm3", "coordinator"]
    assert not any(k.startswith(("decoders.", "pixel_")) for k in a.state_dict())
    got = all_losses(a, *batch())
    assert got.keys() == BEFORE.keys()
    for k, v in BEFORE.items():
        assert got[k] == pytest.approx(v, abs=2e-6), k


# --- on: the decoder block -----------------------------------------------------------------------------------------
def test_module_decoder_shapes_follow_the_published_architecture():
    d = ModuleDecoder(64, 3, 32)
    convs = [m for m in d.ups if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(64, 32), (32, 16), (16, 8), (8, 4)]
    out = d(torch.randn(5, 64))
    assert out.shape == (5, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    assert ModuleDecoder(8, 1, 7)(torch.randn(2, 8)).shape == (2, 1, 7, 7)  # MNIST's 7x7 arm: resized
    assert ModuleDecoder(8, 3, 4)(torch.randn(2, 8)).shape == (2, 3, 4, 4)


def test_decoder_is_its_own_block_trained_in_the_ff_pass():
    a = algo(sleep_phase=True)
    assert list(a.blocks()) == ["arm0", "arm1", "arm2", "arm3", "decoder", "coordinator"]
    assert a.phase_blocks("ff") == ["arm0", "arm1", "arm2", "arm3", "decoder"]
    assert a.phase_blocks("coordinator") == ["coordinator"]
    # one decoder per arm, each at its arm's resolution
    assert {k: d.size for k, d in a.decoders.items()} == {"0": 8, "1": 4, "2": 4, "3": 4}
    assert "sleep_decoder" in a.describe() and "sleep_decoder" not in algo().describe()
    b = algo(sleep_phase=True, passes=1)
    assert "decoder" in b.phase_blocks("joint")


def test_decoder_loss_decreases_on_generated_data():
    a = algo(sleep_phase=True)
    x, y = blobs()
    params = list(a.decoders.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    seen = []
    for _ in range(40):
        loss = a.local_losses(x, y, "ff", ["arm0", "arm1", "arm2", "arm3", "decoder"])["decoder"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen.append(loss.item())
    assert seen[-1] < 0.5 * seen[0], seen


def test_arms_and_decoder_learn_together_and_the_decoder_still_improves():
    a = algo(sleep_phase=True, sleep_every=2)
    x, y = blobs()
    opts = {n: torch.optim.Adam(m.parameters(), lr=1e-2 if n == "decoder" else 1e-3)
            for n, m in a.blocks().items() if n != "coordinator"}
    seen = []
    for _ in range(30):
        losses = a.local_losses(x, y, "ff", list(opts))
        for n, loss in losses.items():  # per-block stepping, as the training module does
            opts[n].zero_grad()
            loss.backward()
            opts[n].step()
        assert all(math.isfinite(v.item()) for v in losses.values())
        seen.append(losses["decoder"].item())
    assert seen[-1] < 0.5 * seen[0], seen


@pytest.mark.parametrize("kw", [{}, {"sleep_negatives": "replace", "sleep_dreams": 3},
                                {"train_bottleneck": True, "feedback_mode": "paper_modulation", "passes": 1}])
def test_every_block_learns_only_from_its_own_loss_when_asleep(kw):
    a = algo(sleep_phase=True, **kw)
    report = gradient_leaks(a, *batch())
    expected = {f"{ph}:{b}" if len(a.phases) > 1 else b for ph in a.phases for b in a.phase_blocks(ph)}
    assert any("decoder" in k for k in expected)
    assert_local(report, expected)


def test_dreams_are_detached_negatives_with_the_true_label():
    a = algo(net_kw={"num_arms": 1}, sleep_phase=True, sleep_dreams=5)
    x, y = batch()
    arm = a.net.arms[0]
    seen = []
    real = arm.forward_trunk_labelled

    def spy(image, maps, labels, *gains):
        seen.append((image, labels))
        return real(image, maps, labels, *gains)

    arm.forward_trunk_labelled = spy
    losses = a.local_losses(x, y, "ff", ["arm0", "decoder"])
    assert len(seen) == 2  # the positives / wrong-label negatives, then the dreams
    dream, labels = seen[1]
    assert dream.shape == (5, 3, 8, 8) and not dream.requires_grad and dream.grad_fn is None
    assert torch.equal(labels, y[:5].view(1, -1))
    # the arm's loss reaches no decoder parameter, the decoder's loss no arm parameter
    dec = list(a.decoders.parameters())
    assert all(g is None for g in torch.autograd.grad(losses["arm0"], dec, allow_unused=True, retain_graph=True))
    trunk = list(arm.trunk.parameters())
    assert all(g is None for g in torch.autograd.grad(losses["decoder"], trunk, allow_unused=True))


def test_sleep_every_and_replace_schedule_the_dreams():
    a = algo(net_kw={"num_arms": 1}, sleep_phase=True, sleep_every=3, sleep_negatives="replace")
    x, y = batch()
    arm = a.net.arms[0]
    calls = []
    real = arm.forward_trunk_labelled

    def spy(image, maps, labels, *gains):
        calls.append(labels.shape)
        return real(image, maps, labels, *gains)

    arm.forward_trunk_labelled = spy
    for _ in range(4):
        assert "decoder" in a.local_losses(x, y, "ff", ["arm0", "decoder"])
    # batches 0 and 3 sleep: positives alone ([1, 8]) + dreams ([1, 8]); batches 1, 2: positives + wrong labels
    assert calls == [(1, 8), (1, 8), (2, 8), (2, 8), (1, 8), (1, 8)]
    # without gradient (evaluation, locality probes) the schedule does not advance
    with torch.no_grad():
        a.local_losses(x, y, "ff", ["arm0", "decoder"])
    assert a._ff_batches == 4


@pytest.mark.parametrize("kw,msg", [({"sleep_every": 0}, "sleep_every"), ({"sleep_dreams": 0}, "sleep_dreams"),
                                    ({"sleep_negatives": "both"}, "sleep_negatives"),
                                    ({"label_encoding": "onehot"}, "fourier"),
                                    ({"sleep_pixel_std": [1.0, 0.0, 1.0]}, "sleep_pixel_std")])
def test_bad_sleep_settings_are_config_errors(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        algo(sleep_phase=True, **kw)


def test_cg_arms_cannot_sleep():
    with pytest.raises(ConfigError, match="FF arms"):
        algo(net_kw={"arm": "cg", "cg": {"channels_per_group": 2}}, sleep_phase=True)


# --- a real run through the entry point ----------------------------------------------------------------------------
def test_smoke_run_logs_the_decoder_loss(compose_cfg, tmp_path):
    cfg = compose_cfg(["experiments=octopus_ff_standard", "+scale=smoke_octopus", "trainer=debug",
                       "algorithm.eval_arm_metrics=false", "algorithm.sleep_phase=true",
                       "algorithm.sleep_dreams=16", "+optimizer.blocks.decoder.lr=0.003"])
    assert cfg.algorithm.sleep_pixel_std == cfg.dataset.std
    metrics = octo.train.run(cfg)
    assert metrics["status"] == "ok", metrics["failure"]
    assert metrics["algorithm"]["sleep_phase"] is True
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for block in ("arm0", "decoder", "coordinator"):
        values = [float(r[f"train/loss/{block}"]) for r in rows if r.get(f"train/loss/{block}")]
        assert values and all(math.isfinite(v) for v in values), block
