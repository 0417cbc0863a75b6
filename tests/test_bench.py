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
