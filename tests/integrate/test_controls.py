"""Positive (truth) and negative (shuffled) controls (workflow_scripts/integrate/controls.py)."""

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from genex_core.preprocessing import log_normalize
from workflow_scripts.contract import to_contract
from workflow_scripts.integrate.baseline import run_unintegrated
from workflow_scripts.integrate.controls import run_shuffled, run_truth
from workflow_scripts.registry import CONTROLS, EXPRESSION_METHODS, METHODS


@pytest.fixture(scope="module")
def data(tiny_adata):
    return to_contract(tiny_adata.copy(), "tiny")


@pytest.fixture(scope="module")
def results(data):
    runs = (run_unintegrated, run_truth, run_shuffled)
    return {run.__name__: run(data, "batch", "cell_type", seed=0, threads=1) for run in runs}


def _dense(matrix):
    return matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)


def _knn_accuracy(embedding, labels) -> float:
    """Cross-validated 15-NN accuracy of predicting the cell type from the embedding."""
    return cross_val_score(KNeighborsClassifier(15), embedding, labels, cv=5).mean()


def test_registered_as_expression_methods():
    assert {"truth", "shuffled"} <= set(METHODS) & EXPRESSION_METHODS
    assert CONTROLS == {"truth", "shuffled", "unintegrated"}


@pytest.mark.parametrize("name", ["run_truth", "run_shuffled"])
def test_shapes_and_params_like_unintegrated(name, results, data):
    result, reference = results[name], results["run_unintegrated"]
    assert result.embedding.shape == reference.embedding.shape and np.isfinite(result.embedding).all()
    assert _dense(result.corrected).shape == data.shape and np.isfinite(_dense(result.corrected)).all()
    assert result.params == reference.params and result.version == reference.version


def test_truth_is_the_normalised_batch_free_counts(results, data):
    corrected = results["run_truth"].corrected
    assert isinstance(corrected, np.ndarray) and corrected.dtype == np.float32
    np.testing.assert_array_equal(corrected, log_normalize(data.layers["batchfree_counts"]).toarray())


def test_shuffled_keeps_each_batch_profiles_and_breaks_labels(results, data):
    shuffled, lognorm = _dense(results["run_shuffled"].corrected), log_normalize(data.X).toarray()
    batches = data.obs["batch"].to_numpy()
    for batch in np.unique(batches):
        in_batch = batches == batch
        assert sorted(map(bytes, shuffled[in_batch])) == sorted(map(bytes, lognorm[in_batch]))
    assert not np.array_equal(shuffled, lognorm)
    labels = data.obs["cell_type"].to_numpy()
    majority = data.obs["cell_type"].value_counts(normalize=True).max()
    assert _knn_accuracy(results["run_unintegrated"].embedding, labels) > 0.9
    assert _knn_accuracy(results["run_shuffled"].embedding, labels) < majority + 0.15


def test_shuffled_is_deterministic_for_a_seed(results, data):
    again = run_shuffled(data, "batch", "cell_type", seed=0, threads=1)
    np.testing.assert_array_equal(_dense(again.corrected), _dense(results["run_shuffled"].corrected))
    np.testing.assert_array_equal(again.embedding, results["run_shuffled"].embedding)
    other = run_shuffled(data, "batch", "cell_type", seed=1, threads=1)
    assert not np.array_equal(_dense(other.corrected), _dense(again.corrected))


def test_truth_without_the_layer_is_a_clear_error(data):
    real = data.copy()
    del real.layers["batchfree_counts"]
    with pytest.raises(ValueError, match=r"truth control needs layers\['batchfree_counts'\] \(simulated data\)"):
        run_truth(real, "batch", "cell_type", seed=0, threads=1)
