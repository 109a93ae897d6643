"""What the explanation figure (``explain_genes``) shows of one dataset, computed here so the
figure only draws; the comparisons are those :mod:`workflow_scripts.score.explain` scores, on
all cells (``overall``).

``explain_topk.csv``
    every method's precision among its top k genes (k = 1..:data:`MAX_K`) per covariate, the
    mean over the covariate's levels that have true and false genes (where precision means
    something). A covariate without such a level gets one row without method saying why
    (``note``: no truth, a null, or not applicable).
``explain_top_genes.csv``
    GENEX's top :data:`TOP_GENES` genes per covariate level, each marked ``is_true`` against
    the simulated truth (NaN without truth), with ``n_true`` (the level's number of true genes).
"""

from collections.abc import Iterable

import anndata as ad
import numpy as np
import pandas as pd

from workflow_scripts.names import ALL_CELLS, EXPLAIN_KEYS, NO_EXPLAIN_TRUTH, NULL
from workflow_scripts.registry import GENEX
from workflow_scripts.score.explain_truth import Truth

MAX_K = 100  # the longest top list
TOP_GENES = 15  # GENEX's top genes per level
NO_CURVE = "not applicable: no ranking with true and false genes"
TOPK_COLUMNS = ["dataset", "method", "covariate", "category", "k", "precision", "n_comparisons", "note"]
GENES_COLUMNS = ["dataset", "method", "covariate", "level", "rank", "gene", "score", "is_true", "n_true"]


def ranked_comparisons(table: pd.DataFrame, truth: Truth) -> list[tuple]:
    """The overall comparisons of one method's table that ``explain_scores`` scores: (covariate,
    level, rows in its ranking order, their truth or None without simulated factors)."""
    index = pd.Index(truth.var.index.astype(str))
    out = []
    for (covariate, level, cell_type), rows in table.groupby(EXPLAIN_KEYS, sort=False):
        if cell_type == ALL_CELLS and truth.scored(covariate, level, cell_type):
            rows = rows.iloc[np.argsort(-rows["score"].to_numpy(float), kind="stable")]
            genes = truth.genes(covariate, level, cell_type)
            out.append((covariate, level, rows, None if genes is None else genes[index.get_indexer(rows["gene"])]))
    return out


def precision_at_k(genes: np.ndarray, max_k: int = MAX_K) -> np.ndarray:
    """Share of true genes among the top k of a ranking's truth marks, k = 1..min(max_k, genes)."""
    k = np.arange(1, min(max_k, genes.size) + 1)
    return np.cumsum(genes[: k.size]) / k


def no_curve_note(truth: Truth, covariate: str) -> str:
    """Why a covariate has no precision curve, in ``explain_scores``' words."""
    levels = [level for level in truth.levels[covariate] if truth.scored(covariate, level, ALL_CELLS)]
    genes = [g for g in (truth.genes(covariate, level, ALL_CELLS) for level in levels) if g is not None]
    if not genes:
        return NO_EXPLAIN_TRUTH
    return NULL if not any(g.any() for g in genes) else NO_CURVE


def topk_table(tables: dict[str, pd.DataFrame], truth: Truth, dataset: str) -> pd.DataFrame:
    """:data:`TOPK_COLUMNS`: per covariate (batch, cell type, covariates) and method (in
    ``tables``' order), the mean precision among the top k over the covariate's levels."""
    runs = {}
    for method, table in tables.items():
        for covariate, _, _, genes in ranked_comparisons(table, truth):
            if genes is not None and 0 < genes.sum() < genes.size:
                runs.setdefault(covariate, {}).setdefault(method, []).append(precision_at_k(genes))
    rows = []
    for covariate in [truth.batch_key, truth.label_key, *truth.covariates]:
        category = truth.category(covariate)
        if covariate not in runs:
            rows.append((dataset, "", covariate, category, np.nan, np.nan, 0, no_curve_note(truth, covariate)))
            continue
        for method, curves in runs[covariate].items():
            curve = np.mean(curves, axis=0)
            rows += [(dataset, method, covariate, category, k + 1, p, len(curves), "") for k, p in enumerate(curve)]
    return pd.DataFrame(rows, columns=TOPK_COLUMNS).astype({"k": "Int64"})


def top_genes_table(table: pd.DataFrame | None, truth: Truth, dataset: str) -> pd.DataFrame:
    """:data:`GENES_COLUMNS`: GENEX's top genes per overall comparison, marked against the truth."""
    parts = []
    for covariate, level, rows, genes in ranked_comparisons(table, truth) if table is not None else []:
        top = rows.iloc[:TOP_GENES]
        parts.append(
            pd.DataFrame(
                {
                    "dataset": dataset,
                    "method": GENEX,
                    "covariate": covariate,
                    "level": level,
                    "rank": np.arange(1, len(top) + 1),
                    "gene": top["gene"].to_numpy(),
                    "score": top["score"].to_numpy(float),
                    "is_true": np.nan if genes is None else genes[: len(top)].astype(float),
                    "n_true": np.nan if genes is None else float(genes.sum()),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)[GENES_COLUMNS] if parts else pd.DataFrame(columns=GENES_COLUMNS)


def explain_topk(data_path, tables: Iterable, topk_csv, genes_csv) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rule entry point: the explanation tables of one dataset (empty ones, of methods that did
    not run, left out) -> ``topk_csv`` and ``genes_csv``, each written whole or not at all."""
    from workflow_scripts.names import DATASET_UNS
    from workflow_scripts.score.table import write_table

    data = ad.read_h5ad(data_path)
    truth, dataset = Truth(data), data.uns[DATASET_UNS]["name"]
    read = (pd.read_csv(p, dtype={k: str for k in EXPLAIN_KEYS}) for p in tables)
    explained = {t["method"].iloc[0]: t for t in read if not t.empty}
    topk, genes = topk_table(explained, truth, dataset), top_genes_table(explained.get(GENEX), truth, dataset)
    write_table(topk, topk_csv)
    write_table(genes, genes_csv)
    return topk, genes


if __name__ == "__main__":
    from workflow_scripts.rule_log import log_to_file

    smk = snakemake  # noqa: F821 (injected by Snakemake's script: directive)
    with log_to_file(smk.log[0]):
        explain_topk(smk.input.data, smk.input.tables, smk.output.topk, smk.output.genes)
