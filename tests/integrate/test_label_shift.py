"""The closed-form within-label shift (``label_shift``): the bar a label-using method must clear."""

import numpy as np
import scipy.sparse as sp
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from genex_core.preprocessing import log_normalize
from workflow_scripts.contract import to_contract
from workflow_scripts.data.simulate import simulate
from workflow_scripts.integrate.baseline import run_unintegrated
from workflow_scripts.integrate.controls import run_truth
from workflow_scripts.integrate.methods import label_shifts, run_label_shift

INTERACTION = dict(
    nGenes=300, batchCells=[200, 200], group_prob=[0.4, 0.35, 0.25], de_prob=0.2, de_facLoc=0.5,
    batch_facLoc=0.3, batch_interaction_prob=0.3, seed=5,
)  # fmt: skip


def _batch_knn(embedding, batches) -> float:
    return float(cross_val_score(KNeighborsClassifier(15), embedding, batches, cv=5).mean())


def test_interaction_batches_mix_like_the_truth_while_raw_does_not():
    data = to_contract(simulate(INTERACTION), "interaction")
    batches = data.obs["batch"].to_numpy()
    truth = _batch_knn(run_truth(data, "batch", "cell_type", seed=0, threads=1).embedding, batches)
    shifted = run_label_shift(data, "batch", "cell_type", seed=0, threads=1)
    raw = run_unintegrated(data, "batch", "cell_type", seed=0, threads=1)
    assert abs(_batch_knn(shifted.embedding, batches) - truth) <= 0.1
    assert _batch_knn(raw.embedding, batches) - truth > 0.1


def test_zeros_stay_zero_and_values_stay_non_negative():
    data = to_contract(simulate(INTERACTION), "interaction")
    corrected = run_label_shift(data, "batch", "cell_type", seed=0, threads=1).corrected
    lognorm = log_normalize(data.X)
    assert sp.issparse(corrected) and corrected.min() >= 0
    observed_zero = lognorm.toarray() == 0
    assert (corrected.toarray()[observed_zero] == 0).all()


def test_a_cell_type_in_one_batch_gets_its_batch_shift():
    """Two batches, label 1 only in batch 1: its shift is batch 1's shift on the shared label."""
    rng = np.random.default_rng(0)
    genes = 20
    offset = rng.normal(0, 1, genes)
    batches = np.repeat([0, 0, 1, 1], 50)
    labels = np.repeat([0, 1, 0, 0], 50)  # label 1: batch 0 only
    base = np.where(labels[:, None] == 1, 5.0, 3.0) + rng.normal(0, 0.01, (200, genes))
    values = sp.csr_matrix(base + offset * (batches[:, None] == 1))
    shifts = label_shifts(values, batches, labels)  # rows b * n_labels + l
    shared_batch0 = shifts[0 * 2 + 0]
    np.testing.assert_allclose(shared_batch0, -offset / 2, atol=0.01)
    np.testing.assert_allclose(shifts[0 * 2 + 1], shared_batch0, atol=1e-6)  # the exclusive type


def test_small_groups_are_shrunk_toward_their_batch_shift():
    """A (batch, label) group of two noisy cells moves little from its batch's shift."""
    rng = np.random.default_rng(1)
    batches = np.r_[np.zeros(100, int), np.ones(100, int), np.zeros(2, int), np.ones(100, int)]
    labels = np.r_[np.zeros(200, int), np.ones(102, int)]
    values = sp.csr_matrix(3.0 + rng.normal(0, 1.0, (batches.size, 30)) + 0.5 * batches[:, None])
    shifts = label_shifts(values, batches, labels).reshape(2, 2, -1)
    small, batch0 = shifts[0, 1], shifts[0, 0]
    raw = (
        values[200:202].toarray().mean(axis=0)
        - (values[200:202].toarray().mean(axis=0) + values[202:].toarray().mean(axis=0)) / 2
    )
    assert np.abs(small - batch0).mean() < 0.5 * np.abs(raw - batch0).mean()
