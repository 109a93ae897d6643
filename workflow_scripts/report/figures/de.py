"""Figure 3: recovery of the simulated DE genes.

``de_recovery`` plots AUPRC, F1 and false discoveries of every method and DE workflow per
dataset from the ``de.csv`` tables, with the truth control's value as a dashed line (what DE
recovers from data without any batch effect). ``de_pr_curves`` plots precision–recall curves
of one cell type of one dataset, with their average precision, from ``de_curves.csv.gz`` (the
DE score stage, :mod:`workflow_scripts.score.de_curves`).
"""

import matplotlib.pyplot as plt
import pandas as pd

from workflow_scripts.names import OK
from workflow_scripts.report.figures.common import dot_grid, entries, message_axes, read_table, style

ROWS = {"auprc": "AUPRC", "f1": "F1 of the significance calls", "false_discoveries": "false discoveries\nper comparison"}
PAPER = "f1_paper"  # plotted with F1, as its own series
KEYS = ["covariate", "level", "reference", "cell_type"]


def _series(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of the DE table with a ``series`` column: the category, or the paper's protocol."""
    paper = table["metric"] == PAPER
    series = table["category"].where(~paper, table["category"] + " (paper protocol)")
    return table.assign(series=series, metric=table["metric"].where(~paper, "f1"))


def draw_recovery(de: list[str]):
    """AUPRC, F1 and false discoveries (rows) per dataset (columns)."""
    table = _series(pd.concat([read_table(p) for p in de], ignore_index=True))
    series = sorted(dict.fromkeys(table.loc[table["status"] == OK, "series"]), key=lambda s: s.endswith("(paper protocol)"))
    title = "DE recovery: Wilcoxon on each method's corrected values, DE workflows on raw counts (dashed: truth control)"
    return dot_grid(table, ROWS, series, "comparisons", title)


def _pr_panel(ax, curves: list[tuple[object, pd.DataFrame | None]], title: str) -> None:
    """Precision–recall curves of one comparison, one per entry; failed entries in the legend."""
    drawn = False
    for i, (entry, rows) in enumerate(curves):
        if rows is None:
            ax.plot([], [], linestyle="none", label=entry.label.replace("\n", ": "))
            continue
        if rows["recall"].isna().all():
            continue
        line = "--" if entry.role == "control" else "-"
        ax.plot(
            rows["recall"],
            rows["precision"],
            linestyle=line,
            markevery=0.1,
            markersize=4,
            linewidth=1,
            label=f"{entry.label} (AP {rows['average_precision'].iloc[0]:.2f})",
            **style(i),
        )
        drawn = True
    if not drawn:
        message_axes(ax, "no true DE genes in this comparison:\nprecision and recall are undefined")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=2)


def draw_pr_curves(curves: str, scores: str):
    """PR curves of the comparisons the DE score stage drew them for (``de_curves.csv.gz``: the
    first cell type against the rest and, within it, each covariate level against its
    reference), for every method and workflow of one dataset."""
    table = read_table(scores)
    found = entries(table)
    points = pd.read_csv(curves, dtype={k: str for k in KEYS})
    comparisons = list(dict.fromkeys(points[KEYS].itertuples(index=False, name=None)))
    if not comparisons:
        fig, ax = plt.subplots(figsize=(5, 3))
        message_axes(ax, "no DE comparisons in this dataset")
        return fig
    by_entry = {key: rows for key, rows in points.groupby(["method", "workflow", *KEYS], sort=False)}
    fig, axes = plt.subplots(1, len(comparisons), figsize=(5 * len(comparisons), 4.5), squeeze=False)
    for ax, key in zip(axes[0], comparisons, strict=False):
        curves = []
        for entry in found.itertuples():
            rows = by_entry.get((entry.method, entry.representation, *key))
            if entry.failed:
                curves.append((entry, None))
            elif rows is not None:
                curves.append((entry, rows))
        covariate, level, reference, within_type = key
        where = "" if within_type == "all" else f" in {within_type}"
        _pr_panel(ax, curves, f"{covariate} {level} vs {reference}{where}")
    fig.suptitle(f"{table['dataset'].iloc[0]}: precision–recall of the true DE genes (dashed: controls)", x=0.01, ha="left")
    fig.tight_layout()
    return fig
