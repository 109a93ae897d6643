"""Figure 5: how well each explanation method (GENEX's attributions and the rival rankings)
finds the genes the simulation tied to each covariate (``explain_summary.csv``: ``method`` is
the explanation method, ``representation`` overall or per cell type, ``category`` the
covariate). The ``random`` ranking is the control: its values are chance.
"""

import matplotlib.pyplot as plt

from workflow_scripts.figures.common import dot_panel, footnote, panel_rows, read_table, series_legend

ROWS = {
    "auprc": "AUPRC",
    "precision_at_n_true": "precision at k\n(k = number of true genes)",
    "false_discoveries": "false discoveries\nper comparison",
}


def draw(explain: str):
    """One row per metric, one column per dataset; one marker per covariate."""
    table = read_table(explain).assign(series=lambda t: t["category"])
    datasets = list(dict.fromkeys(table["dataset"]))
    series = list(dict.fromkeys(table.loc[table["status"] == "ok", "series"]))
    order = list(dict.fromkeys(table["method"]))
    n_entries = table[["method", "representation"]].drop_duplicates().shape[0]
    fig, axes = plt.subplots(
        len(ROWS), len(datasets), figsize=(1.5 + 0.5 * n_entries * len(datasets), 3.8 * len(ROWS)), squeeze=False, sharey="row"
    )
    notes = []
    for r, (metric, name) in enumerate(ROWS.items()):
        for c, dataset in enumerate(datasets):
            rows = panel_rows(table, dataset, metric)
            notes += [f"{dataset}, {metric}, {n}" for n in dot_panel(axes[r, c], rows, series, ceiling=None, order=order)]
            axes[r, c].set_title(dataset if r == 0 else "", fontsize=10)
        axes[r, 0].set_ylabel(name)
        if metric != "false_discoveries":
            axes[r, 0].set_ylim(-0.02, 1.02)
    series_legend(fig, series, "covariate")
    fig.suptitle("Recovery of the simulated covariate genes by each explanation (random: the chance control)", x=0.01, ha="left")
    fig.tight_layout()
    footnote(fig, notes)
    return fig
