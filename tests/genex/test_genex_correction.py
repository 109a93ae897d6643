"""What GENEX's correction does (issue 15): zeros kept, no invented DE, label-free mixing, a
batch-exclusive cell type corrected, and the published preset's shapes.

Each check is one a wrong model fails: raw data fails the mixing checks, shifting zeros
invents calls, and a batch-exclusive type left alone keeps its batch effect.
"""

import numpy as np
import pytest
import scipy.stats
import torch
from sklearn.decomposition import PCA
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from genex_core import GENEX
from genex_core.model import PUBLISHED_MODULE, PUBLISHED_TRAIN
from genex_core.preprocessing import log_normalize
from workflow_scripts.data.simulate import simulate

SMALL = dict(hidden=(64, 32), latent=8, embedding_dim=4)
TRAIN = dict(max_epochs=10, batch_size=32, seed=0, progress=False)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def knn(X, labels):
    Z = PCA(min(20, X.shape[1] - 1), random_state=0).fit_transform(X)
    return cross_val_score(KNeighborsClassifier(15), Z, labels, cv=5).mean()


def truth_of(adata):
    means = adata.layers["batchfree_means"]
    means = means.toarray() if hasattr(means, "toarray") else np.asarray(means)
    return np.log1p(means / means.sum(1, keepdims=True) * 1e4)


def condition_calls(values, adata):
    """Genes called DE (Wilcoxon, Bonferroni p < 0.05) between the condition's levels within
    each cell type."""
    out = []
    for t in np.unique(adata.obs["cell_type"]):
        rows = (adata.obs["cell_type"] == t).to_numpy()
        case = (adata.obs["condition"] == "case").to_numpy()
        p = scipy.stats.mannwhitneyu(values[rows & case], values[rows & ~case], axis=0).pvalue
        out.append(int((np.nan_to_num(p, nan=1.0) * values.shape[1] < 0.05).sum()))
    return out


@pytest.fixture(scope="module")
def null_data():
    """A null covariate (no gene effect) beside a batch effect: every condition call is false."""
    return simulate(
        dict(
            nGenes=200,
            batchCells=[300, 300],
            group_prob=[0.5, 0.5],
            de_prob=0.1,
            de_facLoc=0.3,
            batch_facLoc=0.2,
            seed=4,
            covariates=[dict(name="condition", levels=["control", "case"], gene_prob=0.0, per_cell_type=True)],
        )  # fmt: skip
    )


def test_zeros_stay_zero_and_no_condition_is_invented(null_data):
    model = GENEX(null_data, covariate_keys=["condition"], **SMALL)
    model.train(**TRAIN)
    corrected = model.get_corrected_expression()
    raw = log_normalize(null_data.X).toarray()
    assert (corrected[raw == 0] == 0).mean() > 0.99
    assert max(condition_calls(corrected, null_data)) <= 1
    # what the check catches: the same shifts applied to zeros, then ReLU
    shifted = GENEX(null_data, covariate_keys=["condition"], keep_zeros=False, **SMALL)
    shifted.train(**TRAIN)
    assert (shifted.get_corrected_expression()[raw == 0] > 0).mean() > 0.1


def test_label_free_mixes_a_cell_type_specific_batch_effect():
    data = simulate(
        dict(
            nGenes=200,
            batchCells=[250, 250],
            group_prob=[0.4, 0.3, 0.3],
            de_prob=0.2,
            de_facLoc=0.5,
            batch_facLoc=0.2,
            batch_interaction_prob=0.5,
            seed=3,
        )  # fmt: skip
    )
    batch, cell_type = data.obs["batch"].to_numpy(), data.obs["cell_type"].to_numpy()
    raw = log_normalize(data.X).toarray()
    truth = log_normalize(data.layers["batchfree_counts"]).toarray()
    floor = knn(truth, batch)
    assert knn(raw, batch) > floor + 0.3  # raw fails the check below
    model = GENEX(data, label_key=None, **SMALL)
    model.train(**TRAIN)
    corrected = model.get_corrected_expression()
    assert knn(corrected, batch) < floor + 0.1
    assert knn(corrected, cell_type) > 0.95


@pytest.mark.parametrize("label_key", ["cell_type", None])
def test_batch_exclusive_cell_type_is_corrected(label_key):
    """Group3 is in Batch1 only: its anchor is itself, so it takes its batch's offset (with
    labels, or as a soft group found in one batch in label-free mode)."""
    data = simulate(
        dict(
            nGenes=200,
            batchCells=[300, 300],
            group_prob=[[0.3, 0.3, 0.4], [0.5, 0.5, 0.0]],
            de_prob=0.1,
            de_facLoc=0.3,
            batch_facLoc=0.3,
            seed=11,
        )  # fmt: skip
    )
    only = (data.obs["cell_type"] == "Group3").to_numpy()
    assert set(data.obs.loc[only, "batch"]) == {"Batch1"}
    model = GENEX(data, label_key=label_key, **SMALL)
    model.train(**TRAIN)
    truth, raw = truth_of(data)[only], log_normalize(data.X).toarray()[only]
    corrected = model.get_corrected_expression()[only]
    raw_gap = np.abs(raw.mean(0) - truth.mean(0)).mean()
    assert np.abs(corrected.mean(0) - truth.mean(0)).mean() < 0.8 * raw_gap


