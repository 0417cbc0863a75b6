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
