"""DE workflows and their scores against the simulated DE genes (workflow_scripts/analyse/de*.py)."""

from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from workflow_scripts.analyse.de import Comparison, comparisons, ols_t_tests, run_workflow
from workflow_scripts.contract import to_contract
from workflow_scripts.data.simulate import simulate
from workflow_scripts.integrate.run import integrate, runner
from workflow_scripts.names import NO_DE_TRUTH, NULL, REST
from workflow_scripts.score.de import add_truth, de_scores, score_de_rule, true_genes

# Strong DE between 3 cell types whose shares differ between the batches, a batch effect that
# differs by cell type (so it leaks into their comparisons), a covariate with strong per-type effects.
STRONG = dict(
    nGenes=200, batchCells=[150, 150], group_prob=[[0.6, 0.3, 0.1], [0.1, 0.3, 0.6]], de_prob=0.2, de_facLoc=1.0,
    batch_facLoc=0.4, batch_interaction_prob=0.3,
    seed=5, covariates=[dict(name="condition", gene_prob=0.1, facLoc=1.0, per_cell_type=True)],
)  # fmt: skip
NULL_COVARIATE = {**STRONG, "covariates": [dict(name="condition", gene_prob=0.0, per_cell_type=True)], "seed": 6}


def _output(data: ad.AnnData, method: str) -> ad.AnnData:
    """A method's output file in memory (what workflow_scripts/integrate/run.py writes)."""
    result = runner(method)(data, "batch", "cell_type", seed=0, threads=1)
    out = ad.AnnData(obs=data.obs.copy(), var=data.var[[]].copy(), uns={"method": {"name": method}})
    corrected = result.corrected.toarray() if hasattr(result.corrected, "toarray") else result.corrected
    out.layers["corrected"] = np.asarray(corrected, dtype=np.float32)
    return out


def _scores(data: ad.AnnData, integrated: ad.AnnData | None, workflow="wilcoxon", **params) -> pd.DataFrame:
    genes = add_truth(run_workflow(workflow, data, integrated, **params), data.var, "cell_type")
    return de_scores(genes, "cell_type").set_index(["category", "metric"])["value"]


@pytest.fixture(scope="module")
def strong():
    return to_contract(simulate(STRONG), "strong", covariates=["condition"])


@pytest.fixture(scope="module")
def strong_scores(strong):
    return {m: _scores(strong, _output(strong, m)) for m in ("truth", "unintegrated", "shuffled")}


def test_comparisons_cover_types_pairs_and_covariate_levels_within_types(strong):
    comps = comparisons(strong.obs, "cell_type", ["condition"])
    types = ["Group1", "Group2", "Group3"]
    assert comps[:3] == [Comparison("cell_type", t, REST) for t in types]
    assert comps[3:6] == [
        Comparison("cell_type", "Group1", "Group2"),
        Comparison("cell_type", "Group1", "Group3"),
        Comparison("cell_type", "Group2", "Group3"),
    ]
    assert comps[6:] == [Comparison("condition", "case", "control", t) for t in types]
    first, second = comps[6].masks(strong.obs, "cell_type")
    assert (strong.obs.loc[first, "condition"] == "case").all() and (
        strong.obs.loc[first | second, "cell_type"] == "Group1"
    ).all()
    tiny = strong.obs.iloc[:40].copy()  # too few cells of some levels: skipped, not an error
    assert all(c.masks(tiny, "cell_type")[0].sum() >= 3 for c in comparisons(tiny, "cell_type", ["condition"]))


