"""GENEX (``genex_core``): API, determinism, save/load, batch mixing and bad input.

Tiny simulations and tiny networks (set through the public API) keep every test to seconds.
"""

import logging

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.decomposition import PCA
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from genex_core import GENEX
from genex_core.data import BalancedSampler
from genex_core.preprocessing import log_normalize
from workflow_scripts.data.simulate import simulate

SMALL = dict(hidden=(32, 16), latent=8, embedding_dim=4)
FAST = dict(max_epochs=3, batch_size=32, progress=False)

# Three equal batches whose effect dominates three cell types: raw batch is obvious.
MIXING = dict(
    nGenes=200,
    batchCells=[120, 120, 120],
    group_prob=[0.5, 0.3, 0.2],
    de_prob=0.3,
    de_facLoc=0.6,
    batch_facLoc=0.3,
    batch_facScale=0.2,
    seed=5,
)


@pytest.fixture(scope="module")
def adata():
    params = dict(nGenes=60, batchCells=[40, 30], group_prob=[0.6, 0.4], de_prob=0.3, de_facLoc=0.5, batch_facLoc=0.3, seed=3)
    return simulate(params)


@pytest.fixture(scope="module")
def trained(adata):
    model = GENEX(adata, **SMALL)
    model.train(seed=0, **FAST)
    return model


def knn_accuracy(X, labels, n_pcs=20):
    """Cross-validated 15-NN accuracy of ``labels`` on the PCA of ``X``."""
    Z = PCA(min(n_pcs, X.shape[1] - 1), random_state=0).fit_transform(X)
    return cross_val_score(KNeighborsClassifier(15), Z, labels, cv=5).mean()


def test_outputs_shapes_and_mode(trained, adata):
    corrected = trained.get_corrected_expression()
    latent = trained.get_latent_representation()
    assert corrected.shape == adata.shape and corrected.dtype == np.float32
    assert np.isfinite(corrected).all() and (corrected >= 0).all()
    assert latent.shape == (adata.n_obs, SMALL["latent"])
    assert trained.mode == "label-conditioned" and trained.info["mode"] == "label-conditioned"
    assert all(len(v) == FAST["max_epochs"] for v in trained.history.values())
    assert "label-conditioned" in repr(trained)


def test_getters_are_chunked_and_per_cell(trained, adata):
    full = trained.get_corrected_expression()
    np.testing.assert_allclose(trained.get_corrected_expression(batch_size=7), full, atol=1e-5)
    np.testing.assert_allclose(trained.get_corrected_expression(adata[10:30]), full[10:30], atol=1e-5)


def test_counts_from_layer_or_dense_give_the_same(trained, adata):
    other = adata.copy()
    other.layers["counts"] = other.X.copy()
    other.X = log_normalize(other.X)
    model = GENEX(other, layer="counts", **SMALL)
    model.train(seed=0, **FAST)
    np.testing.assert_array_equal(model.get_corrected_expression(), trained.get_corrected_expression())
    dense = adata.copy()
    dense.X = dense.X.toarray()
    np.testing.assert_allclose(trained.get_corrected_expression(dense), trained.get_corrected_expression(), atol=1e-6)


def test_seed_determinism(adata, trained):
    again = GENEX(adata, **SMALL)
    again.train(seed=0, **FAST)
    np.testing.assert_array_equal(again.get_corrected_expression(), trained.get_corrected_expression())
    np.testing.assert_array_equal(again.get_latent_representation(), trained.get_latent_representation())
    other = GENEX(adata, **SMALL)
    other.train(seed=1, **FAST)
    assert not np.array_equal(other.get_corrected_expression(), trained.get_corrected_expression())


def test_label_free_seed_determinism(adata):
    runs = []
    for _ in range(2):
        model = GENEX(adata, label_key=None, **SMALL)
        model.train(seed=2, **FAST)
        runs.append(model.get_corrected_expression())
    np.testing.assert_array_equal(*runs)


def test_training_leaves_global_rng_alone(adata):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    GENEX(adata, **SMALL).train(seed=0, **FAST)
    assert torch.equal(torch.rand(3), expected)


def test_save_load_round_trip(trained, adata, tmp_path):
    trained.save(tmp_path / "m")
    loaded = GENEX.load(tmp_path / "m", adata, device="cpu")
    np.testing.assert_array_equal(loaded.get_corrected_expression(), trained.get_corrected_expression())
    np.testing.assert_array_equal(loaded.get_latent_representation(), trained.get_latent_representation())
    assert loaded.history == trained.history and loaded.mode == trained.mode
    with pytest.raises(FileExistsError, match="overwrite=True"):
        trained.save(tmp_path / "m")
    trained.save(tmp_path / "m", overwrite=True)


