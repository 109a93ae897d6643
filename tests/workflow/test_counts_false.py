"""Issue 14, item 1: a dataset whose X is log1p(CP10k) already (`counts: false`) is used as given
by the steps on log expression, never normalised a second time, and the steps that model raw
counts are skipped with a visible row, never a crash or a silent gap."""

import numpy as np
import pandas as pd
import pytest

from genex_core.preprocessing import log_normalize
from workflow_scripts.analyse.de import run_workflow
from workflow_scripts.analyse.explain import explain_to_csv, run_rival
from workflow_scripts.contract import NeedsRawCounts, log_expression, to_contract
from workflow_scripts.data.simulate import simulate
from workflow_scripts.names import NEEDS_COUNTS
from workflow_scripts.score.de import de_to_csv
from workflow_scripts.score.explain import score_explanations
from workflow_scripts.score.scib import _baseline

PARAMS = dict(
    nGenes=200, batchCells=[120, 100], group_prob=[0.5, 0.5], de_prob=0.2, de_facLoc=0.8, seed=4,
    covariates=[dict(name="condition", gene_prob=0.1, facLoc=0.8)],
)  # fmt: skip


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The same cells as raw counts and as a `counts: false` dataset holding their log1p(CP10k)."""
    sim = simulate(PARAMS)
    counts = to_contract(sim.copy(), "counts", covariates=["condition"])
    logged = sim.copy()
    logged.X = log_normalize(logged.X)
    log = to_contract(logged, "log", covariates=["condition"], counts=False)
    root = tmp_path_factory.mktemp("data")
    paths = {}
    for name, data in (("counts", counts), ("log", log)):
        paths[name] = root / name / "data.h5ad"
        paths[name].parent.mkdir()
        data.write_h5ad(paths[name])
    return counts, log, paths


def test_log_expression_is_x_as_given_without_counts(both):
    counts, log, _ = both
    np.testing.assert_allclose(log_expression(log), log.X.toarray())
    np.testing.assert_allclose(log_expression(log), log_expression(counts), rtol=1e-6)


def test_ols_batch_fold_change_of_log_data_is_the_one_from_the_counts(both):
    counts, log, _ = both
    from_counts = run_workflow("ols_batch", counts).set_index(["covariate", "level", "reference", "cell_type", "gene"])
    from_log = run_workflow("ols_batch", log).set_index(["covariate", "level", "reference", "cell_type", "gene"])
    gene = from_counts["lfc"].abs().idxmax()  # the gene with the largest fold change of any comparison
    assert abs(from_counts.loc[gene, "lfc"]) > 0.5
    assert from_log.loc[gene, "lfc"] == pytest.approx(from_counts.loc[gene, "lfc"], rel=1e-5)  # was ~10x smaller
    np.testing.assert_allclose(from_log["lfc"], from_counts["lfc"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(from_log["score"], from_counts["score"], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("rival", ["mean_difference", "wilcoxon_raw", "ols_batch"])
def test_explanation_rivals_rank_log_data_as_the_counts(both, rival):
    counts, log, _ = both
    keys = ["covariate", "level", "cell_type", "gene"]
    from_counts = run_rival(rival, counts).set_index(keys)["score"]
    from_log = run_rival(rival, log).set_index(keys)["score"]
    np.testing.assert_allclose(from_log.reindex(from_counts.index), from_counts, rtol=1e-3, atol=1e-4)


def test_scib_baseline_is_x_as_given(both):
    counts, log, _ = both
    np.testing.assert_allclose(_baseline(log, "batch").X.toarray(), log.X.toarray())
    np.testing.assert_allclose(_baseline(log, "batch").X.toarray(), _baseline(counts, "batch").X.toarray(), rtol=1e-5, atol=1e-6)


def test_scvi_de_is_skipped_with_a_visible_row(both, tmp_path):
    _, log, paths = both
    with pytest.raises(NeedsRawCounts, match="declares `counts: false`"):
        run_workflow("scvi_de", log)
    scores = de_to_csv("scvi_de", paths["log"], None, tmp_path / "genes.csv.gz", tmp_path / "scores.csv")
    assert len(scores) and (scores["status"] == NEEDS_COUNTS).all() and scores["value"].isna().all()
    assert (scores["representation"] == "scvi_de").all() and (scores["method"] == "unintegrated").all()
    assert pd.read_csv(tmp_path / "genes.csv.gz").empty


def test_count_based_explanations_are_skipped_with_visible_rows(both, tmp_path):
    _, log, paths = both
    tables = []
    for method in ("genex", "genex_ig", "scvi_de", "mrvi", "random"):
        tables.append(tmp_path / f"{method}.csv.gz")
        explain_to_csv(method, paths["log"], tables[-1], model_dir=tmp_path / "no_model")  # GENEX never ran: no model
    scores = score_explanations(paths["log"], tables, tmp_path / "explain.csv")
    skipped = scores[scores["method"] != "random"]
    assert set(skipped["method"]) == {"genex", "genex_ig", "scvi_de", "mrvi"}
    assert (skipped["status"] == NEEDS_COUNTS).all() and skipped["value"].isna().all()
    assert (scores.loc[scores["method"] == "random", "status"] == "ok").all()


def test_genex_training_failure_is_still_reported_as_failed(both, tmp_path):
    _, log, paths = both
    table = tmp_path / "random.csv.gz"
    explain_to_csv("random", paths["counts"], table)
    scores = score_explanations(paths["counts"], [table], tmp_path / "explain.csv", {"genex": "MemoryError: out"})
    assert (scores.loc[scores["method"] == "genex", "status"] == "failed: MemoryError: out").all()
