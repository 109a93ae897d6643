"""The verdict that opens the report: which method wins what, among the methods given the
cell-type labels and among the label-free ones, with the controls as floor and ceiling.

Drawn from the summary score tables only (rule ``verdict`` -> ``results/verdict.csv``). Each
aspect is one score, averaged over the datasets that have it; a method's scIB scores are those of
its best representation by overall score on each dataset (its embedding or the PCA of its
corrected values), as the score tables rank them.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

COLUMNS = ["aspect", "score", "higher_is_better", "group", "rank", "method", "value", "n_values"]
GROUPS = {True: "uses labels", False: "label-free"}
EXPLANATION = "explanation"
CONTROL_GROUP = "control"


@dataclass(frozen=True)
class Aspect:
    name: str
    table: str  # scib, truth or explain
    metric: str
    higher_is_better: bool = True
    category: str | None = None  # the rows' category, where the metric has several
    representation: str | None = None


ASPECTS = (
    Aspect("mixing", "scib", "batch_score"),
    Aspect("biology kept", "scib", "bio_score"),
    Aspect("scIB overall", "scib", "overall"),
    Aspect("distance to the truth (MSE)", "truth", "mse", higher_is_better=False, representation="corrected"),
    Aspect("DE between cell types (AUPRC)", "truth", "auprc", category="cell_type_pair"),
    Aspect(
        "false DE calls per covariate comparison",
        "truth",
        "false_discoveries",
        higher_is_better=False,
        category="covariate:condition",
    ),
    Aspect("explanations (AUPRC)", "explain", "auprc"),
)


def _best_representation(scib: pd.DataFrame) -> pd.DataFrame:
    """Raw totals of each (dataset, method) at its representation with the best overall score."""
    totals = scib[(scib["category"] == "total") & (scib["scaling"] == "raw") & (scib["status"] == "ok")]
    overall = totals[totals["metric"] == "overall"].dropna(subset=["value"])
    best = overall.loc[overall.groupby(["dataset", "method"])["value"].idxmax(), ["dataset", "method", "representation"]]
    return totals.merge(best, on=["dataset", "method", "representation"])


def _entries(aspect: Aspect, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """(dataset, name, group, value) of every method and control that has this score."""
    table = _best_representation(tables["scib"]) if aspect.table == "scib" else tables[aspect.table]
    rows = table[(table["metric"] == aspect.metric) & (table["status"] == "ok")]
    if aspect.category is not None:
        rows = rows[rows["category"] == aspect.category]
    if aspect.representation is not None:
        rows = rows[rows["representation"] == aspect.representation]
    rows = rows.dropna(subset=["value"])
    name = rows["method"]
    if aspect.table == "truth" and aspect.category is not None:  # DE: a raw-count workflow is a method of its own
        name = name.where(rows["representation"] == "wilcoxon", rows["representation"] + " (raw counts)")
    if aspect.table == "explain":  # explanation methods, every covariate and scope: one group
        group = np.where(rows["role"] == "control", CONTROL_GROUP, EXPLANATION)
    else:
        group = np.where(rows["role"] == "control", CONTROL_GROUP, rows["uses_labels"].astype(bool).map(GROUPS))
    return pd.DataFrame({"dataset": rows["dataset"], "name": name, "group": group, "value": rows["value"]})


def verdict(scib: pd.DataFrame, truth: pd.DataFrame, explain: pd.DataFrame) -> pd.DataFrame:
    """One row per (aspect, group, method): its mean score (over datasets; for explanations over
    every dataset, covariate and scope), how many values that mean has, and its rank within its
    group (controls unranked); the explanation methods form one group of their own."""
    tables = {"scib": scib, "truth": truth, "explain": explain}
    out = []
    for aspect in ASPECTS:
        entries = _entries(aspect, tables)
        if entries.empty:
            continue
        means = entries.groupby(["group", "name"], sort=False)["value"].agg(["mean", "count"]).reset_index()
        for group, rows in means.groupby("group", sort=False):
            rows = rows.sort_values("mean", ascending=not aspect.higher_is_better)
            ranks = np.arange(1, len(rows) + 1) if group != CONTROL_GROUP else [np.nan] * len(rows)
            for rank, row in zip(ranks, rows.itertuples(), strict=False):
                out.append((aspect.name, aspect.metric, aspect.higher_is_better, group, rank, row.name, row.mean, row.count))
    return pd.DataFrame(out, columns=COLUMNS)


def headline(table: pd.DataFrame) -> pd.DataFrame:
    """The verdict on one screen: per aspect, the winner of each group and the controls' values."""
    rows = []
    for aspect, part in table.groupby("aspect", sort=False):
        row = {"aspect": aspect, "better": "higher" if part["higher_is_better"].iloc[0] else "lower"}
        for group in (*GROUPS.values(), EXPLANATION):
            top = part[(part["group"] == group) & (part["rank"] == 1)]
            if not top.empty:
                row[f"best, {group}"] = f"{top['method'].iloc[0]} ({top['value'].iloc[0]:.3f})"
        controls = part[part["group"] == CONTROL_GROUP]
        row["controls"] = ", ".join(f"{m} {v:.3f}" for m, v in zip(controls["method"], controls["value"], strict=False))
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


if __name__ == "__main__":
    from workflow_scripts.rule_log import log_to_file
    from workflow_scripts.score_table import read_score_table, write_table

    smk = snakemake  # noqa: F821 (injected by Snakemake's script: directive)
    with log_to_file(smk.log[0]):
        inputs = {name: read_score_table(getattr(smk.input, name)) for name in ("scib", "truth", "explain")}
        write_table(verdict(**inputs), smk.output[0])
