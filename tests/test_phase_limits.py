"""A limited training epoch still runs every phase of a multi-phase algorithm.

The training loader makes one pass per phase, one after another. ``trainer.limit_train_batches`` below one pass
(the debug trainer and the smoke scales use 2 batches) used to cut the epoch inside the first pass, so
OctopusNet's coordinator and the SFF heads never trained. The loader now shares the limit out over the passes.
"""

from __future__ import annotations

import csv
import math

import lightning as L
import pytest
import torch

import octo.train
from octo.data.datamodule import DeviceDataModule
from octo.data.loader import DeviceLoader
from octo.utils.errors import ConfigError

SYNTH_KW = {"mean": [0.39], "std": [0.26], "num_classes": 4, "input_shape": [1, 8, 8], "val_size": 64,
            "synthetic": {"n_train": 256, "n_test": 128, "seed": 0}}
PER_PASS = (256 - 64) // 32  # training batches of one pass at batch_size=32


def id_loader(n: int = 100, batch_size: int = 10, **kwargs) -> DeviceLoader:
    """A training loader whose labels are the image indices, to track which images each batch holds."""
    return DeviceLoader(torch.zeros(n, 1, 4, 4, dtype=torch.uint8), torch.arange(n), batch_size, [0.0], [1.0],
                        train=True, **kwargs)


# --- the loader ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("limit,phases", [(2, [0, 1]), (4, [0, 0, 1, 1]), (5, [0, 0, 0, 1, 1]),
                                          (19, [0] * 10 + [1] * 9), (20, [0] * 10 + [1] * 10),
                                          (500, [0] * 10 + [1] * 10)])
def test_limit_is_shared_out_over_the_passes(limit, phases):
    loader = id_loader(passes=2, limit=limit, seed=3)
    batches = list(loader)
    assert [p for _, _, p in batches] == phases
    assert len(loader) == len(batches) == sum(loader.pass_lengths)
    # the first pass is the start of the unlimited one; every pass draws distinct images
    full = list(id_loader(passes=2, seed=3))
    first = [y for _, y, p in batches if p == 0]
    assert all(torch.equal(a, b) for a, b in zip(first, [y for _, y, _ in full]))
    for k in (0, 1):
        ids = torch.cat([y for _, y, p in batches if p == k])
        assert len(ids.unique()) == len(ids)


def test_no_limit_changes_nothing():
    aug = {"crop_padding": 1, "hflip": True}  # augmentation draws from the random stream too
    plain = id_loader(passes=3, seed=1, augment=aug)
    capped = id_loader(passes=3, seed=1, augment=aug, limit=30)  # a limit of the whole epoch is no limit
    for _ in range(2):  # two epochs: the random stream is consumed identically
        a, b = list(plain), list(capped)
        assert len(a) == len(b) == 30
        assert all(torch.equal(x1, x2) and torch.equal(y1, y2) and p1 == p2
                   for (x1, y1, p1), (x2, y2, p2) in zip(a, b, strict=True))


def test_limit_below_the_passes_is_refused():
    with pytest.raises(ConfigError, match="2 passes"):
        id_loader(passes=2, limit=1)
    loader = id_loader(passes=1, limit=1)
    loader.passes = 2  # the training code sets passes after construction: checked again when iterating
    with pytest.raises(ConfigError, match="2 passes"):
        list(loader)
    with pytest.raises(ConfigError):
        DeviceLoader(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.arange(4), 2, [0.0], [1.0], limit=1)


# --- through Lightning --------------------------------------------------------------------------------------
class _Probe(L.LightningModule):
    """A linear classifier that records the pass index of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
        self.seen_passes: list[int] = []

    def training_step(self, batch, batch_idx):
        x, y, pass_idx = batch
        self.seen_passes.append(pass_idx)
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(tmp_path, epochs: int = 2, passes: int = 2, **trainer_kw) -> tuple[_Probe, L.Trainer]:
    dm = DeviceDataModule("synthetic", tmp_path, tmp_path, batch_size=32, eval_batch_size=64, **SYNTH_KW)
    dm.train_passes = passes
    model = _Probe()
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        default_root_dir=tmp_path, **trainer_kw)
    trainer.fit(model, datamodule=dm)
    return model, trainer


@pytest.mark.parametrize("limit,per_epoch", [
    (2, [0, 1]),  # the debug trainer's limit: one batch per phase (it used to be [0, 0])
    (5, [0, 0, 0, 1, 1]),
    (0.25, [0, 0, 1]),  # a fraction of the whole epoch: int(0.25 * 2 * 6) = 3 batches
    (0.5, [0, 0, 0, 1, 1, 1]),  # the fraction is not applied a second time to the limited loader
])
def test_lightning_limit_reaches_every_phase(tmp_path, limit, per_epoch):
    model, trainer = fit(tmp_path, limit_train_batches=limit)
    assert model.seen_passes == per_epoch * 2
    assert trainer.num_training_batches == len(per_epoch) == len(trainer.train_dataloader)


def test_unlimited_and_single_pass_runs_unchanged(tmp_path):
    model, _ = fit(tmp_path, epochs=1)
    assert model.seen_passes == [0] * PER_PASS + [1] * PER_PASS
    model, trainer = fit(tmp_path, epochs=1, passes=1, limit_train_batches=0.5)
    assert model.seen_passes == [0] * (PER_PASS // 2) and trainer.num_training_batches == PER_PASS // 2


@pytest.mark.parametrize("kw,setting", [({"limit_train_batches": 1}, "trainer.limit_train_batches=1"),
                                        ({"limit_train_batches": 0.05}, "trainer.limit_train_batches=0.05"),
                                        ({"fast_dev_run": True}, "trainer.fast_dev_run=True")])
def test_limit_that_starves_a_phase_is_one_clear_error(tmp_path, kw, setting):
    with pytest.raises(ConfigError) as err:
        fit(tmp_path, **kw)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(setting) and "2 passes" in msg and ">= 2" in msg, msg


# --- a real OctopusNet run through the entry point ----------------------------------------------------------
@pytest.mark.parametrize("preset,phase,head", [("octopus_ff_standard", "coordinator", "coordinator"),
                                               ("octopus_sff", "sff", "sff_heads")])
def test_smoke_octopus_trains_its_second_phase(compose_cfg, tmp_path, preset, phase, head):
    """scale=smoke_octopus with the debug trainer: 2 training batches per epoch of 9-batch passes."""
    cfg = compose_cfg([f"experiments={preset}", "+scale=smoke_octopus", "trainer=debug",
                       "algorithm.eval_arm_metrics=false"])
    assert cfg.trainer.limit_train_batches == 2 and cfg.dataset.name == "synthetic"
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # as run() does before building: the same init
    _, fresh = octo.train.build(cfg)
    block = fresh.algorithm.blocks()[head]
    prefix = next(name for name, m in fresh.named_modules() if m is block) + "."
    init = {prefix + k: v.clone() for k, v in block.state_dict().items() if v.is_floating_point()}

    metrics = octo.train.run(cfg)
    assert metrics["status"] == "ok", metrics["failure"]
    assert metrics["algorithm"]["phases"] == ["ff", phase]
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for block in ("arm0", head):
        values = [float(r[f"train/loss/{block}"]) for r in rows if r.get(f"train/loss/{block}")]
        assert values and all(math.isfinite(v) for v in values), f"{block} never trained"
    # the second phase stepped its block: its weights moved away from their initial values
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert any(not torch.equal(state[k], v) for k, v in init.items())