def test_published_preset_builds_the_published_shapes(null_data):
    model = GENEX(null_data)
    model.configure("published")
    n_genes, emb = null_data.n_vars, PUBLISHED_MODULE["embedding_dim"]
    G, D = model.module.generator, model.module.discriminator
    enc = [m for m in G.encoder.modules() if isinstance(m, torch.nn.Linear)]
    dec = [m for m in G.decoder.modules() if isinstance(m, torch.nn.Linear)]
    trunk = [m for m in D.trunk.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in enc] == [(n_genes + 2 * emb, 1024), (1024, 512), (512, 32)]
    assert [(m.in_features, m.out_features) for m in dec] == [(32, 512), (512, 1024), (1024, n_genes)]
    assert [(m.in_features, m.out_features) for m in trunk] == [(n_genes, 1024), (1024, 512), (512, 32)]
    assert G.batch_embedding.embedding_dim == emb and G.zero_neutral and not G.keep_zeros and not G.use_offsets
    assert [h.out_features for h in D.classifiers] == [2, 2]
    assert model.module.objective == "stargan"
    assert PUBLISHED_TRAIN == dict(max_epochs=600, batch_size=2048, n_critic=3, gp_every=1, lr=1.0)
    model.configure("default")
    assert model.module.objective == "neutral" and len(model.module.generator.encoder[0][0].weight) == 256


def test_published_recipe_trains_with_dog_and_its_weight_average(null_data):
    pytest.importorskip("dog", reason="dog-optimizer is pinned in requirements.txt")
    model = GENEX(null_data, hidden=(32, 16), latent=8, embedding_dim=4)
    model.train(recipe="published", max_epochs=1, batch_size=64, progress=False)
    assert model.train_args["optimizer"] == "dog" and np.isfinite(model.get_corrected_expression()).all()


def test_strong_per_gene_batch_factors_are_mixed_with_zeros_kept():
    """The GENEX paper's design in small: per-gene batch factors (facLoc = facScale = 0.3) move
    each gene's zero rate as well as its mean. Shifting expressed values leaves the zero
    patterns apart; equalising the zero rates within each cell type mixes the batches."""
    data = simulate(
        dict(
            nGenes=300,
            batchCells=[200, 200, 200],
            group_prob=[0.8, 0.2],
            de_prob=0.04,
            batch_facLoc=0.3,
            batch_facScale=0.3,
            dropout_type="none",
            lib_loc=8.0,  # the paper's zero rate (a third of all entries) with 300 genes
            seed=8,
        )  # fmt: skip
    )
    batch = data.obs["batch"].to_numpy()
    raw = log_normalize(data.X).toarray()
    floor = knn(log_normalize(data.layers["batchfree_counts"]).toarray(), batch)
    kept = GENEX(data, equalise_zeros=False, **SMALL)
    kept.train(**TRAIN)
    assert knn(kept.get_corrected_expression(), batch) > floor + 0.15  # what the check catches
    model = GENEX(data, **SMALL)
    model.train(**TRAIN)
    corrected = model.get_corrected_expression()
    assert knn(corrected, batch) < floor + 0.1
    assert (corrected[raw == 0] == 0).mean() > 0.99
    for t in np.unique(data.obs["cell_type"]):
        rows = (data.obs["cell_type"] == t).to_numpy()
        rates = np.array([(corrected[rows & (batch == b)] == 0).mean(0) for b in np.unique(batch)])
        raw_rates = np.array([(raw[rows & (batch == b)] == 0).mean(0) for b in np.unique(batch)])
        assert np.ptp(rates, axis=0).mean() < 0.5 * np.ptp(raw_rates, axis=0).mean()


def test_zero_thresholds_thin_to_the_highest_zero_rate_of_shared_groups():
    """By hand: group 0 is in both batches (zero rates 0.2 and 0.5), group 1 in batch 0 only."""
    from genex_core.module import GenexModule

    module = GenexModule(n_genes=1, n_levels=[2, 2], hidden=(4,), latent=2, embedding_dim=2)
    values = torch.arange(1, 11, dtype=torch.float32)
    a, b = values.clone(), values.clone()
    a[:2], b[:5] = 0, 0  # zero rates 0.2 and 0.5
    x = torch.cat([a, b, values]).unsqueeze(1)
    batches = torch.tensor([0] * 10 + [1] * 10 + [0] * 10)
    groups = torch.nn.functional.one_hot(torch.tensor([0] * 20 + [1] * 10), 2).float()
    module.set_zero_thresholds(x, batches, groups)
    thin = module.generator.thinned(x, batches, groups)
    assert (thin[:10] == 0).float().mean() == 0.5  # batch 0 thinned to batch 1's rate
    assert torch.equal(thin[10:20], x[10:20])  # the batch with the highest rate is left alone
    assert torch.equal(thin[20:], x[20:])  # a group in one batch only is not thinned
