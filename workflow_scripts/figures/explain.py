"""Figure 5: how well each explanation method (GENEX's attributions and the rival rankings)
finds the genes the simulation tied to each covariate (``explain_summary.csv``: ``method`` is
the explanation method, ``representation`` overall or per cell type, ``category`` the
covariate). The ``random`` ranking is the control: its values are chance.
"""

from workflow_scripts.figures.common import dot_grid, read_table

ROWS = {
    "auprc": "AUPRC",
    "precision_at_n_true": "precision at k\n(k = number of true genes)",
    "false_discoveries": "false discoveries\nper comparison",
}


def draw(explain: str):
    """One row per metric, one column per dataset; one marker per covariate."""
    table = read_table(explain).assign(series=lambda t: t["category"])
    series = list(dict.fromkeys(table.loc[table["status"] == "ok", "series"]))
    title = "Recovery of the simulated covariate genes by each explanation (random: the chance control)"
    return dot_grid(table, ROWS, series, "covariate", title, ceiling=None)