def test_load_refuses_other_genes_and_levels(trained, adata, tmp_path):
    trained.save(tmp_path / "m")
    with pytest.raises(ValueError, match="var_names"):
        GENEX.load(tmp_path / "m", adata[:, :50])
    with pytest.raises(ValueError, match="another order"):
        GENEX.load(tmp_path / "m", adata[:, ::-1])
    unseen = adata.copy()
    unseen.obs["batch"] = unseen.obs["batch"].cat.add_categories("Batch9")
    unseen.obs.iloc[0, unseen.obs.columns.get_loc("batch")] = "Batch9"
    with pytest.raises(ValueError, match="Batch9"):
        GENEX.load(tmp_path / "m", unseen)


def test_label_free_mode(adata, tmp_path):
    model = GENEX(adata, label_key=None, **SMALL)
    model.train(seed=0, **FAST)
    assert model.mode == "label-free" and model.info["mode"] == "label-free"
    assert model.get_corrected_expression().shape == adata.shape
    model.save(tmp_path / "free")
    no_labels = adata.copy()
    del no_labels.obs["cell_type"]
    assert GENEX.load(tmp_path / "free", no_labels).mode == "label-free"


def test_covariates_are_explained_not_corrected(adata):
    """By default a covariate gets a discriminator head (to explain) but cannot move the
    correction: the corrected values are the same whatever the cells' covariate codes."""
    covariate = adata.copy()
    covariate.obs["sex"] = np.where(np.arange(adata.n_obs) % 2, "F", "M")
    model = GENEX(covariate, covariate_keys=["sex"], **SMALL)
    assert model.registry.keys == ["batch", "cell_type", "sex"]
    assert len(model.module.discriminator.classifiers) == 3
    model.train(seed=0, **FAST)
    flipped = covariate.copy()
    flipped.obs["sex"] = np.where(np.arange(adata.n_obs) % 2, "M", "F")
    np.testing.assert_array_equal(model.get_corrected_expression(flipped), model.get_corrected_expression())
    corrects = GENEX(covariate, covariate_keys=["sex"], correct_covariates=True, **SMALL)
    corrects.train(seed=0, **FAST)
    assert not np.array_equal(corrects.get_corrected_expression(flipped), corrects.get_corrected_expression())


def test_covariate_confounded_with_batch_cannot_be_corrected(adata):
    confounded = adata.copy()
    confounded.obs["site"] = confounded.obs["batch"].map({"Batch1": "A", "Batch2": "B"}).astype(str)
    with pytest.raises(ValueError, match=r"'site'.*confounded with the batch"):
        GENEX(confounded, covariate_keys=["site"], correct_covariates=True)
    GENEX(confounded, covariate_keys=["site"])  # explained: fine


def test_batch_mixing_removes_batch_and_keeps_cell_types():
    """Raw data must fail the check that corrected data passes: batch predictable before,
    near chance (1/3) after, cell types still predictable."""
    data = simulate(MIXING)
    batch, cell_type = data.obs["batch"].to_numpy(), data.obs["cell_type"].to_numpy()
    raw = log_normalize(data.X).toarray()
    assert knn_accuracy(raw, batch) > 0.9
    model = GENEX(data, hidden=(64, 32), latent=16, embedding_dim=8)
    model.train(max_epochs=20, batch_size=32, seed=0, progress=False)
    corrected = model.get_corrected_expression()
    assert knn_accuracy(corrected, batch) < 0.5
    assert knn_accuracy(corrected, cell_type) > 0.9


def test_balanced_sampler_equalises_batches():
    codes = np.repeat([0, 1, 2], [500, 100, 20])
    sampler = BalancedSampler(codes, 64, torch.Generator().manual_seed(0))
    drawn = np.concatenate(list(sampler) + list(sampler))
    assert len(sampler) == 620 // 64
    np.testing.assert_allclose(np.bincount(codes[drawn]) / drawn.size, 1 / 3, atol=0.05)


# Bad input: every error names the field and the fix.


def test_unknown_keys_list_the_columns(adata):
    with pytest.raises(ValueError, match=r"batch_key='batches'.*available columns.*'batch'"):
        GENEX(adata, batch_key="batches")
    with pytest.raises(ValueError, match=r"label_key='celltype'.*available columns"):
        GENEX(adata, label_key="celltype")
    with pytest.raises(ValueError, match=r"covariate_keys='sex'"):
        GENEX(adata, covariate_keys=["sex"])
    with pytest.raises(ValueError, match="layer 'counts' not found"):
        GENEX(adata, layer="counts")


