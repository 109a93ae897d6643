"""What every figure shares: reading the score tables, labels that mark controls and failures,
a colour-blind palette with a marker per colour (readable in greyscale), a dot panel, and saving.
"""

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from workflow_scripts.names import OK

# Okabe & Ito's colour-blind palette, grey for its black (which hides hatches and marker edges)
# and its yellow (faint on white) last; each colour also gets its own marker and hatch.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#888888", "#F0E442"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
HATCHES = ["", "//", "..", "xx", "\\\\", "oo", "--", "++"]
CONTROL_COLOUR = "0.4"
FAILED = "failed"
LABELS = "[labels]"  # marks a method given the cell-type labels: compare it with label-using methods


def style(i: int) -> dict:
    """Colour and marker of the i-th series."""
    return dict(color=PALETTE[i % len(PALETTE)], marker=MARKERS[i % len(MARKERS)])


def read_table(path: str | Path) -> pd.DataFrame:
    """A tidy score table; empty notes and statuses as empty strings, only ``value`` NaN."""
    return pd.read_csv(path).fillna({"note": "", "status": ""})


def failure(status: str) -> str:
    """The reason of a ``failed: <reason>`` status, or '' for ``ok``."""
    return status.removeprefix(f"{FAILED}: ") if status.startswith(FAILED) else ""


def entries(table: pd.DataFrame, keys: Sequence[str] = ("method", "representation"), order: Sequence[str] = ()) -> pd.DataFrame:
    """One row per distinct ``keys`` of a table, methods first and controls after (in ``order``
    of methods, else table order), with ``role``, ``failed`` (the reason, '' if ok; with the
    dataset when the table holds several) and a display ``label``."""
    keys = list(keys)
    extra = ["uses_labels"] if "uses_labels" in table else []
    rows = table.drop_duplicates(keys)[keys + ["role", *extra]].copy()
    several = table["dataset"].nunique() > 1
    reasons = {}
    for row in table[table["status"].str.startswith(FAILED)].drop_duplicates(keys + ["dataset"]).itertuples():
        where = f" (on {row.dataset})" if several else ""
        reasons.setdefault(tuple(getattr(row, k) for k in keys), []).append(failure(row.status) + where)
    rows["failed"] = ["; ".join(reasons.get(tuple(k), [])) for k in rows[keys].itertuples(index=False)]
    shared = len(keys) == 1 or rows[keys[-1]].nunique() == 1
    rows["label"] = [label(row, keys, shared) for row in rows.itertuples()]
    rank = {m: i for i, m in enumerate(dict.fromkeys([*order, *rows["method"]]))}
    position = list(zip(rows["role"].ne("method"), rows["method"].map(rank), strict=False))
    return rows.iloc[sorted(range(len(rows)), key=position.__getitem__)].reset_index(drop=True)


def label(row, keys: Sequence[str], shared: bool) -> str:
    """'method', 'method (representation)' when representations differ, '[labels]' for a method
    given the cell-type labels, '(control)' for a control and the reason for a failed method: on
    the label itself, so no figure can drop it."""
    text = row.method if shared or row.failed else f"{row.method} ({getattr(row, keys[-1])})"
    if getattr(row, "uses_labels", False) is True:
        text += f" {LABELS}"
    if row.role == "control":
        text += " (control)"
    if row.failed:
        text += f"\n{FAILED}: {row.failed}"
    return text


def mark_controls(labels, roles) -> None:
    """Controls' tick labels in grey italics: they bracket the methods, they are not ranked."""
    for text, role in zip(labels, roles, strict=False):
        if role == "control":
            text.set_fontstyle("italic")
            text.set_color(CONTROL_COLOUR)


def panel_rows(table: pd.DataFrame, dataset: str, metric: str) -> pd.DataFrame:
    """One panel's rows: the metric's values on the dataset, plus every failure row of the
    dataset (whichever metrics its scorer wrote for it), so a failed method shows in each panel."""
    here = table["dataset"] == dataset
    return table[here & ((table["metric"] == metric) | table["status"].str.startswith(FAILED))]


