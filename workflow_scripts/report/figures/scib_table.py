"""Figure 1: the scIB table, drawn as scib-metrics' ``Benchmarker.plot_results_table`` draws it
(plottable: a circle per metric, a bar per aggregate score, metrics grouped by category),
one panel per dataset, from the raw scores of ``scib_summary.csv``.

Methods given the cell-type labels come first, then the label-free ones, each group sorted by its
overall score; the controls follow below them, unranked, in grey italics; a failed method keeps
its row with the reason on its label.
"""

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from plottable import ColumnDefinition, Table
from plottable.plots import bar

from workflow_scripts.report.figures.common import CONTROL_COLOUR, entries, read_table

GROUPS = {"batch": "Batch correction", "bio": "Bio conservation", "total": "Aggregate score"}
TOTALS = {"batch_score": "Batch", "bio_score": "Bio", "overall": "Overall"}
NORM = mpl.colors.Normalize(0, 1)  # every scIB metric is in [0, 1]: colours compare across panels
# The light half of YlGnBu, so the black numbers on the bars stay readable.
BARS = mpl.colors.ListedColormap(mpl.colormaps["YlGnBu"](np.linspace(0.05, 0.55, 256)))


def _number(value: float) -> str:
    """Two decimals; an empty cell where there is no value (not applicable, or failed)."""
    return "" if np.isnan(value) else f"{value:.2f}"


def _bar_or_dash(ax, val: float, **kwargs):
    """plottable's bar, or a dash where there is no value (a failed method)."""
    if np.isnan(val):
        ax.text(0.5, 0.5, "–", ha="center", va="center")
        ax.axis("off")
        return None
    return bar(ax, val, **kwargs)


def wide_scores(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Raw scores of one dataset, one row per (method, representation) in display order and
    one column per metric, plus {column: group} for the column groups."""
    raw = table[table["scaling"] == "raw"]
    rows = entries(raw)
    metrics = {m: GROUPS[c] for c, m in raw[["category", "metric"]].drop_duplicates().itertuples(index=False) if c != "total"}
    wide = raw.pivot_table(index=["method", "representation"], columns="metric", values="value", dropna=False)
    wide = wide.reindex(columns=list(metrics) + list(TOTALS)).rename(columns=TOTALS)
    wide = wide.reindex(pd.MultiIndex.from_frame(rows[["method", "representation"]]))
    wide.index = rows["label"].str.replace("\n", " — ").to_numpy()
    wide["role"] = rows["role"].to_numpy()
    with_labels = rows["uses_labels"].to_numpy(bool) if "uses_labels" in rows else np.zeros(len(rows), bool)
    blocks = [wide[(wide["role"] == "method") & (with_labels == group)] for group in (True, False)]
    blocks = [b.sort_values("Overall", ascending=False, na_position="last") for b in blocks]  # ranked within each group
    wide = pd.concat([*blocks, wide[wide["role"] == "control"]])
    return wide, {**metrics, **{t: GROUPS["total"] for t in TOTALS.values()}}


def plot_table(ax, table: pd.DataFrame) -> Table:
    """One dataset's scIB table on ``ax``."""
    wide, groups = wide_scores(table)
    roles = wide.pop("role")
    wide.index.name = "Method"
    circle = {"ha": "center", "bbox": {"boxstyle": "circle", "pad": 0.25}}
    cmap = mpl.colormaps["cividis"]
    columns = [ColumnDefinition("Method", width=4, textprops={"ha": "left", "weight": "bold"})]
    columns += [
        ColumnDefinition(
            col,
            title=col.replace("_", "\n", 1),
            width=1,
            textprops=circle,
            cmap=lambda v: cmap(NORM(v)),
            group=groups[col],
            formatter=_number,
        )
        for col in wide.columns
        if col not in TOTALS.values()
    ]
    columns += [
        ColumnDefinition(
            col,
            width=1,
            plot_fn=_bar_or_dash,
            group=groups[col],
            border="left" if i == 0 else None,
            plot_kw={"cmap": BARS, "annotate": True, "height": 0.9, "formatter": "{:.2f}"},
        )
        for i, col in enumerate(TOTALS.values())
    ]
    tab = Table(
        wide.astype(float),
        ax=ax,
        column_definitions=columns,
        cell_kw={"linewidth": 0, "edgecolor": "k"},
        row_dividers=True,
        footer_divider=True,
        textprops={"fontsize": 9, "ha": "center"},
        row_divider_kw={"linewidth": 1, "linestyle": (0, (1, 5))},
        col_label_divider_kw={"linewidth": 1, "linestyle": "-"},
        column_border_kw={"linewidth": 1, "linestyle": "-"},
    ).autoset_fontcolors(colnames=[c for c in wide.columns if c not in TOTALS.values()])
    for i, role in enumerate(roles):
        if role == "control":
            tab.rows[i].cells[0].text.set_fontstyle("italic")
            tab.rows[i].cells[0].text.set_color(CONTROL_COLOUR)
    return tab


def draw(scib: str):
    """Figure from ``scib_summary.csv``: one table per dataset, stacked."""
    table = read_table(scib)
    datasets = list(dict.fromkeys(table["dataset"]))
    heights = [
        2 + 0.4 * table.loc[table["dataset"] == d, ["method", "representation"]].drop_duplicates().shape[0] for d in datasets
    ]
    n_columns = table.loc[table["category"] != "total", "metric"].nunique() + len(TOTALS)
    fig, axes = plt.subplots(
        len(datasets), 1, figsize=(4.5 + 1.1 * n_columns, sum(heights)), height_ratios=heights, squeeze=False
    )
    for ax, dataset in zip(axes[:, 0], datasets, strict=False):
        plot_table(ax, table[table["dataset"] == dataset])
        ax.set_title(
            f"{dataset}: scIB metrics raw scores, overall = scIB weighted mean of batch and bio", loc="left", fontsize=11, pad=24
        )
    return fig