def test_truth_follows_the_simulated_factors():
    var = pd.DataFrame(
        {
            "de_factor_A": [1.0, 2.0, 1.0, 1.0],
            "de_factor_B": [1.0, 2.0, 0.5, 1.0],
            "de_factor_C": [1.0, 1.0, 1.0, 3.0],
            "sex_factor_f": 1.0,
            "sex_factor_m": [2.0, 1.0, 1.0, 1.0],
            "batch_factor_b1__A": [1.0, 1.0, 1.0, 5.0],  # technical: never DE
        }
    )
    assert true_genes(var, Comparison("cell_type", "A", "B"), "cell_type").tolist() == [False, False, True, False]
    assert true_genes(var, Comparison("cell_type", "A", REST), "cell_type").tolist() == [False, True, True, True]
    assert true_genes(var, Comparison("sex", "m", "f", "B"), "cell_type").tolist() == [True, False, False, False]
    assert true_genes(var[["de_factor_A"]], Comparison("cell_type", "A", REST), "cell_type") is None
    # a condition effect in A's case cells (gene 1) is DE within A, and between A and B
    specific = var.assign(
        cond_factor_ctrl__A=1.0, cond_factor_case__A=[2.0, 1.0, 1.0, 1.0], cond_factor_ctrl__B=1.0, cond_factor_case__B=1.0
    )
    assert true_genes(specific, Comparison("cond", "case", "ctrl", "A"), "cell_type").tolist() == [True, False, False, False]
    assert true_genes(specific, Comparison("cond", "case", "ctrl", "B"), "cell_type").tolist() == [False, False, False, False]
    assert true_genes(specific, Comparison("cell_type", "A", "B"), "cell_type").tolist() == [True, False, True, False]


def test_truth_control_recovers_de_best_and_shuffled_worst(strong_scores):
    auprc = {m: s.xs("auprc", level="metric") for m, s in strong_scores.items()}
    for category in ("cell_type_vs_rest", "cell_type_pair", "covariate:condition"):
        assert auprc["truth"][category] > 0.75, category
        assert min(auprc["truth"][category], auprc["unintegrated"][category]) > auprc["shuffled"][category] + 0.2, category
    for category in ("cell_type_vs_rest", "cell_type_pair"):  # where the batch effect is confounded
        assert auprc["truth"][category] > auprc["unintegrated"][category] + 0.05, category


def test_paper_f1_is_reported_for_wilcoxon_vs_rest_only(strong, strong_scores):
    truth = strong_scores["truth"]
    assert 0 <= truth["cell_type_vs_rest", "f1_paper"] <= 1
    assert ("cell_type_pair", "f1_paper") not in truth.index
    ols = _scores(strong, None, workflow="ols_batch")
    assert "f1_paper" not in ols.index.get_level_values("metric")


def test_ols_t_tests_match_statsmodels_gene_by_gene():
    rng = np.random.default_rng(0)
    design = np.column_stack([np.ones(60), rng.integers(0, 2, 60), rng.integers(0, 2, 60)]).astype(float)
    y = rng.normal(size=(60, 5)) + design[:, [1]] * np.arange(5)
    t, p = ols_t_tests(y, design, column=1)
    for gene in range(5):
        fit = sm.OLS(y[:, gene], design).fit()
        assert t[gene] == pytest.approx(fit.tvalues[1]) and p[gene] == pytest.approx(fit.pvalues[1])
    confounded = np.column_stack([np.ones(60), design[:, 1], design[:, 1]])  # group == batch
    t, p = ols_t_tests(y, confounded, column=1)
    assert (t == 0).all() and (p == 1).all()


def test_batch_covariate_model_recovers_de_on_raw_counts(strong, strong_scores):
    ols = _scores(strong, None, workflow="ols_batch")
    assert ols["cell_type_pair", "auprc"] > 0.8
    assert ols["cell_type_pair", "auprc"] > strong_scores["shuffled"]["cell_type_pair", "auprc"]


