"""Explanation tables of GENEX and its rivals, scored against simulated gene effects
(workflow_scripts/analyse/explain.py, explain_scores.py)."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from genex_core import GENEX
from genex_core.preprocessing import log_normalize
from workflow_scripts.analyse.explain import PSEUDOCOUNT, TABLE_COLUMNS, explain_to_csv, run_rival
from workflow_scripts.contract import to_contract
from workflow_scripts.data.simulate import simulate
from workflow_scripts.integrate.run import runner
from workflow_scripts.names import ALL_CELLS, NO_EXPLAIN_TRUTH, NULL
from workflow_scripts.registry import EXPLAIN_RIVALS
from workflow_scripts.score.explain import RANKING, explain_scores, score_explanations
from workflow_scripts.score.explain_truth import BATCH_MIN_LOG_EFFECT, Truth

# Two batches with a strong batch effect, two cell types, a covariate with strong effects per type.
STRONG = dict(
    nGenes=100, batchCells=[100, 100], group_prob=[0.5, 0.5], de_prob=0.2, de_facLoc=1.0, batch_facLoc=0.4, seed=3,
    covariates=[dict(name="condition", gene_prob=0.2, facLoc=1.0, per_cell_type=True)],
)  # fmt: skip
NULL_COVARIATE = {**STRONG, "covariates": [dict(name="condition", gene_prob=0.0, per_cell_type=True)], "seed": 4}
SCORED = [
    ("overall", "batch"),
    ("overall", "cell_type"),
    ("overall", "condition"),
    ("per_cell_type", "batch"),
    ("per_cell_type", "condition"),
]
FAST = {"mrvi": dict(max_epochs=2)}  # the schema only


@pytest.fixture(scope="module")
def strong():
    return to_contract(simulate(STRONG), "strong", covariates=["condition"])


@pytest.fixture(scope="module")
def null():
    return to_contract(simulate(NULL_COVARIATE), "null", covariates=["condition"])


def _scores(table: pd.DataFrame, data) -> pd.Series:
    return explain_scores(table, Truth(data)).set_index(["representation", "category", "metric"])["value"]


@pytest.fixture(scope="module")
def scvi_model(strong, tmp_path_factory):
    """The dataset's scVI model as integrate_scvi saves it (scvi_de reads it; two epochs: the schema only)."""
    path = tmp_path_factory.mktemp("models") / "scvi"
    runner("scvi")(strong, "batch", "cell_type", seed=0, threads=1, max_epochs=2).model.save(path, overwrite=True)
    return path


@pytest.mark.parametrize("rival", EXPLAIN_RIVALS)
def test_rival_tables_have_the_schema_and_one_ranking_per_comparison(strong, rival, scvi_model):
    params = {"model_dir": scvi_model} if rival == "scvi_de" else FAST.get(rival, {})
    table = run_rival(rival, strong, **params)
    calls = rival in ("wilcoxon_raw", "ols_batch", "scvi_de")
    assert list(table.columns) == [c for c in TABLE_COLUMNS if calls or c != "significant"]
    covariates = {"scvi_de": {"cell_type", "condition"}, "mrvi": {"condition"}}.get(rival, {"batch", "cell_type", "condition"})
    assert set(table["covariate"]) == covariates
    for _, rows in table.groupby(["covariate", "level", "cell_type"]):
        assert len(rows) == strong.n_vars and sorted(rows["rank"]) == list(range(1, strong.n_vars + 1))
        assert rows.sort_values("rank")["score"].is_monotonic_decreasing
    if "condition" in covariates:  # level against the reference, overall and within each type
        levels = table[table["covariate"] == "condition"][["level", "cell_type"]].drop_duplicates()
        assert set(levels["level"]) == {"case"} and set(levels["cell_type"]) == {ALL_CELLS, "Group1", "Group2"}


def test_simple_rivals_beat_random(strong):
    scores = {r: _scores(run_rival(r, strong), strong) for r in ("mean_difference", "wilcoxon_raw", "random")}
    for key in SCORED:
        floor = scores["random"][(*key, "auprc")]
        for rival in ("mean_difference", "wilcoxon_raw"):
            assert scores[rival][(*key, "auprc")] > floor + 0.15, (rival, key)


def test_stratified_lfc_is_the_stratified_log_fold_change(strong):
    """Within each (batch, cell type) stratum: log of mean CP10k + pseudocount, case minus
    control, weighted n_case n_control / n; the overall row scores the root mean square of
    the per-type effects."""
    table = run_rival("stratified_lfc", strong).query("covariate == 'condition' and level == 'case'")
    cp10k = np.expm1(log_normalize(strong.X).toarray())
    obs, effects, weights = strong.obs, [], []
    for _, cells in obs.groupby(["batch", "cell_type"], observed=True).indices.items():
        case = obs["condition"].to_numpy()[cells] == "case"
        n1, n0 = case.sum(), (~case).sum()
        effects.append(np.log(cp10k[cells][case].mean(0) + PSEUDOCOUNT) - np.log(cp10k[cells][~case].mean(0) + PSEUDOCOUNT))
        weights.append(n1 * n0 / (n1 + n0))
    by_type = obs.groupby(["batch", "cell_type"], observed=True).indices.keys()
    for cell_type in obs["cell_type"].cat.categories:
        keep = [i for i, (_, t) in enumerate(by_type) if t == cell_type]
        expected = sum(weights[i] * effects[i] for i in keep) / sum(weights[i] for i in keep)
        got = table[table["cell_type"] == cell_type].set_index("gene")["score"].reindex(strong.var_names)
        np.testing.assert_allclose(got, np.abs(expected), rtol=1e-4, atol=1e-5)


