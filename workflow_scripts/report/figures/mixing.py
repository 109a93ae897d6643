"""Figure 6: does a good scIB score predict faithful DE? Each method's overall scIB score
(raw, of the PCA of its corrected values: the values its DE ran on) against the AUPRC of
Wilcoxon DE on those values, per dataset, one panel per DE comparison category, with the
Spearman rank correlation over the methods (controls drawn hollow and left out of it).
"""

import matplotlib.pyplot as plt
import pandas as pd
import scipy.stats
from matplotlib.lines import Line2D

from workflow_scripts.report.figures.common import FAILED, MARKERS, PALETTE, failure, footnote, read_table

REPRESENTATION = "corrected_pca"  # scIB's representation of the corrected values
WORKFLOW = "wilcoxon"  # DE on the corrected values


def pairs(scib: pd.DataFrame, de: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, method, category): ``overall`` scIB score and DE ``auprc``."""
    overall = scib[(scib["metric"] == "overall") & (scib["scaling"] == "raw") & (scib["representation"] == REPRESENTATION)]
    auprc = de[(de["metric"] == "auprc") & (de["representation"] == WORKFLOW)]
    return (
        auprc[["dataset", "method", "role", "category", "value"]]
        .rename(columns={"value": "auprc"})
        .merge(overall[["dataset", "method", "value"]].rename(columns={"value": "overall"}), on=["dataset", "method"])
    )


def spearman_text(points: pd.DataFrame) -> str:
    """Spearman's rho over the methods' (dataset, method) points with both values."""
    methods = points[(points["role"] == "method")].dropna(subset=["overall", "auprc"])
    if len(methods) < 3 or methods["overall"].nunique() < 2 or methods["auprc"].nunique() < 2:
        return f"Spearman ρ: too few distinct points (n = {len(methods)})"
    rho, p = scipy.stats.spearmanr(methods["overall"], methods["auprc"])
    return f"Spearman ρ = {rho:.2f} (p = {p:.2g}, n = {len(methods)} method × dataset points)"


def _marker(i: int, control: bool) -> dict:
    """The method's colour and marker; hollow for a control."""
    colour = PALETTE[i % len(PALETTE)]
    return dict(linestyle="none", marker=MARKERS[i % len(MARKERS)], color=colour, markerfacecolor="none" if control else colour)


def draw(scib: str, de: list[str]):
    """Scatter per DE category from ``scib_summary.csv`` and the DE tables of every dataset."""
    scib_table = read_table(scib)
    de_table = pd.concat([read_table(p) for p in de], ignore_index=True)
    points = pairs(scib_table, de_table)
    categories = list(dict.fromkeys(points.loc[points["category"] != "all", "category"]))
    roles = (
        points.sort_values("role", key=lambda r: r != "method", kind="stable")
        .drop_duplicates("method")
        .set_index("method")["role"]
    )
    methods = list(roles.index)
    datasets = list(dict.fromkeys(points["dataset"]))
    failed = de_table[de_table["status"].str.startswith(FAILED)].drop_duplicates(["dataset", "method"])
    failed_text = [f"{FAILED}: {r.method} on {r.dataset} ({failure(r.status)})" for r in failed.itertuples()]
    fig, axes = plt.subplots(1, max(len(categories), 1), figsize=(4.6 * max(len(categories), 1), 4.4), squeeze=False)
    for ax, category in zip(axes[0], categories, strict=False):
        shown = points[points["category"] == category]
        for row in shown.itertuples():
            ax.plot(row.overall, row.auprc, markersize=7, **_marker(methods.index(row.method), row.role == "control"))
            ax.annotate(row.dataset, (row.overall, row.auprc), fontsize=5, xytext=(3, 3), textcoords="offset points", color="0.3")
        ax.set(xlabel=f"scIB overall (raw, {REPRESENTATION})", ylabel=f"DE AUPRC ({WORKFLOW})")
        ax.set_title(f"{category}\n{spearman_text(shown)}", fontsize=9)
        ax.grid(color="0.9")
    handles = [
        Line2D([], [], label=m + (" (control)" if roles[m] == "control" else ""), **_marker(i, roles[m] == "control"))
        for i, m in enumerate(methods)
    ]
    fig.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8, title=f"methods ({len(datasets)} datasets)"
    )
    fig.suptitle("Does mixing predict DE fidelity? scIB overall vs DE AUPRC (hollow: controls, not in ρ)", x=0.01, ha="left")
    fig.tight_layout()
    footnote(fig, failed_text)
    return fig
