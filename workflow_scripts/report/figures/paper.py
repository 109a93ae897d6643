"""Figure: our measurements beside a paper's published numbers (config ``published:``).

It draws ``results/paper_comparison.csv`` and captions it with ``results/paper_claims.csv``,
both written by the score stage (:mod:`workflow_scripts.score.paper`: how each measure is taken,
the paper-protocol DE F1 and the claims), and the published table for its sources. One panel
per published measure and dataset, one row per method: our value filled, the published one
hollow; a method the paper reported that we do not run is drawn as published only ("not run
here"), one of ours that failed says so.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from workflow_scripts.names import OK
from workflow_scripts.report.figures.common import FAILED, PALETTE, failure, mark_controls
from workflow_scripts.score.paper import (
    MEASURES,
    NOT_RUN,
    REPRESENTATIONS,
    Measure,
    read_published,
)

MEASURED = dict(marker="o", color=PALETTE[0], markerfacecolor=PALETTE[0], markeredgecolor="black", markeredgewidth=0.5)
PUBLISHED = dict(marker="D", color=PALETTE[5], markerfacecolor="none", markeredgecolor=PALETTE[5], markeredgewidth=1.6)
FAILED_COLOUR = "#D55E00"


def _entry_labels(methods: list[str], roles: dict, table: pd.DataFrame, failures: dict, dataset: str) -> list[str]:
    labels = []
    for method in methods:
        text = method + (" (control)" if roles.get(method) == "control" else "")
        statuses = set(table.loc[table["method"] == method, "status"])
        if (dataset, method) in failures:
            text += f"\n{FAILED}: {failures[dataset, method]}"
        elif statuses == {NOT_RUN}:
            text += "\n(published only, not run here)"
        labels.append(text)
    return labels


def _limits(panel: pd.DataFrame, spec: Measure) -> tuple[float, float]:
    if spec.unit_interval:
        return -0.03, 1.03
    top = np.nanmax(np.concatenate([panel["measured"].to_numpy(float), panel["published"].to_numpy(float), [0.0]]))
    return 0.0, (top or 1.0) * 1.15


def _panel(ax, panel: pd.DataFrame, methods: list[str], spec: Measure) -> None:
    """One measure of one dataset: a row per method, measured filled, published hollow, a
    grey line between them, and a written mark where our value is missing."""
    low, high = _limits(panel, spec)
    ax.set_xlim(low, high)
    where = blended_transform_factory(ax.transAxes, ax.transData)
    for y, method in enumerate(methods):
        row = panel[panel["method"] == method]
        if row.empty:
            continue
        row = row.iloc[0]
        if not np.isnan(row.measured) and not np.isnan(row.published):
            ax.plot([row.measured, row.published], [y, y], color="0.6", linewidth=1, zorder=1)
        if not np.isnan(row.published):
            ax.plot(row.published, y, linestyle="none", markersize=7, zorder=3, **PUBLISHED)
        if not np.isnan(row.measured):
            ax.plot(row.measured, y, linestyle="none", markersize=6, zorder=2, **MEASURED)
            continue
        if row.status == OK:
            continue
        mark = FAILED if row.status.startswith(FAILED) else row.status
        # beside the published marker, on the side with room
        left = np.isnan(row.published) or (row.published - low) / (high - low) > 0.5
        ax.text(
            0.04 if left else 0.96,
            y,
            mark,
            transform=where,
            ha="left" if left else "right",
            va="center",
            fontsize=6.5,
            color=FAILED_COLOUR if mark == FAILED else "0.3",
            style="italic",
        )
    ax.set_ylim(len(methods) - 0.5, -0.5)
    ax.set_xlabel(f"{'higher' if spec.higher_is_better else 'lower'} is better", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.grid(axis="x", color="0.9")
    for y in range(len(methods)):
        ax.axhline(y, color="0.95", linewidth=0.6, zorder=0)


def draw(published: str, compared: str, verdicts: str):
    """Panels per published measure (columns) and dataset (rows) of the score stage's
    comparison table (``compared``), its claims (``verdicts``) under the figure."""
    paper = read_published(published)
    table = pd.read_csv(compared, keep_default_na=False, na_values={"measured": [""], "published": [""]})
    found = pd.read_csv(verdicts, keep_default_na=False)
    roles = {m: r for m, r in zip(table["method"], table["role"], strict=False) if r}
    failed = table[table["status"].str.startswith(FAILED)].drop_duplicates(["dataset", "method"])
    failures = {(r.dataset, r.method): failure(r.status) for r in failed.itertuples()}
    basis = {r.dataset: r.note for r in table[table["note"] != ""].drop_duplicates("dataset").itertuples()}
    methods = list(dict.fromkeys(table["method"]))
    # ours first, then the paper's other methods, controls last (they bracket, they are not ranked)
    methods.sort(key=lambda m: roles.get(m) == "control")
    datasets = list(dict.fromkeys(table["dataset"]))
    measures = list(dict.fromkeys(table["measure"]))
    fig, axes = plt.subplots(
        len(datasets),
        len(measures),
        figsize=(2.1 * len(measures) + 2.2, (0.34 * len(methods) + 1.3) * len(datasets)),
        squeeze=False,
        sharey="row",
    )
    for r, dataset in enumerate(datasets):
        here = table[table["dataset"] == dataset]
        for c, measure in enumerate(measures):
            ax = axes[r, c]
            _panel(ax, here[here["measure"] == measure], methods, MEASURES[measure])
            ax.set_title(MEASURES[measure].title + (f"\n{dataset}" if len(datasets) > 1 else ""), fontsize=8)
        axes[r, 0].set_yticks(range(len(methods)), _entry_labels(methods, roles, here, failures, dataset), fontsize=7)
        mark_controls(axes[r, 0].get_yticklabels(), [roles.get(m, "method") for m in methods])
    handles = [
        Line2D([], [], linestyle="none", markersize=6, label="measured here", **MEASURED),
        Line2D([], [], linestyle="none", markersize=7, label="published", **PUBLISHED),
    ]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.97), fontsize=8)
    fig.suptitle(f"Measured here (filled) beside the published values (hollow): {Path(published).name}", x=0.01, ha="left")
    fig.tight_layout()
    _caption(fig, paper, table, found, basis, roles)
    return fig


def _caption(fig, paper: pd.DataFrame, table: pd.DataFrame, found: pd.DataFrame, basis: dict, roles: dict) -> None:
    """Under the figure: the claims and whether they reproduce, how each side was measured,
    and the sources of the published values."""
    several = table["dataset"].nunique() > 1
    lines = []
    tested = found[found["verdict"].isin(["reproduces", "does not reproduce"])]
    untested = int((found["verdict"] == "not testable").sum())
    if not found.empty:
        lines.append(
            f"Published claims: {int((tested['verdict'] == 'reproduces').sum())} of {len(tested)} testable orderings reproduce"
            + (f" ({untested} not testable)" if untested else "")
        )
        lines += [f"  {'• ' if not several else f'• {r.dataset}: '}{r.text}" for r in found.itertuples()]
    scib_rows = table["measure"].map(lambda m: MEASURES[m].family == "scib")
    scib = table[scib_rows & table["status"].ne(NOT_RUN) & ~table["representation"].isin([REPRESENTATIONS["scib"][0], ""])]
    if not scib.empty:
        methods = ", ".join(dict.fromkeys(f"{m} ({r})" for m, r in zip(scib["method"], scib["representation"], strict=False)))
        lines.append(f"scIB: raw totals on PCA of the corrected expression, except {methods}")
    if "f1_paper" in set(table["measure"]):
        lines += [f"DE F1{f' ({d})' if several else ''}: {b}" for d, b in basis.items() if d in set(table["dataset"])]
    not_run = sorted(set(table.loc[table["status"] == NOT_RUN, "method"]) - set(roles))
    if not_run:
        lines.append(f"{NOT_RUN}: {', '.join(not_run)} (published only)")
    lines += [f"Published: {s}" for s in dict.fromkeys(paper["source"]) if s]
    fig.text(0.01, 0, "\n".join(lines), fontsize=7, color="0.2", va="top", ha="left")
