"""GENEX explanations (``model.explain``): they come from the trained model, recover a simulated
covariate, call nothing for a permuted one, are deterministic, are stored, and fail clearly.

Tiny simulations and tiny networks keep the file to well under a minute on 2 cores.
"""

import copy
import inspect

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score

from genex_core import GENEX
from genex_core.explain import COLUMNS, DEFAULT_METHOD, METHODS, UNS_KEY, VARM_PREFIX
from workflow_scripts.data.simulate import simulate

SMALL = dict(hidden=(64, 32), latent=8, embedding_dim=4)
TRAIN = dict(max_epochs=20, batch_size=32, lr=3e-3, seed=0, progress=False)
# A strong global covariate on 10% of the genes, next to batch and cell type.
STRONG = dict(
    nGenes=120,
    batchCells=[150, 150],
    group_prob=[0.5, 0.5],
    de_prob=0.1,
    de_facLoc=0.5,
    batch_facLoc=0.2,
    covariates=[dict(name="condition", gene_prob=0.1, facLoc=1.5, facScale=0.2)],
    seed=7,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks gain nothing from threads, and on a busy machine two threads waiting for
    each other train ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(adata) -> GENEX:
    model = GENEX(adata, covariate_keys=["condition"], **SMALL)
    model.train(**TRAIN)
    return model


@pytest.fixture(scope="module")
def adata():
    return simulate(STRONG)


@pytest.fixture(scope="module")
def model(adata):
    return _train(adata)


@pytest.fixture(scope="module")
def table(model):
    return model.explain()


def test_table_layout(table, adata):
    assert list(table.columns) == COLUMNS
    assert set(table["covariate"]) == {"batch", "condition"}  # GENEX does not translate cell types
    overall = table[table["cell_type"] == "all"]
    assert len(overall) == adata.n_vars * (2 + 2)  # every level of every covariate
    assert set(table["cell_type"]) == {"all", "Group1", "Group2"}
    for _, rows in table.groupby(["covariate", "level", "cell_type"]):
        assert sorted(rows["rank"]) == list(range(1, adata.n_vars + 1))
        assert rows.sort_values("rank")["score"].is_monotonic_decreasing
    assert table["pval"].between(0, 1).all() and (table["fdr"] >= table["pval"]).all()
    assert table["significant"].equals(table["fdr"] <= 0.05)


def _case_scores(table, adata) -> pd.DataFrame:
    rows = table[(table["covariate"] == "condition") & (table["cell_type"] == "all") & (table["level"] == "case")]
    return rows.set_index("gene").reindex(adata.var_names)


@pytest.mark.parametrize("method", METHODS)
def test_strong_covariate_is_recovered(model, adata, method):
    truth = adata.var["condition_factor_case"].to_numpy() != 1
    scores = _case_scores(model.explain(covariate="condition", per=None, method=method), adata)["score"]
    auprc = average_precision_score(truth, scores)
    assert auprc > 2 * truth.mean(), f"AUPRC {auprc:.2f} vs positive share {truth.mean():.2f}"


def test_explanation_comes_from_the_trained_model(model, table):
    """Re-initialised networks and covariate translation (what an untrained model holds) give
    another explanation; a statistic of the data alone would not change."""
    untrained = copy.deepcopy(model)
    untrained.module.reset_parameters()
    other = untrained.explain()
    assert not np.allclose(other["effect"], table["effect"])
    assert (other.loc[other["covariate"] == "condition", "score"] < 1e-6).all()  # no covariate translation learned
    pd.testing.assert_series_equal(other["data_effect"], table["data_effect"])  # the test reads the data


def test_counterfactual_is_the_covariate_translation(model, adata):
    """For a covariate, translating every cell of a cell type to case and to control differs
    by the model's log fold change of that type (up to the pseudocount)."""
    effect = model.explain(covariate="condition").query("level == 'case' and cell_type == 'Group1'").set_index("gene")
    lfc = model.module.generator.covariate_lfcs[0].cpu().numpy()[0]  # Group1: (levels, genes)
    case, control = (model.registry.categories["condition"].index(level) for level in ("case", "control"))
    expected = pd.Series(lfc[case] - lfc[control], index=model.var_names)
    strong = np.abs(expected) > 1
    assert strong.sum() >= 5
    np.testing.assert_allclose(effect["effect"][strong], expected[strong], atol=0.1)


def test_strong_covariate_is_significant(table, adata):
    truth = adata.var["condition_factor_case"].to_numpy() != 1
    called = _case_scores(table, adata)["significant"].to_numpy()
    assert called[truth].mean() > 0.8 and (called & ~truth).sum() <= 0.1 * called.sum()


def test_shuffled_covariate_gives_no_significant_genes(adata):
    shuffled = adata.copy()
    shuffled.obs["condition"] = np.random.default_rng(0).permutation(shuffled.obs["condition"].to_numpy())
    table = _train(shuffled).explain(covariate="condition", per=None)
    assert table["significant"].sum() <= 2, table[table["significant"]]


def test_deterministic_and_independent_of_chunking(model, table):
    pd.testing.assert_frame_equal(model.explain(), table)
    first = model.explain(covariate="condition", method="smoothgrad", seed=3)
    pd.testing.assert_frame_equal(first, model.explain(covariate="condition", method="smoothgrad", seed=3))
    assert not first["score"].equals(model.explain(covariate="condition", method="smoothgrad", seed=4)["score"])
    default = model.explain(covariate="batch")
    chunked = model.explain(covariate="batch", batch_size=17)
    np.testing.assert_allclose(chunked["score"], default["score"], rtol=1e-4, atol=1e-6)


def test_label_free_model_explains_overall(adata):
    """Its soft groups split by the strong condition here, not by cell type: the covariate's
    translation is then estimated on all cells, and still recovers it."""
    model = GENEX(adata, label_key=None, covariate_keys=["condition"], **SMALL)
    model.train(**TRAIN)
    table = model.explain(per=None)
    assert set(table["covariate"]) == {"batch", "condition"} and set(table["cell_type"]) == {"all"}
    truth = adata.var["condition_factor_case"].to_numpy() != 1
    assert average_precision_score(truth, _case_scores(table, adata)["score"]) > 2 * truth.mean()
    with pytest.raises(ValueError, match="needs a label-conditioned model"):
        model.explain(per="cell_type")


def test_store_writes_predictable_keys(model, adata, tmp_path):
    target = adata.copy()
    table = model.explain(covariate="condition", adata=target, store=True)
    scores = target.varm[VARM_PREFIX + "condition"]
    assert list(scores.columns) == ["case", "control"] and list(scores.index) == list(target.var_names)
    case = table[(table["level"] == "case") & (table["cell_type"] == "all")].set_index("gene")["score"]
    np.testing.assert_array_equal(scores["case"].to_numpy(), case.reindex(target.var_names).to_numpy())
    pd.testing.assert_frame_equal(target.uns[UNS_KEY], table)
    assert target.uns[UNS_KEY + "_params"]["method"] == DEFAULT_METHOD
    target.write_h5ad(tmp_path / "explained.h5ad")  # storable as it is
    pd.testing.assert_frame_equal(ad.read_h5ad(tmp_path / "explained.h5ad").uns[UNS_KEY], table)


def test_default_method_is_the_documented_winner():
    assert inspect.signature(GENEX.explain).parameters["method"].default == DEFAULT_METHOD


def test_clear_errors(model, adata):
    with pytest.raises(ValueError, match="not one of the model's covariates"):
        model.explain(covariate="donor")
    with pytest.raises(ValueError, match="method must be one of"):
        model.explain(method="shap")
    with pytest.raises(ValueError, match="does not translate cell types"):
        model.explain(covariate="cell_type")
    labels = model.explain(covariate="cell_type", method="ig_neutral")  # the label head's attributions
    assert set(labels["covariate"]) == {"cell_type"} and set(labels["cell_type"]) == {"all"}
    with pytest.raises(RuntimeError, match="not trained"):
        GENEX(adata, covariate_keys=["condition"], **SMALL).explain()
    with pytest.raises(ValueError, match="per=None"):
        GENEX(adata, label_key=None, **SMALL).explain()
    one_batch = adata[adata.obs["batch"] == "Batch1"].copy()
    with pytest.raises(ValueError, match="explain more cells"):
        model.explain(covariate="batch", adata=one_batch)


def test_plot_shows_a_levels_top_genes_per_cell_type(table):
    import matplotlib

    matplotlib.use("Agg")
    from genex_core.plotting import explained_genes

    ax = explained_genes(table, "condition", "case", n_genes=5)
    top = table.query("covariate == 'condition' and level == 'case' and cell_type == 'all'").nsmallest(5, "rank")
    assert [t.get_text() for t in ax.get_xticklabels()] == top["gene"].tolist()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["overall", "Group1", "Group2"]
    with pytest.raises(ValueError, match="no rows for covariate='condition', level='treated'"):
        explained_genes(table, "condition", "treated")
