"""Distance of each method's corrected expression to the simulation's batch-free truth.

scIB scores whether batches mix and labels stay apart; they cannot tell whether the corrected
values are the expression the cells would have had without a batch effect. On simulations that
truth is known: ``T`` = log1p(CP10k) of ``layers["batchfree_means"]`` (the project's one
normalisation), compared with ``layers["corrected"]`` on the genes the method modelled (its finite
columns; the ``note`` records how many).

Metrics (``representation="corrected"``, ``scaling="raw"``):

``distance`` (lower is better)
    ``mse``, pooled over all values; ``wasserstein``, between the flattened value distributions
    (the GENEX paper's measure).
``fidelity`` (higher is better)
    ``pearson_gene``, median over genes of the Pearson r across cells; ``pearson_cell``, median
    over cells of the r across genes (constant genes or cells skipped); ``lfc_correlation``,
    Pearson r of the true and corrected log fold changes of each cell type against all other
    cells, pooled over cell types: whether the correction kept the differential expression.

Table columns as in :mod:`workflow_scripts.score.scib`. A dataset without batch-free means
gets NaN rows saying so, never zeros; a method without corrected expression gets no rows.
"""

from collections.abc import Mapping

import anndata as ad
import numpy as np
import pandas as pd
import scipy.stats

from genex_core.preprocessing import log_normalize
from workflow_scripts.names import COLUMNS, CORRECTED, DATASET_UNS, NO_EXPRESSION_TRUTH, OK, TRUTH_MEANS
from workflow_scripts.registry import EXPRESSION_METHODS
from workflow_scripts.score.table import run_score_rule

REPRESENTATION = "corrected"


def _median_pearson(a: np.ndarray, b: np.ndarray, axis: int) -> float:
    """Median over the other axis of the Pearson r of ``a`` and ``b`` along ``axis``, skipping
    vectors that are constant in either (their r is undefined)."""
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    norms = np.sqrt((a * a).sum(axis=axis) * (b * b).sum(axis=axis))
    defined = norms > 0
    return float(np.median((a * b).sum(axis=axis)[defined] / norms[defined]))


def _log_fold_changes(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cell types x genes: mean of each cell type minus the mean of all other cells."""
    return np.stack([values[labels == x].mean(axis=0) - values[labels != x].mean(axis=0) for x in np.unique(labels)])


def _mse(c, t, labels):
    return float(np.mean((c - t) ** 2))


def _wasserstein(c, t, labels):
    return float(scipy.stats.wasserstein_distance(c.ravel(), t.ravel()))


def _pearson_gene(c, t, labels):
    return _median_pearson(c, t, axis=0)


def _pearson_cell(c, t, labels):
    return _median_pearson(c, t, axis=1)


def _lfc_correlation(c, t, labels):
    return float(np.corrcoef(_log_fold_changes(c, labels).ravel(), _log_fold_changes(t, labels).ravel())[0, 1])


# {metric: (category, function of corrected, truth, labels)}; float64 inputs, genes in common
METRICS = {
    "mse": ("distance", _mse),
    "wasserstein": ("distance", _wasserstein),
    "pearson_gene": ("fidelity", _pearson_gene),
    "pearson_cell": ("fidelity", _pearson_cell),
    "lfc_correlation": ("fidelity", _lfc_correlation),
}


def expression_scores(data: ad.AnnData, integrated: ad.AnnData, dataset: str, method: str) -> pd.DataFrame:
    """The truth metrics of one method's corrected expression, one row per metric.

    ``data`` is the dataset (contract layout), ``integrated`` the method's output file. Only an
    output with ``layers["corrected"]`` is scored, which ``integrate.py`` guarantees is exactly
    the methods in ``EXPRESSION_METHODS``; others give an empty table.
    """
    if CORRECTED not in integrated.layers:
        return pd.DataFrame(columns=COLUMNS)
    if not integrated.obs_names.equals(data.obs_names):
        raise ValueError(f"{method} on '{dataset}': integrated cells differ from the dataset's (order or names)")
    if TRUTH_MEANS not in data.layers:
        values, note = dict.fromkeys(METRICS, np.nan), NO_EXPRESSION_TRUTH
    else:
        corrected = np.asarray(integrated.layers[CORRECTED], dtype=np.float64)
        modelled = np.isfinite(corrected).all(axis=0)  # NaN columns: genes the method did not model
        truth = np.asarray(log_normalize(np.asarray(data.layers[TRUTH_MEANS])), dtype=np.float64)[:, modelled]
        labels = data.obs[data.uns[DATASET_UNS]["label_key"]].astype(str).to_numpy()
        values = {name: f(corrected[:, modelled], truth, labels) for name, (_, f) in METRICS.items()}
        note = f"{int(modelled.sum())} of {modelled.size} genes"
    rows = [
        (dataset, method, REPRESENTATION, category, name, "raw", values[name], note, OK)
        for name, (category, _) in METRICS.items()
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def missing_rows(dataset: str, statuses: Mapping[str, str]) -> pd.DataFrame:
    """NaN rows for expression methods that did not run, each with its status ("failed:
    <reason>" or "skipped: <why>"), so they stay in the table."""
    rows = [
        (dataset, method, REPRESENTATION, category, name, "raw", np.nan, "", status)
        for method, status in statuses.items()
        if method in EXPRESSION_METHODS
        for name, (category, _) in METRICS.items()
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


if __name__ == "__main__":
    run_score_rule(snakemake, expression_scores, missing_rows)  # noqa: F821 (injected by Snakemake)
