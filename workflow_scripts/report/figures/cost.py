"""Figure 7: what each method costs: wall time (summed over datasets, stacked by stage) and
peak memory (the largest over datasets, per stage), from Snakemake's ``benchmark:`` files
(:func:`workflow_scripts.report.cost.job_costs`). The report's own jobs are left out: they run
while this figure is drawn."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.legend_handler import HandlerTuple

from workflow_scripts.report.cost import job_costs
from workflow_scripts.report.figures.common import HATCHES, MARKERS, PALETTE, entries, mark_controls, read_table

REPORT_STAGE = "report"
STAGES = ("dataset", "integrate", "score_scib", "score_expression", "de", "explain", "collect")  # pipeline order
OTHER = "shared jobs (datasets, scoring, collection)"


def owner(stage: str, step: str, methods: list[str]) -> str:
    """The row a job belongs to: the method its step is (``genex``) or ends with
    (``wilcoxon_genex``); a DE workflow on raw counts or an explanation rival; or the shared
    jobs (datasets, scoring and collecting tables)."""
    for method in methods:
        if step == method or step.endswith(f"_{method}"):
            return method
    return f"{stage}: {step}" if stage in ("de", "explain") and not step.startswith("score_") else OTHER


def per_row(costs: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Seconds (sum) and peak memory (max) per (row, stage), without the report's jobs; the
    collection jobs of every table are one stage."""
    costs = costs[costs["stage"] != REPORT_STAGE]
    costs = costs.assign(
        row=[owner(stage, step, methods) for stage, step in zip(costs["stage"], costs["step"], strict=False)],
        stage=costs["stage"].str.replace(r"^collect_.*", "collect", regex=True),
    )
    return (
        costs.groupby(["row", "stage"], sort=False)
        .agg(seconds=("seconds", "sum"), max_rss_mb=("max_rss_mb", "max"))
        .reset_index()
    )


def draw(scib: str, results: str = "results"):
    """Bars of wall time and dots of peak memory, one row per method of ``scib_summary.csv``
    (failed ones labelled), then the DE workflows on raw counts and the shared jobs."""
    found = entries(read_table(scib), keys=("method",))
    cost = per_row(job_costs(results), list(found["method"]))
    extra = [r for r in dict.fromkeys(cost["row"]) if r not in set(found["method"])]
    labels = list(found["label"]) + extra
    roles = list(found["role"]) + ["method"] * len(extra)
    rows = list(found["method"]) + extra
    found_stages = list(dict.fromkeys(cost["stage"]))
    stages = [s for s in STAGES if s in found_stages] + sorted(set(found_stages) - set(STAGES))
    y = np.arange(len(rows))
    fig, (time_ax, memory_ax) = plt.subplots(1, 2, figsize=(12, 1.5 + 0.45 * len(rows)), sharey=True)
    left = np.zeros(len(rows))
    for i, stage in enumerate(stages):
        seconds = cost[cost["stage"] == stage].set_index("row")["seconds"].reindex(rows).fillna(0).to_numpy()
        time_ax.barh(
            y,
            seconds,
            left=left,
            color=PALETTE[i % len(PALETTE)],
            hatch=HATCHES[i % len(HATCHES)],
            edgecolor="black",
            linewidth=0.4,
            label=stage,
        )
        left += seconds
        memory = cost[cost["stage"] == stage].set_index("row")["max_rss_mb"].reindex(rows).to_numpy(dtype=float)
        memory_ax.plot(
            memory,
            y,
            linestyle="none",
            marker=MARKERS[i % len(MARKERS)],
            color=PALETTE[i % len(PALETTE)],
            markeredgecolor="black",
            markeredgewidth=0.4,
            label=stage,
        )
    for entry, total in zip(found.itertuples(), left, strict=False):
        if entry.failed:
            time_ax.text(total, entry.Index, "  failed", va="center", color="#D55E00", fontsize=8)
    time_ax.set_yticks(y, labels, fontsize=8)
    time_ax.invert_yaxis()
    mark_controls(time_ax.get_yticklabels(), roles)
    time_ax.set(xlabel="wall time (s, summed over datasets)", title="Wall time per stage")
    memory_ax.set(xlabel="peak resident memory (MB, largest over datasets)", title="Peak memory per stage")
    for ax in (time_ax, memory_ax):
        ax.grid(axis="x", color="0.9")
        ax.set_axisbelow(True)
    handles = list(zip(*(ax.get_legend_handles_labels()[0] for ax in (time_ax, memory_ax)), strict=False))
    memory_ax.legend(
        handles,
        stages,
        handler_map={tuple: HandlerTuple(ndivide=None)},
        title="stage",
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        fontsize=8,
    )
    fig.tight_layout()
    return fig
