"""docs/adding_an_algorithm.md, followed to the letter: its worked example (an algorithm module, its config, its
row of the contract test, a named experiment) is taken from the page's code blocks that name their file after the
language, written into a temporary copy of the project layout, and checked the way the page says it will be: the
contract test fails without the row and passes with it, and the experiment runs end to end."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "adding_an_algorithm.md"
BLOCK = re.compile(r"```(?:python|yaml) (?P<name>[^\n]+)\n(?P<body>.*?)```", re.DOTALL)
MODULE = "octo.algorithms.local_classifiers"


def guide_files() -> dict[str, str]:
    """File name -> text of the guide's code blocks that name a file after their language."""
    files = {m["name"].strip(): m["body"] for m in BLOCK.finditer(GUIDE.read_text())}
    assert files, f"no code blocks naming a file in {GUIDE}"
    return files


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The guide's files in ``tmp_path`` (same layout as the repository), the algorithm importable under the name
    its config gives, and the Hydra search path override that finds the config and the experiment."""
    files = guide_files()
    for name in ("octo/algorithms/local_classifiers.py", "conf/algorithm/local_classifiers.yaml",
                 "experiments/local_classifiers_mnist.yaml"):
        assert name in files, f"the guide lost its code block of {name}"
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(files[name])
    spec = importlib.util.spec_from_file_location(MODULE, tmp_path / "octo/algorithms/local_classifiers.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, MODULE, module)  # where `_target_: octo.algorithms.local_classifiers...` looks
    spec.loader.exec_module(module)
    row = ast.literal_eval("{" + files["tests/test_contract.py SETUPS row"] + "}")
    searchpath = f"hydra.searchpath=[file://{REPO},file://{tmp_path / 'conf'},file://{tmp_path}]"
    return {"row": row["local_classifiers"], "searchpath": searchpath, "out": tmp_path / "checks"}


def test_the_contract_test_asks_for_a_row(compose_cfg, toy, tmp_path):
    import test_contract

    assert "local_classifiers" not in test_contract.SETUPS
    with pytest.raises(pytest.fail.Exception, match="has no row in SETUPS in tests/test_contract.py: add one"):
        test_contract.test_algorithm_contract(compose_cfg, tmp_path, "local_classifiers")


def test_the_worked_example_fulfils_the_contract(compose_cfg, toy, tmp_path):
    from test_contract import batch_for, build_module, check_contract, switches

    cfg, module = build_module(compose_cfg, [toy["searchpath"], "algorithm=local_classifiers", *toy["row"]])
    assert type(module.algorithm).__name__ == "LocalClassifiers"
    assert list(module.algorithm.blocks()) == ["layer0", "layer1", "layer2"]
    check_contract(module, *batch_for(cfg), toy["out"], switches(cfg))


def test_the_contract_check_catches_a_broken_example(compose_cfg, toy, tmp_path):
    """The same example without its ``detach``: the check must fail, naming the leak."""
    from test_contract import batch_for, build_module, check_contract

    cfg, module = build_module(compose_cfg, [toy["searchpath"], "algorithm=local_classifiers", *toy["row"]])
    algorithm = module.algorithm
    source = Path(sys.modules[MODULE].__file__).read_text()
    assert "h = layer(h.detach())" in source

    def leaky_losses(x, y, phase, active):
        h, losses = algorithm.model.flatten(x), {}
        for i, (layer, head) in enumerate(zip(algorithm.model.layers, algorithm.heads)):
            h = layer(h)  # the detach forgotten
            if f"layer{i}" in active:
                losses[f"layer{i}"] = F.cross_entropy(head(h), y)
        return losses

    algorithm.local_losses = leaky_losses
    with pytest.raises(AssertionError, match="locality leak"):
        check_contract(module, *batch_for(cfg), toy["out"])


@pytest.mark.slow
def test_the_worked_example_experiment_runs(compose_cfg, toy, monkeypatch):
    from test_experiments import run_and_check, tiny

    cfg = compose_cfg([toy["searchpath"], "experiments=local_classifiers_mnist", "trainer=debug", "logger=none"])
    assert cfg.sweep_name == "local_classifiers_mnist" and cfg.algorithm.predict_from == "sum"
    tiny(cfg, "local_classifiers_mnist")
    metrics = run_and_check(cfg, monkeypatch)
    assert metrics["algorithm"] == {"name": "LocalClassifiers", "predict_from": "sum"}
    assert set(metrics["blocks"]) == {"layer0", "layer1"}
