"""octo.bench end to end on tiny sizes: what it records, never how fast (no timing assertions)."""

from __future__ import annotations

import json

from octo.bench import main


def test_bench_records_mlp_ratio_and_recipe_epochs(tmp_path):
    record = main(["--hidden", "16", "--batch", "8", "--steps", "2", "--device", "cpu", "--out", str(tmp_path),
                   "--recipes", "octopus_ff_standard", "no_such_recipe", "--recipe-epochs", "2",
                   "--recipe-args", "+scale=smoke_octopus", "--note", "test"])
    assert record["ff_over_bp"] == record["ff_images_per_s"] / record["bp_images_per_s"] > 0
    recipe, missing = record["recipes"]
    assert missing["failed"].startswith("exit") and missing["s_per_epoch_median"] is None  # recorded, not lost
    assert recipe["experiment"] == "octopus_ff_standard" and recipe["overrides"] == ["+scale=smoke_octopus"]
    # two epochs timed; the median skips the first (warm-up)
    assert len(recipe["epoch_seconds"]) == 2 and recipe["s_per_epoch_median"] == recipe["epoch_seconds"][1]
    assert recipe["val_acc_best"] is not None and recipe["test_acc"] is not None
    saved = json.loads(next(tmp_path.glob("mlp_*_16.json")).read_text())
    assert saved["recipes"][0]["epochs"] == 2 and saved["device"] == record["device"]
    readme = (tmp_path / "README.md").read_text()
    assert "recipe `octopus_ff_standard`" in readme and "recipe `no_such_recipe` | exit" in readme and "s/epoch" in readme and record["commit"] in readme


def test_sigterm_mid_bench_keeps_rows_and_leaves_no_orphan(tmp_path):
    """A time limit during a recipe: the bench forwards the signal, the child records its finished epochs, the
    rows measured so far are on disk, the bench exits 5, and no octo process is left behind."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1", "OCTO_ROOT": str(repo)}
    out = tmp_path / "bench"
    proc = subprocess.Popen([sys.executable, "-m", "octo.bench", "--hidden", "16", "--batch", "8", "--steps", "2",
                             "--device", "cpu", "--out", str(out), "--recipes", "octopus_ff_standard",
                             "octopus_sff", "--recipe-epochs", "100000", "--recipe-args", "+scale=smoke_octopus"],
                            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not list(tmp_path.glob("octo_bench_octopus_ff_standard_*/checkpoints/last.ckpt")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 5, err[-2000:]
    record = json.loads(next(out.glob("mlp_*_16.json")).read_text())
    assert record["status"] == "timeout (SIGTERM)" and record["ff_over_bp"] > 0
    (recipe,) = record["recipes"]  # the second recipe never started
    assert recipe["status"] == "timeout" and recipe["epochs_done"] >= 1
    assert len(recipe["epoch_seconds"]) == recipe["epochs_done"] and recipe["s_per_epoch_median"] > 0
    assert "(timeout after" in (out / "README.md").read_text()
    left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert not left, f"orphaned processes: {left}"


def test_records_hold_no_machine_path(tmp_path):
    record = main(["--hidden", "8", "--batch", "8", "--steps", "1", "--device", "cpu", "--out", str(tmp_path),
                   "--recipes", "no_such_recipe", "--recipe-epochs", "1"])
    text = next(tmp_path.glob("mlp_*_8.json")).read_text()
    assert record["recipes"][0]["run_dir"].startswith("octo_bench_") and "/tmp" not in text and str(tmp_path) not in text


class _ThreeStepsPerBatch:
    """Factory of a tiny PFF-like algorithm: three optimiser steps per batch (``local_loss_steps`` yields three loss
    dicts), two blocks, an ``after_step`` counter; deterministic (no random negatives)."""

    @staticmethod
    def make():
        import torch
        from torch import nn

        from octo.algorithms.base import LocalAlgorithm

        class ThreeSteps(LocalAlgorithm):
            def __init__(self):
                super().__init__(num_classes=3)
                self.a, self.b = nn.Linear(4, 5), nn.Linear(5, 3)
                self.after_steps = 0

            def blocks(self):
                return {"a": self.a, "b": self.b}

            def local_losses(self, x, y, phase, active):
                x = x.flatten(1)
                h = torch.tanh(self.a(x))
                out = self.b(h.detach())
                losses = {"a": (h ** 2).mean() - h[:, 0].mean(),
                          "b": nn.functional.cross_entropy(out, y)}
                return {k: v for k, v in losses.items() if k in active}

            def local_loss_steps(self, x, y, phase, active):
                for _ in range(3):
                    yield self.local_losses(x, y, phase, active)

            def after_step(self, phase, active):
                self.after_steps += 1

            def predict(self, x):
                return self.b(torch.tanh(self.a(x.flatten(1))))

        torch.manual_seed(0)
        return ThreeSteps()


class _batches:
    """A tiny in-memory train loader with the platform's batch format (x, y, pass_idx)."""

    def __init__(self, n=3):
        import torch

        g = torch.Generator().manual_seed(0)
        self.data = [(torch.randn(6, 1, 2, 2, generator=g), torch.randint(0, 3, (6,), generator=g), 0)
                     for _ in range(n)]

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


def _fit_with_trainer(algo, batches, optimizer):
    import lightning as L

    from octo.training.module import LocalLearningModule
    from octo.training.schedules import Simultaneous

    module = LocalLearningModule(algo, Simultaneous(optimizer_layout="joint"), optimizer)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=batches)
    return module


def test_bench_steps_as_many_times_as_the_training_module():
    """The benchmark times the module's own stepping: an algorithm that steps three times per batch is stepped
    three times per batch (a copy that called local_losses once per batch stepped once), after_step included."""
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from octo.bench import images_per_second

    count = {"n": 0}

    def hook(opt, args, kwargs):
        count["n"] += 1

    handle = register_optimizer_step_post_hook(hook)
    try:
        algo = _ThreeStepsPerBatch.make()
        x, y = torch.randn(40, 1, 2, 2), torch.randint(0, 3, (40,))
        assert images_per_second(algo, x, y, batch=8, steps=2, warmup=1) > 0
        bench_steps, bench_after = count["n"], algo.after_steps
        count["n"] = 0
        algo = _ThreeStepsPerBatch.make()
        _fit_with_trainer(algo, _batches(3), lambda params: torch.optim.Adam(params, lr=1e-2))
        module_steps, module_after = count["n"], algo.after_steps
    finally:
        handle.remove()
    assert module_steps == 9 and module_after == 3  # 3 batches x 3 steps, joint layout
    assert bench_steps == module_steps and bench_after == module_after  # 1 warm-up + 2 timed batches


def test_bench_stepping_gives_the_weights_of_a_real_training_run():
    """The bench's trainer-less stepping and ``trainer.fit`` give identical weights from the same start."""
    from functools import partial

    import torch

    from octo.bench import training_module

    opt = partial(torch.optim.Adam, lr=1e-2)
    fitted = _fit_with_trainer(_ThreeStepsPerBatch.make(), _batches(), opt).algorithm
    module, opts = training_module(_ThreeStepsPerBatch.make(), opt)
    for x, y, _ in _batches():
        module.train_batch(x, y, "train", opts)
    start = _ThreeStepsPerBatch.make().state_dict()
    for (name, a), (_, b) in zip(fitted.state_dict().items(), module.algorithm.state_dict().items()):
        assert not torch.equal(a, start[name]), f"{name} did not learn"
        assert torch.equal(a, b), name
