"""DE rankings and calls of every method and workflow scored against the simulated DE genes.

Truth, from the simulator's gene factors in ``var`` (a gene is DE when its factor differs):

- cell type ``a`` against ``b``: ``de_factor_a != de_factor_b``, or a cell-type-specific
  covariate effect differs (``<cov>_factor_L__a != <cov>_factor_L__b``: the types differ in
  the cells of level ``L``; batch factors are technical and never count); ``a`` against the
  rest: it differs so from any other cell type;
- covariate level ``L`` against the reference within cell type ``t``: ``<cov>_factor_L__t``
  (a cell-type-specific effect) or ``<cov>_factor_L`` (a global one) differs from the
  reference level's.

Metrics per comparison, then the mean over the comparisons of a category
(``cell_type_vs_rest``, ``cell_type_pair``, ``covariate:<name>``), with
``representation`` = the DE workflow (:mod:`workflow_scripts.analyse.de`):

``auroc``, ``auprc``
    threshold-free, of ``score`` against the true genes (sklearn).
``f1``
    of the workflow's own significance calls (both directions).
``f1_paper``
    the GENEX paper's protocol (Wilcoxon, cell type vs rest, up-regulated genes only).
``false_discoveries``
    significant genes that are not DE, per comparison. On a covariate without simulated
    effect (a null) every call is false and the ranking metrics are undefined (NaN, noted).

A dataset without simulated factors gets NaN rows saying so, never zeros. A workflow that
needs raw counts (``scvi_de``) on a ``counts: false`` dataset gets NaN rows with status
``skipped: needs raw counts``.
"""

from collections.abc import Mapping
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from genex_core._atomic import replace_atomically
from workflow_scripts.analyse.de import GENE_COLUMNS, Comparison, run_workflow
from workflow_scripts.contract import NeedsRawCounts
from workflow_scripts.names import COLUMNS, DATASET_UNS, NEEDS_COUNTS, NO_DE_TRUTH, NULL, OK, REST
from workflow_scripts.registry import EXPRESSION_METHODS
from workflow_scripts.rule_log import log_to_file
from workflow_scripts.score.table import read_failures, read_score_table, score_dataset, write_table

KEYS = ["covariate", "level", "reference", "cell_type"]
METRICS = ("auroc", "auprc", "f1", "f1_paper", "false_discoveries")


def _type_factors(var: pd.DataFrame, cell_type: str, effects: list[str]) -> np.ndarray:
    """Genes x (DE factor, one per cell-type-specific covariate effect) of one cell type; an
    effect without a column for this type is 1 (none)."""
    columns = [f"de_factor_{cell_type}", *(f"{effect}__{cell_type}" for effect in effects)]
    return np.column_stack([var[c].to_numpy() if c in var.columns else np.ones(len(var)) for c in columns])


def true_genes(var: pd.DataFrame, comp: Comparison, label_key: str) -> np.ndarray | None:
    """Boolean per gene: DE in this comparison by the simulation; None without factors."""
    if comp.covariate == label_key:
        types = [c.removeprefix("de_factor_") for c in var.columns if c.startswith("de_factor_")]
        others = [t for t in types if t != comp.level] if comp.reference == REST else [comp.reference]
        if comp.level not in types or not others or not set(others) <= set(types):
            return None
        effects = sorted(
            {c.rsplit("__", 1)[0] for c in var.columns if "_factor_" in c and "__" in c and not c.startswith("batch_factor_")}
        )
        first = _type_factors(var, comp.level, effects)
        return np.any([(first != _type_factors(var, t, effects)).any(axis=1) for t in others], axis=0)

    def column(level):
        specific = f"{comp.covariate}_factor_{level}__{comp.cell_type}"
        return specific if specific in var.columns else f"{comp.covariate}_factor_{level}"

    first, second = column(comp.level), column(comp.reference)
    return (var[first] != var[second]).to_numpy() if {first, second} <= set(var.columns) else None


def add_truth(genes: pd.DataFrame, var: pd.DataFrame, label_key: str) -> pd.DataFrame:
    """``genes`` (a :mod:`workflow_scripts.analyse.de` table) with ``is_true`` per row (NaN without truth)."""
    is_true = np.full(len(genes), np.nan)
    for key, rows in genes.groupby(KEYS, sort=False).indices.items():
        truth = true_genes(var, Comparison(*key), label_key)
        if truth is not None:
            is_true[rows] = pd.Series(truth, index=var.index.astype(str)).reindex(genes["gene"].iloc[rows]).to_numpy()
    return genes.assign(is_true=is_true)


def category(comp_covariate: str, reference: str, label_key: str) -> str:
    if comp_covariate != label_key:
        return f"covariate:{comp_covariate}"
    return "cell_type_vs_rest" if reference == REST else "cell_type_pair"


def _comparison_metrics(rows: pd.DataFrame) -> dict[str, float]:
    truth = rows["is_true"].to_numpy()
    if np.isnan(truth).any():
        return dict.fromkeys(METRICS, np.nan)
    truth = truth.astype(bool)
    called = rows["significant"].to_numpy(dtype=bool)
    values = dict.fromkeys(METRICS, np.nan)
    values["false_discoveries"] = float((called & ~truth).sum())
    if truth.any() and not truth.all():
        values["auroc"] = roc_auc_score(truth, rows["score"])
        values["auprc"] = average_precision_score(truth, rows["score"])
        values["f1"] = f1_score(truth, called)
        paper = rows["significant_paper"].to_numpy()
        if not np.isnan(paper).any():
            values["f1_paper"] = f1_score(truth, paper.astype(bool))
    return values