def test_null_covariate_counts_invented_discoveries():
    data = to_contract(simulate(NULL_COVARIATE), "null", covariates=["condition"])
    honest = _output(data, "unintegrated")
    inventing = honest.copy()  # a "correction" that shifts 10 genes in the case cells
    case = (data.obs["condition"] == "case").to_numpy()
    inventing.layers["corrected"][np.ix_(case, np.arange(10))] += 2.0
    for output, at_least in ((honest, 0), (inventing, 10)):
        genes = add_truth(run_workflow("wilcoxon", data, output), data.var, "cell_type")
        rows = de_scores(genes, "cell_type").set_index(["category", "metric"])
        assert rows.loc[("covariate:condition", "auprc"), "note"] == NULL
        assert np.isnan(rows.loc[("covariate:condition", "auprc"), "value"])
        assert rows.loc[("covariate:condition", "false_discoveries"), "value"] >= at_least
    assert rows.loc[("covariate:condition", "false_discoveries"), "value"] >= 10


def test_data_without_truth_gets_not_applicable_rows(strong):
    real = strong.copy()
    real.var = real.var[[]]
    table = de_scores(
        add_truth(run_workflow("wilcoxon", real, _output(real, "unintegrated")), real.var, "cell_type"), "cell_type"
    )
    assert table["value"].isna().all() and (table["note"] == NO_DE_TRUTH).all()


def test_output_without_expression_gives_no_rows(strong):
    harmony = ad.AnnData(obs=strong.obs.copy(), var=strong.var[[]].copy(), uns={"method": {"name": "harmony"}})
    genes = run_workflow("wilcoxon", strong, harmony)
    assert genes.empty and de_scores(add_truth(genes, strong.var, "cell_type"), "cell_type").empty


def test_score_de_keeps_missing_methods_and_ranks_raw_workflows_as_methods(strong, tmp_path):
    data_path = tmp_path / "data.h5ad"
    strong.write_h5ad(data_path)
    integrated = tmp_path / "unintegrated.h5ad"
    integrate(data_path, "unintegrated", integrated, {}, seed=0, threads=1)
    raw = tmp_path / "ols.csv"
    de_scores(add_truth(run_workflow("ols_batch", strong), strong.var, "cell_type"), "cell_type").to_csv(raw, index=False)
    failure = tmp_path / "genex.failed.json"
    failure.write_text('{"method": "genex", "reason": "MemoryError: out of memory"}')
    smk = SimpleNamespace(
        input=SimpleNamespace(data=data_path, integrated=[integrated], failures=[failure], raw=[raw]),
        params=SimpleNamespace(skipped={"scanvi": "skipped: needs labels", "harmony": "skipped: needs labels"}),
        output=SimpleNamespace(scores=tmp_path / "de.csv", genes=tmp_path / "wilcoxon.csv.gz"),
        log=[tmp_path / "log.txt"],
    )
    score_de_rule(smk)
    table = pd.read_csv(smk.output.scores)
    for method, status in (("genex", "failed: MemoryError: out of memory"), ("scanvi", "skipped: needs labels")):
        rows = table[table["method"] == method]
        assert len(rows) > 0 and rows["value"].isna().all() and (rows["status"] == status).all()
    assert "harmony" not in set(table["method"])  # no expression: never part of the DE table
    roles = table.groupby(["method", "representation"])["role"].unique()
    assert list(roles["unintegrated", "ols_batch"]) == ["method"] and list(roles["unintegrated", "wilcoxon"]) == ["control"]
    genes = pd.read_csv(smk.output.genes)
    assert set(genes["method"]) == {"unintegrated"} and genes["is_true"].notna().any()


def test_scvi_de_ranks_every_comparison(strong, tmp_path):
    """scvi_de reads the dataset's scVI model as integrate_scvi saved it (no second training)."""
    runner("scvi")(strong, "batch", "cell_type", seed=0, threads=1, max_epochs=2).model.save(tmp_path / "scvi", overwrite=True)
    genes = run_workflow("scvi_de", strong, seed=0, threads=1, model_dir=tmp_path / "scvi")
    assert set(genes["method"]) == {"unintegrated"} and set(genes["workflow"]) == {"scvi_de"}
    assert len(genes) == len(comparisons(strong.obs, "cell_type", ["condition"])) * strong.n_vars
    assert genes["score"].between(0, 1).all() and genes["significant"].dtype == bool
