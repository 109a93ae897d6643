"""Figure 5: how well each explanation method (GENEX's attributions and the rival rankings)
finds the genes the simulation tied to each covariate.

``explain`` plots the scores of ``explain_summary.csv`` (``method`` is the explanation method,
``representation`` overall or per cell type, ``category`` the covariate). ``explain_genes``
shows, for one dataset, GENEX's top genes per covariate level marked against the simulated
truth (``explain_top_genes.csv``), and every method's precision among its top k genes
(``explain_topk.csv``), both written by the score stage
(:mod:`workflow_scripts.score.explain_topk`). The ``random`` ranking is the control: its values
are chance.
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from workflow_scripts.names import OK
from workflow_scripts.registry import GENEX
from workflow_scripts.report.figures.common import CONTROL_COLOUR, dot_grid, entries, message_axes, read_table, style

ROWS = {
    "auprc": "AUPRC",
    "precision_at_n_true": "precision at k\n(k = number of true genes)",
    "false_discoveries": "false discoveries\nper comparison",
}
LINES = ["-", "-.", ":"]  # with the markers, curves part in greyscale
TRUE_GENE = dict(marker="o", markersize=3.5, color="black", markeredgecolor="white", markeredgewidth=0.6)


def draw(explain: str):
    """One row per metric, one column per dataset; one marker per covariate."""
    table = read_table(explain).assign(series=lambda t: t["category"])
    series = list(dict.fromkeys(table.loc[table["status"] == OK, "series"]))
    title = "Recovery of the simulated covariate genes by each explanation (random: the chance control)"
    return dot_grid(table, ROWS, series, "covariate", title, ceiling=None)


def _heatmap(ax, top_genes: pd.DataFrame) -> None:
    """GENEX's top genes per comparison, shaded by score relative to the row's top gene (rows
    of different scales compare), a dot on each gene the simulation tied to the level."""
    comparisons = list(top_genes.groupby(["covariate", "level"], sort=False))
    width = max(len(rows) for _, rows in comparisons)
    top = np.full((len(comparisons), width), np.nan)
    labels = []
    for y, ((covariate, level), rows) in enumerate(comparisons):
        top[y, : len(rows)] = rows["score"].to_numpy(float) / rows["score"].iloc[0]
        for x, gene in enumerate(rows["gene"]):
            ax.text(x, y + 0.15, gene, ha="center", va="center", fontsize=6, color="white" if top[y, x] > 0.6 else "black")
        truth = rows["is_true"].to_numpy(float)
        hits = np.flatnonzero(truth == 1)
        ax.plot(hits, np.full(len(hits), y - 0.2), linestyle="none", **TRUE_GENE)
        n_true = rows["n_true"].iloc[0]
        labels.append(f"{covariate} {level}\n({'no truth' if np.isnan(n_true) else f'{int(n_true)} true genes'})")
    image = ax.imshow(top, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xticks(range(width), range(1, width + 1), fontsize=7)
    ax.set(xlabel="rank", title=f"{GENEX}: top {width} genes per level (overall)")
    ax.figure.colorbar(image, ax=ax, location="bottom", shrink=0.4, aspect=30, label="score / the row's top score")
    dot = Line2D([], [], linestyle="none", label="simulated true gene (none: not true)", **TRUE_GENE)
    ax.legend(handles=[dot], loc="lower right", bbox_to_anchor=(1, 1), fontsize=7, frameon=False)


def draw_genes(topk: str, top_genes: str, scores: str):
    """GENEX's top genes marked against the simulated truth (left) and every explanation
    method's precision among its top k genes per covariate (right; random: chance)."""
    curves = pd.read_csv(topk, keep_default_na=False, na_values={"k": [""], "precision": [""]})
    genex = pd.read_csv(top_genes, dtype={"covariate": str, "level": str, "gene": str})
    table = read_table(scores)
    found = entries(table, keys=["method"])
    covariates = list(dict.fromkeys(curves["covariate"]))
    n_rows = max(1, -(-len(covariates) // 2))
    n_levels = genex.drop_duplicates(["covariate", "level"]).shape[0]
    fig = plt.figure(figsize=(18, max(2.5 + 0.5 * n_levels, 2 + 2.6 * n_rows)), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1.5, 1])
    ax = left.subplots()
    if not genex.empty:
        _heatmap(ax, genex)
    else:
        failed = found.loc[found["method"] == GENEX, "label"]
        message_axes(ax, failed.iloc[0] if not failed.empty else f"no {GENEX} explanations")
    axes = right.subplots(n_rows, 2, squeeze=False).ravel()  # not shared: a note's panel drops its ticks
    max_k = int(curves["k"].max()) if curves["k"].notna().any() else 1
    for ax, covariate in zip(axes, covariates, strict=False):
        here = curves[curves["covariate"] == covariate]
        ax.set_title(here["category"].iloc[0], fontsize=9)
        drawn = here[here["method"] != ""]
        if drawn.empty:
            message_axes(ax, here["note"].iloc[0].replace(": ", ":\n"))
            continue
        for i, entry in enumerate(found.itertuples()):
            curve = drawn[drawn["method"] == entry.method]
            if not curve.empty:
                ax.plot(curve["k"], curve["precision"], markevery=(i % 10, 10), markersize=4, linewidth=1, **_look(i, entry.role))
        ax.set(xlim=(0, max_k + 1), ylim=(0, 1.02))
        ax.grid(color="0.92")
    for j, ax in enumerate(axes):
        if j >= len(covariates):
            ax.set_visible(False)
        elif j + 2 >= len(covariates):  # the lowest panel of its column
            ax.set_xlabel("k (the method's top k genes)", fontsize=9)
    handles = [
        Line2D([], [], label=e.label.replace("\n", ": "), **(dict(linestyle="none") if e.failed else _look(i, e.role)))
        for i, e in enumerate(found.itertuples())
    ]
    right.supylabel("precision among the top k (mean over levels)", fontsize=9)
    right.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=7)
    fig.suptitle(f"{table['dataset'].iloc[0]}: the genes each explanation ties to each covariate level", x=0.01, ha="left")
    return fig


def _look(i: int, role: str) -> dict:
    """A method's colour, marker and line style (three styles, so curves part in greyscale);
    the control dashed grey, without markers."""
    if role == "control":
        return dict(color=CONTROL_COLOUR, linestyle="--")
    return dict(**style(i), linestyle=LINES[i % len(LINES)])
