"""Distances of corrected expression to the batch-free truth (workflow_scripts/score/expression.py)."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from genex_core.preprocessing import log_normalize
from workflow_scripts.contract import to_contract
from workflow_scripts.data.simulate import simulate
from workflow_scripts.integrate.baseline import run_unintegrated
from workflow_scripts.integrate.controls import run_truth
from workflow_scripts.names import COLUMNS, NO_EXPRESSION_TRUTH
from workflow_scripts.score.expression import METRICS, expression_scores, missing_rows
from workflow_scripts.score.table import score_dataset

# A visible batch effect that differs by cell type, so it also biases the cell types' fold changes.
BATCHY = dict(
    nGenes=300,
    batchCells=[150, 100],
    group_prob=[0.5, 0.3, 0.2],
    de_prob=0.2,
    de_facLoc=0.5,
    batch_facLoc=0.5,
    batch_interaction_prob=0.5,
    seed=11,
)
DISTANCES = ["mse", "wasserstein"]
FIDELITIES = ["pearson_gene", "pearson_cell", "lfc_correlation"]


@pytest.fixture(scope="module")
def data():
    return to_contract(simulate(BATCHY), "sim")


@pytest.fixture(scope="module")
def corrected(data):
    """Dense corrected expression of the unintegrated data and of the truth control."""
    runs = {"unintegrated": run_unintegrated, "truth": run_truth}
    results = {name: run(data, "batch", "cell_type", seed=0, threads=1).corrected for name, run in runs.items()}
    return {name: values.toarray() if hasattr(values, "toarray") else values for name, values in results.items()}


def _output(data, corrected=None) -> ad.AnnData:
    """A method's output file in memory: the dataset's cells and genes, ``corrected`` if any."""
    out = ad.AnnData(obs=data.obs.copy(), var=data.var[[]].copy())
    if corrected is not None:
        out.layers["corrected"] = np.asarray(corrected, dtype=np.float32)
    return out


def _values(data, corrected, method="m") -> pd.Series:
    table = expression_scores(data, _output(data, corrected), "sim", method)
    assert list(table.columns) == COLUMNS and list(table["metric"]) == list(METRICS)
    return table.set_index("metric")["value"]


def test_truth_beats_unintegrated_on_every_score(data, corrected):
    truth, unintegrated = _values(data, corrected["truth"]), _values(data, corrected["unintegrated"])
    assert np.isfinite(truth).all() and np.isfinite(unintegrated).all()
    assert (truth[DISTANCES] < unintegrated[DISTANCES]).all()
    assert (truth[FIDELITIES] > unintegrated[FIDELITIES]).all()


def test_scrambled_correction_scores_worse_than_truth(data, corrected):
    """Rows permuted across all cells: worse on every score but the Wasserstein distance of the
    flattened values, which a permutation leaves unchanged (it compares value distributions only)."""
    scrambled = corrected["truth"][np.random.default_rng(0).permutation(data.n_obs)]
    truth, worse = _values(data, corrected["truth"]), _values(data, scrambled)
    assert worse["mse"] > truth["mse"]
    assert (worse[FIDELITIES] < truth[FIDELITIES]).all()
    assert worse["wasserstein"] == pytest.approx(truth["wasserstein"])


def test_unmodelled_genes_are_skipped_and_counted(data, corrected):
    partial = corrected["truth"].copy()
    partial[:, :50] = np.nan
    table = expression_scores(data, _output(data, partial), "sim", "m").set_index("metric")
    assert (table["note"] == "250 of 300 genes").all() and np.isfinite(table["value"]).all()
    truth = log_normalize(data.layers["batchfree_means"])[:, 50:]
    assert table.loc["mse", "value"] == pytest.approx(np.mean((partial[:, 50:].astype(float) - truth) ** 2))


def test_no_truth_gives_nan_rows_with_the_reason(data, corrected):
    real = data.copy()
    del real.layers["batchfree_means"]
    table = expression_scores(real, _output(real, corrected["unintegrated"]), "sim", "unintegrated")
    assert len(table) == len(METRICS) and table["value"].isna().all() and (table["note"] == NO_EXPRESSION_TRUTH).all()


def test_embedding_only_method_gives_no_rows(data):
    assert expression_scores(data, _output(data), "sim", "harmony").empty


def test_score_a_dataset(data, corrected, tmp_path):
    data_path = tmp_path / "data.h5ad"
    data.write_h5ad(data_path)
    paths = []
    for name, values in (("truth", corrected["truth"]), ("harmony", None)):
        out = _output(data, values)
        out.uns["method"] = {"name": name}
        paths.append(tmp_path / f"{name}.h5ad")
        out.write_h5ad(paths[-1])
    statuses = {"scvi": "failed: RuntimeError: diverged", "harmony_again": "failed: ValueError: x"}
    table = score_dataset(data_path, paths, statuses, expression_scores, missing_rows)
    assert set(table["method"]) == {"truth", "scvi"}  # no expression, no rows: harmony
    assert (table.loc[table["method"] == "truth", "status"] == "ok").all()
    failed = table[table["method"] == "scvi"]
    assert len(failed) == len(METRICS) and failed["value"].isna().all()
    assert (failed["status"] == "failed: RuntimeError: diverged").all()
