"""Where does each method break? Each method's score against the swept simulation parameter,
mean over seeds with its 95 % t-interval as a band, per aspect (rows) and base dataset
(columns). Drawn from the aggregate tables only (``results/aggregate/``, rule ``aggregate``);
without a sweep, one point per method with its interval."""

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from workflow_scripts.report.figures.common import CONTROL_COLOUR, FAILED, LABELS, failure, read_table, style

ASPECTS = ("scIB overall", "mixing", "biology kept", "distance to the truth (MSE)")  # rows, those present


def sweep_positions(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """x of each sweep value (the value itself where every value is a number, else its
    position) and the tick labels, in the config's order."""
    labels = list(dict.fromkeys(values.astype(str)))
    try:
        numbers = [float(json.loads(v)) for v in labels]
    except (ValueError, TypeError):
        numbers = None
    return (np.array(numbers) if numbers else np.arange(len(labels), dtype=float)), labels


def _failures(scib: pd.DataFrame) -> dict[str, str]:
    """{method: 'reason (on dataset, value)'} of the methods that failed in some seed."""
    failed = scib[scib["status"].str.startswith(FAILED)].drop_duplicates(["method", "base_dataset", "sweep_value"])
    reasons = {}
    for row in failed.itertuples():
        where = f" on {row.base_dataset}" + (f", {row.sweep_parameter}={row.sweep_value}" if row.sweep_value != "" else "")
        reasons.setdefault(row.method, []).append(failure(row.status) + where)
    return {m: "; ".join(r) for m, r in reasons.items()}


def _label(method: str, group: str, failed: str) -> str:
    text = method + (f" {LABELS}" if group == "uses labels" else "") + (" (control)" if group == "control" else "")
    return text + (f"\n{FAILED}: {failed}" if failed else "")


def draw(aspects: str, scib: str):
    """``aspects``: ``results/aggregate/aspects.csv``; ``scib``: ``results/aggregate/scib.csv``
    (which methods failed, and where)."""
    table = read_table(aspects).fillna({"sweep_value": "", "sweep_parameter": ""})
    table["sweep_value"] = table["sweep_value"].astype(str)
    scib_table = read_table(scib).fillna({"sweep_value": "", "sweep_parameter": ""})
    scib_table["sweep_value"] = scib_table["sweep_value"].astype(str)
    failed = _failures(scib_table)
    rows = [a for a in ASPECTS if a in set(table["aspect"])]
    table = table[table["aspect"].isin(rows)]
    bases = list(dict.fromkeys(table["base_dataset"]))
    x_all, ticks = sweep_positions(table["sweep_value"])
    x_of = dict(zip(ticks, x_all, strict=True))
    parameter = next((p for p in table["sweep_parameter"] if p), "")
    groups = table[["method", "group"]].drop_duplicates("method")
    order = pd.concat([groups[groups["group"] != "control"], groups[groups["group"] == "control"]])
    styles = {m: style(i) for i, m in enumerate(order["method"])}
    fig, axes = plt.subplots(
        max(len(rows), 1), max(len(bases), 1), figsize=(3.6 * max(len(bases), 1) + 2, 2.8 * max(len(rows), 1)), squeeze=False
    )
    for r, aspect in enumerate(rows):
        for c, base in enumerate(bases):
            ax = axes[r, c]
            panel = table[(table["aspect"] == aspect) & (table["base_dataset"] == base)]
            for method, part in panel.groupby("method", sort=False):
                part = part.assign(x=part["sweep_value"].map(x_of)).sort_values("x")
                control = part["group"].iloc[0] == "control"
                look = dict(styles[method], color=CONTROL_COLOUR if control else styles[method]["color"])
                ax.plot(part["x"], part["mean"], linestyle="--" if control else "-", markersize=4, linewidth=1, **look)
                if len(part) > 1:
                    ax.fill_between(part["x"], part["ci_low"], part["ci_high"], color=look["color"], alpha=0.15, linewidth=0)
                else:
                    err = np.abs(part[["ci_low", "ci_high"]].to_numpy().T - part["mean"].to_numpy())
                    ax.errorbar(part["x"], part["mean"], yerr=err, color=look["color"], capsize=3, linestyle="none")
            better = "higher" if panel["higher_is_better"].all() else "lower"
            ax.set_title(f"{base}" if r == 0 else "", fontsize=10)
            ax.set_xticks(x_all, ticks if parameter else ["(no sweep)"] * len(ticks), fontsize=7, rotation=30)
            ax.set_xlabel(parameter if r == len(rows) - 1 else "", fontsize=8)
            ax.grid(color="0.92")
            if c == 0:
                ax.set_ylabel(f"{aspect}\n({better} is better)", fontsize=8)
    handles = [
        Line2D([], [], linestyle="--" if g == "control" else "-", label=_label(m, g, failed.get(m, "")),
               **dict(styles[m], color=CONTROL_COLOUR if g == "control" else styles[m]["color"]))
        for m, g in zip(order["method"], order["group"], strict=True)
    ]  # fmt: skip
    handles += [Line2D([], [], linestyle="none", label=_label(m, "", why)) for m, why in failed.items() if m not in styles]
    n_seeds = int(table["n_seeds"].max()) if len(table) else 0
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.97), fontsize=7, title="methods")
    fig.suptitle(f"Scores against {parameter or 'seed'}: mean over {n_seeds} seeds, band: 95 % t-interval", x=0.01, ha="left")
    fig.tight_layout()
    return fig
