"""Precision–recall curves of the DE rankings the DE figure shows (``de_pr_curves``), computed
here so the figure only draws.

The comparisons shown: the first cell type against the rest and, within that cell type, the
first comparison of each covariate (a dataset without a cell type against the rest: the first
comparison of each covariate). Per comparison and method/workflow, the curve points of
sklearn's ``precision_recall_curve`` of ``score`` against ``is_true`` and its
``average_precision`` (sklearn's ``average_precision_score``, the quantity ``auprc`` of
``de.csv`` averages over the comparisons of a category). A comparison without true genes or
without false ones (or without truth) gets one row with NaN: its curve is undefined.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve

from workflow_scripts.names import REST

KEYS = ["covariate", "level", "reference", "cell_type"]
CURVE_COLUMNS = ["dataset", "method", "workflow", *KEYS, "average_precision", "recall", "precision"]


def shown_comparisons(table: pd.DataFrame) -> list[tuple]:
    """The comparisons (``KEYS`` tuples) of one method's per-gene table that the figure shows."""
    vs_rest = table[table["reference"] == REST]
    comparisons, within = [], table[table["reference"] != REST]  # one cell type: covariates only
    if not vs_rest.empty:
        cell_type = vs_rest["level"].iloc[0]
        comparisons = [tuple(vs_rest.loc[vs_rest["level"] == cell_type, KEYS].iloc[0])]
        within = table[table["cell_type"] == cell_type]
    return comparisons + [tuple(row) for row in within.drop_duplicates(["covariate"])[KEYS].itertuples(index=False)]


def curve_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Recall, precision and average precision of one ranking (one NaN row where undefined)."""
    truth = rows["is_true"].to_numpy(dtype=float)
    if np.isnan(truth).any() or not 0 < truth.sum() < truth.size:
        return pd.DataFrame({"average_precision": [np.nan], "recall": [np.nan], "precision": [np.nan]})
    truth = truth.astype(bool)
    precision, recall, _ = precision_recall_curve(truth, rows["score"])
    ap = average_precision_score(truth, rows["score"])
    return pd.DataFrame({"average_precision": ap, "recall": recall, "precision": precision})


def de_curves(genes: list[str | Path]) -> pd.DataFrame:
    """The curve table (:data:`CURVE_COLUMNS`) of one dataset's per-gene DE tables (Wilcoxon on
    every method, then the raw-count workflows), in their order."""
    tables = {}
    for path in genes:  # one table per dataset and workflow, all methods in it
        table = pd.read_csv(path, dtype={k: str for k in KEYS})
        for key, rows in table.groupby(["method", "workflow"], sort=False):
            tables[key] = rows
    if not tables:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    comparisons = shown_comparisons(next(iter(tables.values())))
    parts = []
    for (method, workflow), rows in tables.items():
        for key in comparisons:
            chosen = rows[(rows[KEYS] == pd.Series(key, index=KEYS)).all(axis=1)]
            if chosen.empty:
                continue
            points = curve_rows(chosen)
            parts.append(
                points.assign(
                    dataset=rows["dataset"].iloc[0], method=method, workflow=workflow, **dict(zip(KEYS, key, strict=True))
                )
            )
    return pd.concat(parts, ignore_index=True)[CURVE_COLUMNS] if parts else pd.DataFrame(columns=CURVE_COLUMNS)


def write_curves(table: pd.DataFrame, path: str | Path) -> None:
    """Write the curve table gzipped, whole or not at all (the atomic writer's rules)."""
    from genex_core._atomic import replace_atomically

    replace_atomically(lambda tmp: table.to_csv(tmp, index=False, compression="gzip", float_format="%.6g"), path)


if __name__ == "__main__":
    from workflow_scripts.rule_log import log_to_file

    smk = snakemake  # noqa: F821 (injected by Snakemake's script: directive)
    with log_to_file(smk.log[0]):
        write_curves(de_curves(list(smk.input.genes)), smk.output[0])
