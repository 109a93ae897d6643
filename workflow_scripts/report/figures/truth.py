"""Figure 4: how close corrected expression is to the simulated batch-free truth.

``truth_distance`` plots the metrics of the expression tables (distance: lower is better;
fidelity: higher is better) per method and dataset. ``truth_genes`` shows, for the genes with
the largest batch factors of one dataset, each method's corrected value of every cell against
its true value (log1p CP10k of ``layers["batchfree_means"]``): a perfect correction lies on
the diagonal, whatever the batch.
"""

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from genex_core.preprocessing import log_normalize
from workflow_scripts.names import CORRECTED, DATASET_UNS, METHOD_UNS, TRUTH_MEANS
from workflow_scripts.report.figures.common import (
    FAILED,
    dot_panel,
    entries,
    footnote,
    mark_controls,
    message_axes,
    panel_rows,
    read_table,
    style,
)

CATEGORIES = {"distance": "lower is better", "fidelity": "higher is better"}


def draw_distance(truth: str):
    """One panel per dataset (rows) and metric (columns) of ``truth_summary.csv``."""
    table = read_table(truth)
    table = table[table["category"].isin(CATEGORIES)].assign(series="value")
    datasets = list(dict.fromkeys(table["dataset"]))
    metrics = list(dict.fromkeys(table["metric"]))
    category_of = dict(zip(table["metric"], table["category"], strict=False))
    order = list(dict.fromkeys(table["method"]))
    fig, axes = plt.subplots(
        len(datasets), len(metrics), figsize=(0.35 * len(order) * len(metrics) + 1.5, 3.4 * len(datasets)), squeeze=False
    )
    notes = []
    for r, dataset in enumerate(datasets):
        for c, metric in enumerate(metrics):
            rows = panel_rows(table, dataset, metric)
            notes += [f"{dataset}, {n}" for n in dot_panel(axes[r, c], rows, ["value"], keys=("method",), order=order)]
            category = category_of[metric]
            axes[r, c].set_title(f"{metric}\n({category}: {CATEGORIES[category]})" if r == 0 else "", fontsize=8)
        axes[r, 0].set_ylabel(dataset)
    fig.suptitle("Corrected expression against the batch-free truth (dashed: truth control)", x=0.01, ha="left")
    fig.tight_layout()
    footnote(fig, notes)
    return fig


def batch_genes(var: pd.DataFrame, batches: list[str], n: int) -> list[str]:
    """The ``n`` genes whose global batch factor is furthest from 1 in any batch."""
    factors = var[[f"batch_factor_{b}" for b in batches]].to_numpy(dtype=float)
    strength = np.abs(np.log(factors)).max(axis=1)
    return list(var.index[np.argsort(-strength, kind="stable")[:n]])


def draw_genes(data: str, integrated: list[str], scores: str, n_genes: int = 3):
    """Corrected vs true expression of the ``n_genes`` genes most affected by the batch, one
    row per gene and one column per method with corrected expression (``expression.csv``)."""
    cells = ad.read_h5ad(data)
    keys = cells.uns[DATASET_UNS]
    found = entries(read_table(scores), keys=("method",))
    batches = sorted(cells.obs[keys["batch_key"]].astype(str).unique())
    if TRUTH_MEANS not in cells.layers or found.empty:
        fig, ax = plt.subplots(figsize=(6, 2))
        message_axes(ax, f"{keys['name']}: not applicable, no batch-free truth or no corrected expression")
        return fig
    genes = batch_genes(cells.var, batches, n_genes)
    columns = [cells.var_names.get_loc(g) for g in genes]
    truth = np.asarray(log_normalize(np.asarray(cells.layers[TRUTH_MEANS])))[:, columns]
    corrected = {}
    for path in integrated:
        adata = ad.read_h5ad(path)
        if CORRECTED in adata.layers:
            corrected[adata.uns[METHOD_UNS]["name"]] = np.asarray(adata.layers[CORRECTED])[:, columns]
    batch = cells.obs[keys["batch_key"]].astype(str).to_numpy()
    # one y range per gene, so the methods of a row compare at a glance
    values = np.concatenate([truth, *corrected.values()])
    limits = list(zip(np.nanmin(values, axis=0), np.nanmax(values, axis=0), strict=False))
    fig, axes = plt.subplots(len(genes), len(found), figsize=(2.3 * len(found), 2.3 * len(genes)), squeeze=False)
    for c, entry in enumerate(found.itertuples()):
        for r, gene in enumerate(genes):
            ax = axes[r, c]
            if entry.method not in corrected:
                message_axes(ax, f"{FAILED}:\n{entry.failed}" if entry.failed else "no corrected expression")
            else:
                for i, b in enumerate(batches):
                    ax.scatter(
                        truth[batch == b, r],
                        corrected[entry.method][batch == b, r],
                        s=3,
                        linewidths=0,
                        rasterized=True,
                        label=b,
                        **style(i),
                    )
                low, high = np.nanmin(truth[:, r]), np.nanmax(truth[:, r])
                ax.plot([low, high], [low, high], color="black", linewidth=0.8, linestyle="--")
                ax.set_ylim(limits[r])
            if r == 0:
                mark_controls([ax.set_title(entry.label, fontsize=8)], [entry.role])
            if c == 0:
                ax.set_ylabel(f"{gene}\ncorrected", fontsize=8)
            if r == len(genes) - 1:
                ax.set_xlabel("true log1p CP10k", fontsize=8)
            ax.tick_params(labelsize=6)
    handles, labels = next((ax.get_legend_handles_labels() for ax in axes.flat if ax.collections), ([], []))
    fig.legend(handles, labels, title=keys["batch_key"], loc="upper right", markerscale=3, fontsize=7)
    fig.suptitle(
        f"{keys['name']}: corrected vs true expression of the genes with the largest batch factors (dashed: identity)",
        x=0.01,
        ha="left",
    )
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    return fig
