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

Table columns as in :mod:`workflow_scripts.scib_scores`. A dataset without batch-free means
gets NaN rows saying so, never zeros; a method without corrected expression gets no rows.
"""

from collections.abc import Iterable, Mapping
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.stats

from genex_core.preprocessing import log_normalize
from workflow_scripts.contract import DATASET_UNS, TRUTH_MEANS
from workflow_scripts.integrate import CORRECTED, METHOD_UNS
from workflow_scripts.methods import EXPRESSION_METHODS
from workflow_scripts.score_table import COLUMNS, OK, mark_controls, read_score_table, run_score_rule

REPRESENTATION = "corrected"
NO_TRUTH = "not applicable: no batch-free truth"


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
        values, note = dict.fromkeys(METRICS, np.nan), NO_TRUTH
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


def failure_rows(dataset: str, failures: Mapping[str, str]) -> pd.DataFrame:
    """Explicit NaN rows for expression methods that failed, so they stay in the table (the
    idea of :func:`workflow_scripts.scib_scores.failure_rows`, with this table's metrics)."""
    rows = [
        (dataset, method, REPRESENTATION, category, name, "raw", np.nan, "", f"failed: {reason}")
        for method, reason in failures.items()
        if method in EXPRESSION_METHODS
        for name, (category, _) in METRICS.items()
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def score_to_csv(data_path: str | Path, integrated_path: str | Path, output_csv: str | Path) -> pd.DataFrame:
    """Rule entry point: score one integrated file against its dataset's truth and write the table."""
    data = ad.read_h5ad(data_path)
    integrated = ad.read_h5ad(integrated_path)
    table = expression_scores(data, integrated, data.uns[DATASET_UNS]["name"], integrated.uns[METHOD_UNS]["name"])
    Path(output_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output_csv, index=False)
    return table


def collect(score_csvs: Iterable[str | Path], failures: Mapping[str, str], output_csv: str | Path, dataset: str) -> pd.DataFrame:
    """Rule entry point: one dataset's per-method tables plus NaN rows for failed expression
    methods (``failures``: {method: reason}, from the failure records)."""
    tables = [read_score_table(p) for p in score_csvs]
    table = mark_controls(pd.concat([*tables, failure_rows(dataset, failures)], ignore_index=True))
    Path(output_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output_csv, index=False)
    return table


if __name__ == "__main__":
    run_score_rule(snakemake, score_to_csv, collect)  # noqa: F821 (injected by Snakemake)