def test_genex_beats_random_in_the_same_table(strong, tmp_path):
    """A few epochs of GENEX, saved and explained as the workflow does, scored with the rivals."""
    model = GENEX(strong, covariate_keys=["condition"])
    model.train(max_epochs=5, batch_size=64, seed=0, progress=False)
    model.save(tmp_path / "model")
    strong.write_h5ad(tmp_path / "data.h5ad")
    names = ["genex", "genex_ig", "mean_difference", "random"]  # a second GENEX run by name
    tables = [tmp_path / f"{m}.csv.gz" for m in names]
    explain_to_csv("genex", tmp_path / "data.h5ad", tables[0], tmp_path / "model")
    explain_to_csv(names[1], tmp_path / "data.h5ad", tables[1], tmp_path / "model", params={"method": "ig_neutral"})
    for path in tables[2:]:
        explain_to_csv(path.name.split(".")[0], tmp_path / "data.h5ad", path)
    shuffled = [tables[2], tables[0], tables[3], tables[1]]  # GENEX first, in the given order
    table = score_explanations(tmp_path / "data.h5ad", shuffled, tmp_path / "explain.csv")
    assert list(table["method"].unique()) == names
    assert (table.loc[table["method"] == "random", "role"] == "control").all()
    auprc = table[table["metric"] == "auprc"].set_index(["method", "representation", "category"])["value"]
    assert auprc[("genex", "overall", "batch")] > auprc[("random", "overall", "batch")] + 0.2
    assert auprc[("genex", "per_cell_type", "batch")] > auprc[("random", "per_cell_type", "batch")] + 0.2
    assert set(table["category"]) == {"batch", "cell_type", "condition"}


def test_null_covariate_has_no_ranking_scores_and_counts_false_discoveries(null):
    scores = explain_scores(run_rival("wilcoxon_raw", null), Truth(null)).set_index(["representation", "category", "metric"])
    for representation in ("overall", "per_cell_type"):
        rows = scores.loc[(representation, "condition")]
        assert rows.loc[list(RANKING), "value"].isna().all() and (rows.loc[list(RANKING), "note"] == NULL).all()
        assert rows.loc["false_discoveries", "value"] >= 0 and rows.loc["observed_fdr", "value"] <= 1
    assert scores.loc[("overall", "cell_type", "auprc"), "value"] > 0.5  # the other covariates are scored


def test_dataset_without_truth_gives_not_applicable_rows(strong):
    blind = strong.copy()
    blind.var = blind.var[[]]
    scores = explain_scores(run_rival("ols_batch", blind), Truth(blind))
    assert set(scores["category"]) == {"batch", "cell_type", "condition"}
    assert scores["value"].isna().all() and (scores["note"] == NO_EXPLAIN_TRUTH).all()


def test_truth_of_batch_covariate_and_cell_type():
    """Batch: a log-effect threshold (every gene has a factor), per type where it differs by type;
    a per-type covariate overall: an effect in any type; the reference level is not scored."""
    near, far = np.exp(0.6 * BATCH_MIN_LOG_EFFECT), np.exp(3 * BATCH_MIN_LOG_EFFECT)
    var = pd.DataFrame(
        {
            "batch_factor_B1": [near, far, 1.0], "batch_factor_B2": [1 / near, 1.0, 1.0],
            "batch_factor_B1__A": [near, far, far], "batch_factor_B2__A": [1 / near, 1.0, 1.0],
            "batch_factor_B1__C": [near, far, 1.0], "batch_factor_B2__C": [near, 1.0, 1.0],
            "de_factor_A": [1.0, 2.0, 1.0], "de_factor_C": [1.0, 1.0, 1.0],
            "cond_factor_ctrl__A": 1.0, "cond_factor_case__A": [1.0, 1.0, 3.0],
            "cond_factor_ctrl__C": 1.0, "cond_factor_case__C": [2.0, 1.0, 1.0],
        },
        index=["g1", "g2", "g3"],
    )  # fmt: skip
    obs = pd.DataFrame({"batch": ["B1", "B2"], "cell_type": ["A", "C"], "cond": ["ctrl", "case"]}).astype("category")
    obs["cond"] = obs["cond"].cat.reorder_categories(["ctrl", "case"])
    info = {"name": "x", "batch_key": "batch", "label_key": "cell_type", "covariates": ["cond"]}
    data = ad.AnnData(obs=obs, var=var, uns={"dataset": info})
    truth = Truth(data)
    assert truth.genes("batch", "B1", "A").tolist() == [True, True, True]  # 0.6 + 0.6 of the threshold
    assert truth.genes("batch", "B1", "C").tolist() == [False, True, False]
    assert truth.genes("batch", "B2", ALL_CELLS).tolist() == [False, True, True]  # mean over the types
    # g2 by its DE factor, g1 and g3 by a condition effect in one type only (case cells differ)
    assert truth.genes("cell_type", "A", ALL_CELLS).tolist() == [True, True, True]
    assert truth.genes("cond", "case", "C").tolist() == [True, False, False]
    assert truth.genes("cond", "case", ALL_CELLS).tolist() == [True, False, True]
    assert not truth.scored("cond", "ctrl", ALL_CELLS) and not truth.scored("cell_type", "A", "C")
