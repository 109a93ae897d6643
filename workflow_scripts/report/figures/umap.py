"""Figure 2: UMAP of every method's and control's output on one dataset, coloured by batch and
by cell type: one pair of panels per method, of the representation its scIB scores rank (the
embedding ``obsm["X_emb"]`` or, for methods that return expression, the PCA of the corrected
values, whichever has the higher overall score).
"""

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scanpy as sc
from matplotlib.lines import Line2D

from workflow_scripts.names import CORRECTED, DATASET_UNS, EMBEDDING, METHOD_UNS
from workflow_scripts.report.figures.common import FAILED, entries, mark_controls, message_axes, read_table, style

N_PCS = 50  # as scib_scores' corrected_pca representation
N_NEIGHBORS = 15


def representations(integrated: ad.AnnData) -> dict[str, np.ndarray]:
    """{representation name as in scib.csv: coordinates} of one method's output."""
    coords = {"embedding": np.asarray(integrated.obsm[EMBEDDING], dtype=np.float32)}
    if CORRECTED in integrated.layers:
        values = np.asarray(integrated.layers[CORRECTED], dtype=np.float32)
        values = values[:, np.isfinite(values).all(axis=0)]  # NaN columns: genes not modelled
        coords["corrected_pca"] = sc.pp.pca(values, n_comps=min(N_PCS, min(values.shape) - 1), svd_solver="arpack")
    return coords


def umap(coords: np.ndarray, seed: int) -> np.ndarray:
    """scanpy's UMAP of ``coords``; ``seed`` makes it repeatable."""
    adata = ad.AnnData(obs=pd.DataFrame(index=np.arange(len(coords)).astype(str)))
    adata.obsm["X"] = coords
    sc.pp.neighbors(adata, n_neighbors=min(N_NEIGHBORS, len(coords) - 1), use_rep="X", random_state=seed)
    sc.tl.umap(adata, random_state=seed)
    return adata.obsm["X_umap"]


def scatter(ax, xy: np.ndarray, groups: pd.Series, levels: list[str]) -> None:
    for i, level in enumerate(levels):
        mask = (groups == level).to_numpy()
        ax.scatter(*xy[mask].T, s=3, linewidths=0, rasterized=True, **style(i))
    ax.set_xticks([])
    ax.set_yticks([])


def legend(fig, title: str, levels: list[str], anchor: float, top: float) -> None:
    handles = [Line2D([], [], linestyle="none", markersize=6, **style(i)) for i in range(len(levels))]
    fig.legend(
        handles, levels, title=title, loc="lower left", bbox_to_anchor=(anchor, top), ncols=min(len(levels), 6), frameon=False
    )


def draw(data: str, integrated: list[str], scores: str, seed: int = 0, per_row: int = 2):
    """Figure of one dataset from its ``data.h5ad``, the integrated files that exist and its
    ``scib.csv`` (which lists every entry, failed ones with their reason)."""
    cells = ad.read_h5ad(data)
    keys = cells.uns[DATASET_UNS]
    obs = cells.obs[[keys["batch_key"], keys["label_key"]]].astype(str)
    colourings = [(key, sorted(obs[key].unique())) for key in (keys["batch_key"], keys["label_key"])]
    table = read_table(scores)
    found = entries(table)
    overall = table[(table["metric"] == "overall") & (table["scaling"] == "raw")].dropna(subset=["value"])
    best = set(overall.loc[overall.groupby("method")["value"].idxmax(), ["method", "representation"]].itertuples(index=False))
    found = found[
        [
            (m, r) in best or m not in set(overall["method"])
            for m, r in zip(found["method"], found["representation"], strict=False)
        ]
    ]
    found = found.drop_duplicates("method").reset_index(drop=True)
    outputs = {}
    for path in integrated:
        adata = ad.read_h5ad(path)
        outputs[adata.uns[METHOD_UNS]["name"]] = representations(adata)
    n_rows = -(-len(found) // per_row)
    fig, axes = plt.subplots(n_rows, 2 * per_row, figsize=(5 * per_row, 2.5 * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, entry in enumerate(found.itertuples()):
        pair = axes[i // per_row, 2 * (i % per_row) : 2 * (i % per_row) + 2]
        coords = outputs.get(entry.method, {}).get(entry.representation)
        xy = None if coords is None else umap(coords, seed)
        for ax, (key, levels) in zip(pair, colourings, strict=False):
            ax.set_axis_on()
            title = ax.set_title(f"{entry.label.splitlines()[0]}\nby {key}", fontsize=8)
            mark_controls([title], [entry.role])
            if xy is None:
                message_axes(ax, f"{FAILED}:\n{entry.failed}" if entry.failed else "no output")
            else:
                scatter(ax, xy, obs[key], levels)
    top = 1 - 1.0 / fig.get_figheight()  # room for the title and the legends
    fig.tight_layout(rect=(0, 0, 1, top))
    for (key, levels), anchor in zip(colourings, (0.0, 0.5), strict=False):
        legend(fig, key, levels, anchor, top)
    fig.suptitle(f"{keys['name']}: UMAP of each output (seed {seed})", x=0.01, ha="left")
    return fig