def dot_panel(
    ax,
    table: pd.DataFrame,
    series: Sequence[str],
    ceiling: str | None = "truth",
    keys=("method", "representation"),
    order: Sequence[str] = (),
) -> list[str]:
    """Values of ``table`` (one metric) as dots: entries along x, one colour and marker per
    ``series`` value (column ``series``), a dashed line per series at the ``ceiling`` control's
    value and 'failed' written where a method failed. Returns the notes of the values that are
    not applicable, for the caller to print."""
    found = entries(table, keys, order)
    spread = np.linspace(-0.25, 0.25, len(series)) if len(series) > 1 else [0.0]
    for i, name in enumerate(series):
        rows = table[table["series"] == name]
        if rows.empty:
            continue
        values = [rows.loc[_match(rows, entry, keys), "value"].mean() for entry in found.itertuples()]
        ax.plot(
            np.arange(len(found)) + spread[i],
            values,
            linestyle="none",
            markersize=6,
            markeredgecolor="black",
            markeredgewidth=0.5,
            label=name,
            **style(i),
        )
        top = rows[(rows["method"] == ceiling)]["value"].dropna()
        if ceiling and not top.empty:
            ax.axhline(top.iloc[0], color=PALETTE[i % len(PALETTE)], linestyle="--", linewidth=0.8, zorder=0)
    for x, entry in enumerate(found.itertuples()):
        if entry.failed:
            ax.text(x, 0.5, FAILED, transform=ax.get_xaxis_transform(), rotation=90, ha="center", va="center", color="#D55E00")
    ax.set_xticks(range(len(found)), found["label"], rotation=60, ha="right", fontsize=7)
    mark_controls(ax.get_xticklabels(), found["role"])
    ax.set_xlim(-0.6, len(found) - 0.4)
    ax.grid(axis="y", color="0.9")
    missing = table[table["value"].isna() & table["status"].eq(OK) & table["note"].ne("")]
    return sorted({f"{s}: {n}" for s, n in zip(missing["series"], missing["note"], strict=False)})


def series_legend(fig, series: Sequence[str], title: str) -> None:
    """One legend for the whole figure: the series' markers as :func:`dot_panel` draws them."""
    handles = [
        Line2D([], [], linestyle="none", markeredgecolor="black", markeredgewidth=0.5, label=name, **style(i))
        for i, name in enumerate(series)
    ]
    fig.legend(handles=handles, title=title, loc="upper left", bbox_to_anchor=(1.0, 0.97), fontsize=8)


def footnote(fig, notes: Sequence[str]) -> None:
    """Notes under the figure, one a line: why some values are missing."""
    if notes:
        fig.text(0.01, 0, "No value — " + "\n".join(dict.fromkeys(notes)), fontsize=7, color="0.3", va="top")


def _match(rows: pd.DataFrame, entry, keys) -> np.ndarray:
    return np.logical_and.reduce([rows[k] == getattr(entry, k) for k in keys])


def message_axes(ax, text: str) -> None:
    """An empty panel that says why it is empty (a failed method, a dataset without truth)."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=8, color="#D55E00")
    ax.set_xticks([])
    ax.set_yticks([])


PNG_DPI = 80  # the report embeds every PNG: at 150 dpi the default run's page weighed 15 MB
PDF_DPI = 150  # the PDFs' rasterized points (scatter plots); everything else stays vector


def save(fig, png: str | Path, pdf: str | Path) -> None:
    """Write the figure as PNG (for the report) and PDF (for papers), then free it."""
    for path, dpi in ((png, PNG_DPI), (pdf, PDF_DPI)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def dot_grid(
    table: pd.DataFrame, rows: dict[str, str], series: Sequence[str], legend: str, title: str, ceiling: str | None = "truth"
):
    """One :func:`dot_panel` per metric (``rows``: metric -> axis label) and dataset (columns),
    score rows on [0, 1], counts (``false_discoveries``) on their own scale."""
    datasets = list(dict.fromkeys(table["dataset"]))
    order = list(dict.fromkeys(table["method"]))
    n_entries = table[["method", "representation"]].drop_duplicates().shape[0]
    fig, axes = plt.subplots(
        len(rows), len(datasets), figsize=(1.5 + 0.5 * n_entries * len(datasets), 3.8 * len(rows)), squeeze=False, sharey="row"
    )
    notes = []
    for r, (metric, name) in enumerate(rows.items()):
        for c, dataset in enumerate(datasets):
            panel = panel_rows(table, dataset, metric)
            notes += [f"{dataset}, {metric}, {n}" for n in dot_panel(axes[r, c], panel, series, ceiling=ceiling, order=order)]
            axes[r, c].set_title(dataset if r == 0 else "", fontsize=10)
        axes[r, 0].set_ylabel(name)
        if metric != "false_discoveries":
            axes[r, 0].set_ylim(-0.02, 1.02)
    series_legend(fig, series, legend)
    fig.suptitle(title, x=0.01, ha="left")
    fig.tight_layout()
    footnote(fig, notes)
    return fig
