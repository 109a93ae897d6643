"""The verdict that opens the report: which method wins what, among the methods given the
cell-type labels and among the label-free ones, with the controls as floor and ceiling.

Drawn from the summary score tables only (rule ``verdict`` -> ``results/verdict.csv``). Each
aspect is one score, averaged over the datasets that have it; a method's scIB scores are those of
its best representation by overall score on each dataset (its embedding or the PCA of its
corrected values), as the score tables rank them.

With replicates (config ``seeds``, more than one), each method's score is the mean over seeds of
its per-seed value (itself the mean over that seed's datasets), with a 95 % t-interval; the best
of each group is compared with every other method of the group by a paired t-test over seeds
(:mod:`workflow_scripts.score.intervals`), and p >= 0.05 means the two are not distinguishable.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from workflow_scripts.names import CONTROL_GROUP, EXPLANATION, GROUPS, OK
from workflow_scripts.score.intervals import paired_p, t_interval

COLUMNS = ["aspect", "score", "higher_is_better", "group", "rank", "method", "value", "n_values"]
SEED_COLUMNS = ["ci_low", "ci_high", "n_seeds", "p_vs_best"]  # over seeds: NaN (n_seeds 1) without replicates


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
    Aspect("explanations of batch and covariates (AUPRC)", "explain", "auprc"),
)


def _best_representation(scib: pd.DataFrame) -> pd.DataFrame:
    """Raw totals of each (dataset, method) at its representation with the best overall score."""
    totals = scib[(scib["category"] == "total") & (scib["scaling"] == "raw") & (scib["status"] == OK)]
    overall = totals[totals["metric"] == "overall"].dropna(subset=["value"])
    best = overall.loc[overall.groupby(["dataset", "method"])["value"].idxmax(), ["dataset", "method", "representation"]]
    return totals.merge(best, on=["dataset", "method", "representation"])


def aspect_entries(aspect: Aspect, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """(dataset, name, group, value) of every method and control that has this score."""
    table = _best_representation(tables["scib"]) if aspect.table == "scib" else tables[aspect.table]
    rows = table[(table["metric"] == aspect.metric) & (table["status"] == OK)]
    if aspect.category is not None:
        rows = rows[rows["category"] == aspect.category]
    if aspect.representation is not None:
        rows = rows[rows["representation"] == aspect.representation]
    if aspect.table == "explain":  # cell types: the DE aspect (GENEX translates batch and covariates only)
        rows = rows[rows["category"] != "cell_type"]
    rows = rows.dropna(subset=["value"])
    name = rows["method"]
    if aspect.table == "truth" and aspect.category is not None:  # DE: a raw-count workflow is a method of its own
        name = name.where(rows["representation"] == "wilcoxon", rows["representation"] + " (raw counts)")
    if aspect.table == "explain":  # explanation methods, every covariate and scope: one group
        group = np.where(rows["role"] == "control", CONTROL_GROUP, EXPLANATION)
    else:
        group = np.where(rows["role"] == "control", CONTROL_GROUP, rows["uses_labels"].astype(bool).map(GROUPS))
    return pd.DataFrame({"dataset": rows["dataset"], "name": name, "group": group, "value": rows["value"]})


def verdict(scib: pd.DataFrame, truth: pd.DataFrame, explain: pd.DataFrame, seeds: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (aspect, group, method): its mean score (over datasets; for explanations over
    every dataset, covariate and scope), how many values that mean has, and its rank within its
    group (controls unranked); the explanation methods form one group of their own.

    ``seeds`` (columns ``dataset``, ``seed``: each concrete dataset's replicate) makes the score
    the mean over seeds of each seed's mean, with its 95 % t-interval (``ci_low``, ``ci_high``)
    and the paired t-test p against the group's best (``p_vs_best``)."""
    tables = {"scib": scib, "truth": truth, "explain": explain}
    out = []
    for aspect in ASPECTS:
        entries = aspect_entries(aspect, tables)
        if entries.empty:
            continue
        seed_of = dict(zip(seeds["dataset"], seeds["seed"], strict=True)) if seeds is not None else {}
        entries = entries.assign(seed=entries["dataset"].map(seed_of).fillna(-1))
        per_seed = entries.groupby(["group", "name", "seed"], sort=False)["value"].agg(["mean", "count"]).reset_index()
        for (group, name), rows in per_seed.groupby(["group", "name"], sort=False):
            mean, _, low, high = t_interval(rows["mean"])
            out.append((aspect, group, name, mean, rows["count"].sum(), low, high, len(rows), rows.set_index("seed")["mean"]))
    table = pd.DataFrame(out, columns=["aspect", "group", "method", "value", "n_values", *SEED_COLUMNS[:3], "by_seed"])
    return _rank(table)


def _rank(table: pd.DataFrame) -> pd.DataFrame:
    """Rank within each (aspect, group), best first (controls unranked), and the paired p of
    each method against the best over their shared seeds."""
    rows = []
    for (aspect, group), part in table.groupby(["aspect", "group"], sort=False):
        part = part.sort_values("value", ascending=not aspect.higher_is_better)
        ranked = group != CONTROL_GROUP
        best = part["by_seed"].iloc[0]
        for rank, row in enumerate(part.itertuples(), start=1):
            shared = best.index.intersection(row.by_seed.index)
            p = paired_p(row.by_seed[shared], best[shared]) if ranked and rank > 1 else np.nan
            rows.append(
                (aspect.name, aspect.metric, aspect.higher_is_better, group, rank if ranked else np.nan, row.method,
                 row.value, row.n_values, row.ci_low, row.ci_high, row.n_seeds, p)
            )  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS + SEED_COLUMNS)


if __name__ == "__main__":
    from workflow_scripts.rule_log import log_to_file
    from workflow_scripts.score.table import read_score_table, write_table

    smk = snakemake  # noqa: F821 (injected by Snakemake's script: directive)
    with log_to_file(smk.log[0]):
        inputs = {name: read_score_table(getattr(smk.input, name)) for name in ("scib", "truth", "explain")}
        write_table(verdict(**inputs, seeds=pd.DataFrame(smk.params.replicates)), smk.output[0])
