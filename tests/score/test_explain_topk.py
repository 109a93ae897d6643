"""What the explanation figure shows, computed in the score stage
(workflow_scripts/score/explain_topk.py): precision among each method's top k per covariate,
and GENEX's top genes marked against the simulated truth."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from workflow_scripts.names import NO_EXPLAIN_TRUTH, NULL
from workflow_scripts.score.explain_topk import GENES_COLUMNS, TOP_GENES, TOPK_COLUMNS, explain_topk, precision_at_k
from workflow_scripts.score.explain_truth import Truth

N_GENES = 50


def dataset(rng) -> ad.AnnData:
    """Batch effects on every gene, cell-type DE, a condition effect on the first 10 genes and a
    null covariate (dose: equal factors)."""
    n = 24
    obs = pd.DataFrame(
        {
            "batch": pd.Categorical(np.repeat(["B1", "B2"], n // 2)),
            "cell_type": pd.Categorical(np.tile(["A", "B"], n // 2)),
            "condition": pd.Categorical(np.tile(["control", "case", "case", "control"], n // 4), categories=["control", "case"]),
            "dose": pd.Categorical(np.tile(["low", "high", "high", "low"], n // 4), categories=["low", "high"]),
        },
        index=[f"c{i}" for i in range(n)],
    )
    effect = np.where(np.arange(N_GENES) < 10, 2.0, 1.0)
    var = pd.DataFrame(
        {
            "batch_factor_B1": rng.lognormal(0, 0.4, N_GENES),
            "batch_factor_B2": rng.lognormal(0, 0.4, N_GENES),
            "de_factor_A": np.where(rng.random(N_GENES) < 0.3, 2.0, 1.0),
            "de_factor_B": 1.0,
            "condition_factor_control": 1.0,
            "condition_factor_case": effect,
            "dose_factor_low": 1.0,
            "dose_factor_high": 1.0,
        },
        index=[f"g{g}" for g in range(N_GENES)],
    )
    data = ad.AnnData(X=np.ones((n, N_GENES), dtype=np.float32), obs=obs, var=var)
    info = {"name": "d", "batch_key": "batch", "label_key": "cell_type", "covariates": ["condition", "dose"]}
    data.uns["dataset"] = info
    return data


def ranking(rng, method: str, data: ad.AnnData, truth: Truth, skill: float) -> pd.DataFrame:
    """Every comparison GENEX explains, scores better than chance by ``skill`` (0: random)."""
    keys = [("batch", b, "all") for b in ["B1", "B2"]] + [("cell_type", t, "all") for t in ["A", "B"]]
    keys += [("condition", level, "all") for level in ["control", "case"]] + [("dose", level, "all") for level in ["low", "high"]]
    keys += [("batch", "B1", "A")]  # per cell type: not shown
    rows = []
    for covariate, level, cell_type in keys:
        genes = truth.genes(covariate, level, "all") if truth.scored(covariate, level, "all") else None
        score = rng.uniform(0, 1, N_GENES) + skill * (genes if genes is not None else 0)
        rows += [(data.uns["dataset"]["name"], method, covariate, level, cell_type, f"g{g}", score[g]) for g in range(N_GENES)]
    return pd.DataFrame(rows, columns=["dataset", "method", "covariate", "level", "cell_type", "gene", "score"])


@pytest.fixture
def written(tmp_path):
    rng = np.random.default_rng(5)
    data = dataset(rng)
    data.write_h5ad(tmp_path / "data.h5ad")
    truth = Truth(data)
    tables = {"genex": ranking(rng, "genex", data, truth, 1.0), "random": ranking(rng, "random", data, truth, 0.0)}
    paths = []
    for method, table in tables.items():
        table.to_csv(tmp_path / f"{method}.csv.gz", index=False)
        paths.append(tmp_path / f"{method}.csv.gz")
    pd.DataFrame(columns=tables["genex"].columns).to_csv(tmp_path / "mrvi.csv.gz", index=False)  # did not run: left out
    paths.append(tmp_path / "mrvi.csv.gz")
    topk, genes = explain_topk(tmp_path / "data.h5ad", paths, tmp_path / "topk.csv", tmp_path / "top_genes.csv")
    return topk, genes, tables, truth, tmp_path


def test_precision_at_k_is_the_share_of_true_genes_in_the_top_k():
    marks = np.array([1, 0, 1, 1, 0], dtype=bool)
    np.testing.assert_allclose(precision_at_k(marks), [1, 1 / 2, 2 / 3, 3 / 4, 3 / 5])
    assert precision_at_k(marks, max_k=2).size == 2


def test_topk_is_the_mean_over_levels_with_true_and_false_genes(written):
    topk, _, tables, truth, _ = written
    assert list(topk.columns) == TOPK_COLUMNS
    assert list(dict.fromkeys(topk["covariate"])) == ["batch", "cell_type", "condition", "dose"]
    assert set(topk.loc[topk["method"] != "", "method"]) == {"genex", "random"}
    # condition: one scored level (case; control is the reference), its own curve
    table = tables["genex"]
    rows = table[(table["covariate"] == "condition") & (table["level"] == "case") & (table["cell_type"] == "all")]
    order = np.argsort(-rows["score"].to_numpy(), kind="stable")
    marks = truth.genes("condition", "case", "all")[order]
    ours = topk[(topk["method"] == "genex") & (topk["covariate"] == "condition")]
    np.testing.assert_allclose(ours["precision"], np.cumsum(marks) / np.arange(1, N_GENES + 1))
    assert ours["k"].tolist() == list(range(1, N_GENES + 1)) and (ours["n_comparisons"] == 1).all()
    # batch: the mean over both batches
    assert (topk.loc[(topk["method"] == "genex") & (topk["covariate"] == "batch"), "n_comparisons"] == 2).all()
    # dose is a null: one row saying so, without a method
    dose = topk[topk["covariate"] == "dose"]
    assert (
        len(dose) == 1 and dose["method"].iloc[0] == "" and dose["note"].iloc[0] == NULL and np.isnan(dose["precision"].iloc[0])
    )
    back = pd.read_csv(written[4] / "topk.csv", keep_default_na=False)
    assert back.loc[back["covariate"] == "dose", "note"].iloc[0] == NULL


def test_genex_top_genes_are_marked_against_the_truth(written):
    _, genes, tables, truth, tmp_path = written
    assert list(genes.columns) == GENES_COLUMNS and set(genes["method"]) == {"genex"}
    case = genes[(genes["covariate"] == "condition") & (genes["level"] == "case")]
    assert case["rank"].tolist() == list(range(1, TOP_GENES + 1))
    assert case["score"].is_monotonic_decreasing
    true = set(truth.var.index[truth.genes("condition", "case", "all")])
    assert case["is_true"].tolist() == [float(g in true) for g in case["gene"]]
    assert (case["n_true"] == len(true)).all()
    assert "control" not in set(genes.loc[genes["covariate"] == "condition", "level"])  # the reference is not scored
    assert pd.read_csv(tmp_path / "top_genes.csv").shape == genes.shape


def test_without_simulated_factors_the_note_says_no_truth(written, tmp_path):
    _, _, tables, _, folder = written
    data = ad.read_h5ad(folder / "data.h5ad")
    data.var = data.var[[]]
    data.write_h5ad(tmp_path / "blind.h5ad")
    topk, genes = explain_topk(tmp_path / "blind.h5ad", [folder / "genex.csv.gz"], tmp_path / "t.csv", tmp_path / "g.csv")
    assert (topk["note"] == NO_EXPLAIN_TRUTH).all() and (topk["method"] == "").all()
    assert genes["is_true"].isna().all() and genes["n_true"].isna().all()
