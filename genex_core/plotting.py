"""Plots of GENEX's explanation tables (:meth:`genex_core.GENEX.explain`)."""

import numpy as np
import pandas as pd

from genex_core.explain import ALL


def explained_genes(table: pd.DataFrame, covariate: str, level: str, n_genes: int = 10, ax=None):
    """Heatmap, in scanpy's matrixplot style, of the ``n_genes`` genes most tied to ``level`` of
    ``covariate`` (by the overall score): each gene's ``effect`` overall and in each cell type
    (rows), on a diverging scale centred at zero, significant calls marked with a dot.

    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    rows = table[(table["covariate"] == covariate) & (table["level"] == level)]
    if rows.empty:
        known = sorted(table.groupby(["covariate", "level"]).groups)
        raise ValueError(f"no rows for covariate={covariate!r}, level={level!r} in the table; it has {known}.")
    overall = rows[rows["cell_type"] == ALL].nsmallest(n_genes, "rank")
    genes = overall["gene"].tolist()
    cell_types = [ALL, *sorted(set(rows["cell_type"]) - {ALL})]
    effect = rows.pivot(index="cell_type", columns="gene", values="effect").reindex(index=cell_types, columns=genes)
    called = rows.pivot(index="cell_type", columns="gene", values="significant").reindex(index=cell_types, columns=genes)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * len(genes) + 2.5, 0.4 * len(cell_types) + 1.5))
    limit = float(np.nanmax(np.abs(effect.to_numpy()))) or 1.0
    image = ax.imshow(effect.to_numpy(dtype=float), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    y, x = np.nonzero(called.fillna(False).to_numpy(dtype=bool))
    ax.scatter(x, y, s=6, c="black", marker="o")
    ax.set_xticks(range(len(genes)), genes, rotation=90)
    ax.set_yticks(range(len(cell_types)), ["overall" if c == ALL else c for c in cell_types])
    ax.set_title(f"{covariate}: {level}")
    ax.figure.colorbar(image, ax=ax, label="effect (log fold change)", shrink=0.8)
    return ax