@pytest.mark.parametrize("key", ["batch", "cell_type"])
def test_single_cell_level(adata, key):
    bad = adata.copy()
    bad.obs[key] = bad.obs[key].cat.add_categories("lonely")
    bad.obs.iloc[0, bad.obs.columns.get_loc(key)] = "lonely"
    with pytest.raises(ValueError, match=rf"obs\['{key}'\].*single cell.*lonely"):
        GENEX(bad)


def test_only_one_batch(adata):
    one = adata[adata.obs["batch"] == "Batch1"].copy()
    with pytest.raises(ValueError, match="only one batch"):
        GENEX(one)


@pytest.mark.parametrize(
    ("value", "message"),
    [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"), (-1.0, "negative"), (0.5, "non-integer")],
)
def test_bad_counts(adata, value, message):
    bad = adata.copy()
    bad.X = sp.csr_matrix(bad.X, dtype=np.float32)
    bad.X.data[0] = value
    with pytest.raises(ValueError, match=rf"^X holds .*{message}"):
        GENEX(bad)


def test_untrained_getters_refuse(adata):
    with pytest.raises(RuntimeError, match="not trained"):
        GENEX(adata, **SMALL).get_corrected_expression()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_request_falls_back_to_cpu_with_one_warning(adata, caplog):
    model = GENEX(adata, **SMALL)
    with caplog.at_level(logging.WARNING, logger="genex_core"):
        model.train(seed=0, device="cuda", **FAST)
    assert model.device.type == "cpu"
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_trains_and_corrects_on_cuda(adata, tmp_path):
    """The GPU path, where one exists: a tiny train and correction on CUDA (also from a backed
    AnnData, streamed to disk); the closed-form offsets match the CPU's."""
    import anndata as ad

    model = GENEX(adata, **SMALL)
    model.train(seed=0, device="cuda", **FAST)
    assert model.device.type == "cuda" and model.train_args["device"].startswith("cuda")
    assert all(p.device.type == "cuda" for p in model.module.parameters())
    corrected = model.get_corrected_expression()
    assert corrected.shape == adata.shape and np.isfinite(corrected).all() and (corrected >= 0).all()
    assert model.get_latent_representation().shape == (adata.n_obs, SMALL["latent"])

    offsets = {}
    for device in ("cpu", "cuda"):  # no network: the closed-form offsets only
        only = GENEX(adata, **SMALL)
        only.train(seed=0, device=device, network=False, **FAST)
        offsets[device] = only.get_corrected_expression()
    np.testing.assert_allclose(offsets["cuda"], offsets["cpu"], atol=1e-4)

    adata.write_h5ad(tmp_path / "counts.h5ad")
    backed = ad.read_h5ad(tmp_path / "counts.h5ad", backed="r")
    disk = GENEX(backed, **SMALL)
    disk.train(seed=0, device="cuda", **FAST)
    path = disk.write_corrected(tmp_path / "corrected.h5ad", dtype=np.float16)
    assert np.isfinite(ad.read_h5ad(path).layers["corrected"]).all()
    backed.file.close()


@pytest.mark.parametrize("args", [dict(max_epochs=0), dict(n_critic=0), dict(batch_size=1), dict(recipe="paper")])
def test_bad_training_arguments(adata, args):
    with pytest.raises(ValueError, match="must be"):
        GENEX(adata).train(progress=False, **args)


@pytest.mark.parametrize("label_key", ["cell_type", None])
def test_full_data_passes_at_most_epochs_plus_one(adata, monkeypatch, label_key):
    """Every read of all training cells is counted where the cells are read (``minibatch``
    on a chunk that is not a training minibatch), not where the model says it reads them."""
    import genex_core.model as model_module

    read = []
    original = model_module.minibatch
    monkeypatch.setattr(model_module, "minibatch", lambda m, c, idx, d: read.append(len(idx)) or original(m, c, idx, d))
    original_dense = model_module._dense_lognorm
    monkeypatch.setattr(model_module, "_dense_lognorm", lambda m, idx: read.append(len(idx)) or original_dense(m, idx))
    epochs, batch_size = 4, 16
    model = GENEX(adata, label_key=label_key, **SMALL)
    model.train(max_epochs=epochs, batch_size=batch_size, progress=False)
    minibatch_cells = epochs * (adata.n_obs // batch_size) * batch_size  # the training minibatches
    passes = (sum(read) - minibatch_cells) / adata.n_obs
    assert passes <= epochs + 1 and model.full_passes == passes
