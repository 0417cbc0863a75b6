"""PFF's generative analysis: the sample GMM is fitted on training codes (as the reference's fit_gmm.py), and the
t-SNE plot of the latent codes (a small exact t-SNE in torch, octo.evaluation.tsne)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import octo.algorithms.pff as pff_module
import octo.evaluation.tsne as tsne_module
from octo.algorithms.pff import PFF
from octo.evaluation.tsne import conditional_probabilities, joint_probabilities, tsne
from octo.nn.pff_circuits import PFFNet
from octo.utils.errors import ConfigError


def _small(**settings) -> PFF:
    torch.manual_seed(0)
    return PFF(PFFNet([1, 6, 6], num_classes=4, n_units=20, g_units=5, group_size=5), num_classes=4, steps=3,
               threshold=1.0, **settings)


def _split(n: int, train: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint distributions: training images are dark (pixels in [0, 0.3]), test images bright ([0.7, 1])."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.rand(n, 1, 6, 6, generator=g)
    return (x if train else 1.0 - x), torch.arange(n) % 4


def _train(algo: PFF, batches: list[torch.Tensor]) -> None:
    opt = torch.optim.Adam(algo.parameters(), lr=1e-3)
    for x in batches:
        for losses in algo.local_loss_steps(x, torch.arange(x.shape[0]) % 4, "train", list(algo.blocks())):
            opt.zero_grad()
            sum(losses.values()).backward()
            opt.step()


@pytest.fixture
def gmm_inputs(monkeypatch):
    """Records the codes every fit_diag_gmm call of save_images receives."""
    seen = []
    real = pff_module.fit_diag_gmm

    def spy(z, *args, **kwargs):
        seen.append(z.clone())
        return real(z, *args, **kwargs)

    monkeypatch.setattr(pff_module, "fit_diag_gmm", spy)
    return seen


def test_the_gmm_is_fitted_on_training_codes(tmp_path, gmm_inputs):
    algo = _small(gmm_train_images=10)
    batches = [_split(8, True, seed)[0] for seed in range(3)]
    _train(algo, batches)
    # the ring buffer holds the last 10 training images seen, in any order
    last = torch.cat(batches).flatten(1)[-10:]
    kept = algo.training_images()
    assert kept.shape == (10, 36)
    assert sorted(map(tuple, kept.tolist())) == sorted(map(tuple, last.tolist()))
    # evaluation (no gradient) does not add to it
    x_test, y_test = _split(12, False, 7)
    with torch.no_grad():
        algo.evaluate(x_test, y_test)
    assert torch.equal(algo.training_images(), kept)

    algo.save_images(x_test, tmp_path / "images" / "test.png", n=4, components=3)
    (fitted,) = gmm_inputs
    train_codes = algo.infer_latent(kept)
    test_codes = algo.infer_latent(x_test)
    assert fitted.shape == train_codes.shape
    assert torch.allclose(fitted, train_codes, atol=1e-5)
    # the two splits give different codes: the GMM did not see the test ones
    assert not torch.allclose(fitted[:10], test_codes[:10], atol=1e-3)
    assert "training images" in algo.describe()["gmm_fit_on"]


def test_without_a_buffer_the_gmm_falls_back_to_the_given_images(tmp_path, gmm_inputs, caplog):
    algo = _small(gmm_train_images=0)
    _train(algo, [_split(8, True, 0)[0]])
    assert algo.training_images() is None
    x_test, _ = _split(12, False, 7)
    with caplog.at_level("WARNING"):
        algo.save_images(x_test, tmp_path / "images" / "test.png", n=4, components=3)
    assert "no training images buffered" in caplog.text
    assert torch.allclose(gmm_inputs[0], algo.infer_latent(x_test), atol=1e-5)
    with pytest.raises(ConfigError, match="gmm_train_images"):
        _small(gmm_train_images=-1)


def test_the_tsne_plot_is_saved_next_to_the_grid_and_coloured_by_class(tmp_path, monkeypatch):
    algo = _small()
    _train(algo, [_split(8, True, 0)[0]])
    x, y = _split(12, False, 7)
    y = (y + 1) % 4  # labels that differ from any prediction rule: the plot must use these
    plots = []
    real = tsne_module.save_tsne_plot

    def spy(codes, labels, path, title=""):
        plots.append((labels.clone(), Path(path), title))
        return real(codes, labels, path, title)

    monkeypatch.setattr(tsne_module, "save_tsne_plot", spy)
    algo.eval()
    with torch.no_grad():
        algo.final_evaluation([(x, y)])  # as octo.train does before save_images(first test images, path)
        algo.save_images(x[:10], tmp_path / "images" / "test.png", n=4, components=3)
        algo.save_images(torch.rand(10, 1, 6, 6), tmp_path / "other" / "test.png", n=4, components=3)
    (labels, path, title), (_, path2, title2) = plots
    assert path == tmp_path / "images" / "latent_tsne.png" and path.stat().st_size > 0
    assert torch.equal(labels, y[:10]) and title.endswith("coloured by class")
    # images that are not the kept test batch: coloured by the model's prediction, and the title says so
    assert path2.stat().st_size > 0 and title2.endswith("coloured by predicted class")


# --- t-SNE ---------------------------------------------------------------------------------------------------------
def _clusters(k: int = 4, per: int = 40, dim: int = 20, spread: float = 10.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, dim, generator=g) * spread
    y = torch.arange(k * per) % k
    return centers[y] + torch.randn(k * per, dim, generator=g), y


def test_probabilities_match_the_perplexity():
    x, _ = _clusters(per=25)
    d2 = torch.cdist(x, x).double().pow(2)
    cond = conditional_probabilities(d2, perplexity=15.0)
    assert torch.allclose(cond.sum(1), torch.ones(100, dtype=cond.dtype)) and (cond.diagonal() == 0).all()
    q = cond.clamp_min(1e-300)
    entropy = -(cond * q.log()).sum(1)
    assert torch.allclose(entropy, torch.full_like(entropy, math.log(15.0)), atol=1e-4)
    # a point's conditional decreases with distance
    order = d2[0, 1:].argsort()
    assert (cond[0, 1:][order].diff() <= 1e-15).all()
    p = joint_probabilities(d2, perplexity=15.0)
    assert torch.allclose(p, p.T) and p.sum().item() == pytest.approx(1.0, abs=1e-6)  # floor 1e-12
    assert (p.diagonal() == 0).all()


def test_well_separated_clusters_stay_separated():
    x, y = _clusters()
    e = tsne(x, perplexity=30.0)
    assert e.shape == (160, 2) and torch.isfinite(e).all()
    d = torch.cdist(e, e)
    d.fill_diagonal_(float("inf"))
    neighbours = d.topk(5, largest=False).indices
    assert (y[neighbours] == y[:, None]).all()  # every point's 5 nearest neighbours are from its own cluster
    centroids = torch.stack([e[y == c].mean(0) for c in range(4)])
    radius = max((e[y == c] - centroids[c]).norm(dim=1).max().item() for c in range(4))
    gaps = torch.cdist(centroids, centroids) + torch.eye(4) * 1e9
    assert gaps.min().item() > 2 * radius  # clusters do not overlap in the embedding
    assert torch.equal(e, tsne(x, perplexity=30.0))  # deterministic


def test_tsne_reduces_wide_inputs_and_refuses_too_many_points():
    x, y = _clusters(k=3, per=20, dim=100)
    e = tsne(x, iterations=200)  # PCA to 32 dimensions first
    centroids = torch.stack([e[y == c].mean(0) for c in range(3)])
    assert (torch.cdist(e, centroids).argmin(1) == y).all()
    with pytest.raises(ValueError, match="max_points"):
        tsne(torch.randn(11, 2), max_points=10)


# --- through the entry point ---------------------------------------------------------------------------------------
def test_a_run_writes_the_grid_and_the_tsne_plot(compose_cfg, tmp_path):
    from omegaconf import open_dict

    import octo.train

    cfg = compose_cfg(["experiments=pff_mnist_reduced", "trainer=debug", "logger=none", "model.n_units=10",
                       "model.g_units=4", "algorithm.steps=2", "algorithm.gmm_train_images=50"])
    with open_dict(cfg):  # generated images of MNIST's shape instead of MNIST (as tests/test_experiments.py)
        d = cfg.dataset
        d.name, d.train_subset, d.val_size, d.batch_size, d.eval_batch_size = "synthetic", None, 32, 16, 32
        d.synthetic = {"n_train": 96, "n_test": 32, "seed": 0, "noise": 0.25}
    metrics = octo.train.run(cfg)
    assert metrics["status"] == "ok", metrics["failure"]
    images = Path(metrics["images"])
    assert images.stat().st_size > 0 and (images.parent / "latent_tsne.png").stat().st_size > 0
    assert metrics["algorithm"]["gmm_train_images"] == 50