def de_scores(genes: pd.DataFrame, label_key: str) -> pd.DataFrame:
    """The score table (``COLUMNS``) of a gene table with ``is_true``: per category and metric,
    the mean over its comparisons where the metric is defined (the note says how many)."""
    if genes.empty:
        return pd.DataFrame(columns=COLUMNS)
    dataset, method, workflow = genes[["dataset", "method", "workflow"]].iloc[0]
    per_comparison = []
    for key, rows in genes.groupby(KEYS, sort=False):
        per_comparison.append({"category": category(key[0], key[2], label_key), **_comparison_metrics(rows)})
    per_comparison = pd.DataFrame(per_comparison)
    no_truth = genes["is_true"].isna().all()
    rows = []
    for cat, table in per_comparison.groupby("category", sort=False):
        null = not no_truth and all(table[m].isna().all() for m in ("auroc", "auprc"))
        for metric in METRICS:
            defined = table[metric].dropna()
            if metric == "f1_paper" and (workflow != "wilcoxon" or cat != "cell_type_vs_rest"):
                continue
            if defined.empty:
                note = NO_DE_TRUTH if no_truth else NULL if null else "not applicable"
                rows.append((dataset, method, workflow, cat, metric, "raw", np.nan, note, OK))
            else:
                note = f"mean of {defined.size} of {len(table)} comparisons"
                rows.append((dataset, method, workflow, cat, metric, "raw", float(defined.mean()), note, OK))
    return pd.DataFrame(rows, columns=COLUMNS)


def status_of(reason: str) -> str:
    """A failure record's reason as a table status: ``failed: <reason>``, except a skip
    (``skipped: ...``, e.g. a method that needs raw counts), which is shown as it is."""
    return reason if reason.startswith("skipped") else f"failed: {reason}"


def skipped_rows(dataset: str, method: str, workflow: str, status: str, note: str = "") -> pd.DataFrame:
    """NaN rows, one per metric, of a workflow that did not run (``status`` says why)."""
    return pd.DataFrame(
        [(dataset, method, workflow, "all", metric, "raw", np.nan, note, status) for metric in METRICS], columns=COLUMNS
    )


def missing_rows(dataset: str, statuses: Mapping[str, str]) -> pd.DataFrame:
    """NaN rows for expression methods that did not run, each with its status ("failed:
    <reason>" or "skipped: <why>"), so they stay in the DE table."""
    rows = [
        (dataset, method, "wilcoxon", "all", metric, "raw", np.nan, "", status)
        for method, status in statuses.items()
        if method in EXPRESSION_METHODS
        for metric in METRICS
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def de_to_csv(
    workflow: str,
    data_path,
    integrated_path,
    genes_csv,
    scores_csv,
    *,
    seed: int = 0,
    threads: int = 1,
    params: dict | None = None,
) -> pd.DataFrame:
    """Rule entry point: run one DE workflow, write its per-gene table (with ``is_true``) and
    its scores against the truth. A workflow that needs raw counts on a ``counts: false``
    dataset writes an empty gene table and ``skipped: needs raw counts`` rows."""
    data = ad.read_h5ad(data_path)
    integrated = ad.read_h5ad(integrated_path) if integrated_path else None
    label_key = data.uns[DATASET_UNS]["label_key"]
    try:
        genes = add_truth(
            run_workflow(workflow, data, integrated, seed=seed, threads=threads, **(params or {})), data.var, label_key
        )
        scores = de_scores(genes, label_key)
    except NeedsRawCounts as skip:
        print(skip, flush=True)
        genes = pd.DataFrame(columns=[*GENE_COLUMNS, "is_true"])
        scores = skipped_rows(
            data.uns[DATASET_UNS]["name"], "unintegrated", workflow, NEEDS_COUNTS, "the dataset declares counts: false"
        )
    for path, table in ((genes_csv, genes), (scores_csv, scores)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
    return scores


def score_de_rule(smk) -> None:
    """Rule ``score_de``: Wilcoxon on every method's corrected values of one dataset, in one
    process, its per-gene tables (``output.genes``) and scores, with the raw-count workflows'
    scores (``input.raw``) -> ``output.scores``. Raw-count workflows are rivals of DE on
    corrected values, so their rows have role ``method`` even though they test unintegrated data."""
    genes = []

    def score_one(data, integrated, dataset, method):
        label_key = data.uns[DATASET_UNS]["label_key"]
        table = add_truth(run_workflow("wilcoxon", data, integrated), data.var, label_key)
        genes.append(table)
        return de_scores(table, label_key)

    def with_raw(table):
        return pd.concat([table, *(read_score_table(p) for p in smk.input.raw)], ignore_index=True)

    with log_to_file(smk.log[0]):
        statuses = {m: f"failed: {reason}" for m, reason in read_failures(smk.input.failures).items()}
        statuses.update(smk.params.skipped)
        table = score_dataset(smk.input.data, smk.input.integrated, statuses, score_one, missing_rows, finish=with_raw)
        table.loc[table["representation"] != "wilcoxon", ["role", "uses_labels"]] = ["method", False]
        gene_table = pd.concat(genes, ignore_index=True) if genes else pd.DataFrame(columns=[*GENE_COLUMNS, "is_true"])
        replace_atomically(lambda tmp: gene_table.to_csv(tmp, index=False, compression="gzip"), smk.output.genes)
        write_table(table, smk.output.scores)


if __name__ == "__main__":
    smk = snakemake  # noqa: F821 (injected by Snakemake's script: directive)
    if smk.rule == "score_de":
        score_de_rule(smk)
    else:
        with log_to_file(smk.log[0]):
            de_to_csv(
                smk.params.workflow, smk.input.data, None, smk.output.genes, smk.output.scores,
                seed=smk.params.seed, threads=smk.threads, params=smk.params.params,
            )  # fmt: skip
