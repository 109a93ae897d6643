"""Explanation accuracy: each method's gene ranking (:mod:`workflow_scripts.analyse.explain`)
scored against the simulated gene effects of each covariate.

Truth, from the simulator's factors in ``var``, per (covariate, level, cell type):

- batch ``b`` against the other batches: every gene has a Splat batch factor (none is exactly
  1), so a gene is tied to ``b`` when its log factor differs from the mean log factor of the
  other batches by at least :data:`BATCH_MIN_LOG_EFFECT` (a 25% change of mean expression).
  Within a cell type the factors are ``batch_factor_<b>__<type>`` where the batch effect
  differs by cell type; overall, the mean over cell types of those log factors (else the
  global ``batch_factor_<b>``);
- cell type ``t`` against the rest: its ``de_factor_t`` differs from another type's
  (:func:`workflow_scripts.score.de.true_genes`);
- level ``L`` of an extra covariate against the reference level: ``<cov>_factor_L[__<type>]``
  differs from the reference's; overall, for an effect simulated per cell type, in any type.
  Rows of the reference level itself (GENEX explains every level) are not scored: for two
  levels they repeat the other level's contrast.

Metrics per comparison, then the mean over the comparisons of a covariate (``category``: the
batch as ``batch``, the cell type as ``cell_type``, extra covariates by name) and
``representation`` (``overall`` or ``per_cell_type``), the note saying over how many:

``auprc``, ``auroc``
    threshold-free, of ``score`` against the true genes.
``precision_at_n_true``, ``precision_at_20``
    share of true genes among the top ``k`` (k = the number of true genes, which is also the
    F1 of the top-k calls; and 20).
``precision``, ``recall``, ``f1``, ``observed_fdr``, ``false_discoveries``
    of the ``significant`` calls, for methods that make them (GENEX and the tests promise
    FDR <= 0.05); ``observed_fdr`` is false calls / max(calls, 1), not applicable to the
    batch, whose truth is a threshold on effects every gene has. ``f1`` of GENEX for cell type
    against the rest is what the GENEX paper reported as "GENEX (xAI)" DE F1 (not computed
    there).

A covariate without any simulated gene effect (a null) has NaN ranking metrics (noted) and
counts its calls, all false; a dataset without simulated factors gets NaN rows saying so. A
method that models raw counts on a ``counts: false`` dataset gets NaN rows with status
``skipped: needs raw counts``.
"""

from collections.abc import Iterable, Mapping
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from workflow_scripts.contract import has_counts
from workflow_scripts.names import ALL_CELLS, COLUMNS, DATASET_UNS, EXPLAIN_KEYS, NEEDS_COUNTS, NO_EXPLAIN_TRUTH, NULL, OK
from workflow_scripts.registry import EXPLAIN_RIVALS, GENEX, explain_needs_counts
from workflow_scripts.score.de import status_of
from workflow_scripts.score.explain_truth import BATCH_MIN_LOG_EFFECT, Truth
from workflow_scripts.score.table import read_score_table

TOP_K = 20
RANKING = ("auprc", "auroc", "precision_at_n_true", f"precision_at_{TOP_K}")
CALLS = ("precision", "recall", "f1", "observed_fdr", "false_discoveries")
NO_NULL_GENES = "not applicable: every gene has a simulated batch effect, none is a true null"
SCORE_COLUMNS = COLUMNS[:2] + ["role"] + COLUMNS[2:]
CONTROL = "random"  # the floor, not ranked among the methods


def comparison_metrics(score: np.ndarray, truth: np.ndarray, significant: np.ndarray | None) -> dict[str, float]:
    """Every metric of one ranking (NaN where undefined: ranking metrics without true genes or
    without false ones, call metrics without calls)."""
    values = dict.fromkeys(RANKING + CALLS, np.nan)
    n_true = int(truth.sum())
    if 0 < n_true < truth.size:
        order = np.argsort(-score, kind="stable")
        values["auprc"] = average_precision_score(truth, score)
        values["auroc"] = roc_auc_score(truth, score)
        values["precision_at_n_true"] = truth[order[:n_true]].mean()
        values[f"precision_at_{TOP_K}"] = truth[order[:TOP_K]].mean()
    if significant is not None:
        called, hits = int(significant.sum()), int((significant & truth).sum())
        values["false_discoveries"] = float(called - hits)
        values["observed_fdr"] = (called - hits) / max(called, 1)
        if called:
            values["precision"] = hits / called
        if n_true:
            values["recall"] = hits / n_true
            values["f1"] = 2 * hits / (called + n_true)
    return values


def explain_scores(table: pd.DataFrame, truth: Truth) -> pd.DataFrame:
    """One method's score table (:data:`SCORE_COLUMNS`): per covariate, representation and
    metric, the mean over the comparisons where the metric is defined."""
    if table.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    dataset, method = table[["dataset", "method"]].iloc[0]
    has_calls = "significant" in table.columns
    gene_index = pd.Index(truth.var.index.astype(str))
    per_comparison = []
    for (covariate, level, cell_type), rows in table.groupby(EXPLAIN_KEYS, sort=False):
        if not truth.scored(covariate, level, cell_type):
            continue
        genes = truth.genes(covariate, level, cell_type)
        group = dict(category=truth.category(covariate), representation="overall" if cell_type == ALL_CELLS else "per_cell_type")
        if genes is None:
            per_comparison.append({**group, "truth": "none", **dict.fromkeys(RANKING + CALLS, np.nan)})
            continue
        genes = genes[gene_index.get_indexer(rows["gene"])]
        significant = rows["significant"].to_numpy(dtype=bool) if has_calls else None
        values = comparison_metrics(rows["score"].to_numpy(float), genes, significant)
        per_comparison.append({**group, "truth": "null" if not genes.any() else "some", **values})
    per_comparison = pd.DataFrame(per_comparison)
    metrics = RANKING + (CALLS if has_calls else ())
    out = []
    for (representation, category), comps in per_comparison.groupby(["representation", "category"], sort=False):
        for metric in metrics:
            no_null_genes = category == "batch" and metric in ("observed_fdr", "false_discoveries")
            defined = pd.Series(dtype=float) if no_null_genes else comps[metric].dropna()
            if defined.empty:
                value = np.nan
                truths = set(comps["truth"])
                if truths == {"none"}:
                    note = NO_EXPLAIN_TRUTH
                else:
                    note = NO_NULL_GENES if no_null_genes else NULL if truths == {"null"} else "not applicable"
            else:
                value = float(defined.mean())
                note = f"mean of {defined.size} of {len(comps)} comparisons"
                if category == "batch":
                    note += f"; truth |log batch effect| >= log {np.exp(BATCH_MIN_LOG_EFFECT):.2f}"
            role = "control" if method == CONTROL else "method"
            out.append((dataset, method, role, representation, category, metric, "raw", value, note, OK))
    return pd.DataFrame(out, columns=SCORE_COLUMNS)


def failure_rows(dataset: str, failures: Mapping[str, str]) -> pd.DataFrame:
    """NaN rows for an explanation method that could not run (GENEX whose training failed;
    a reason ``skipped: ...`` is shown as the status as it is)."""
    rows = [
        (
            dataset,
            method,
            "control" if method == CONTROL else "method",
            "overall",
            "all",
            metric,
            "raw",
            np.nan,
            "",
            status_of(reason),
        )
        for method, reason in failures.items()
        for metric in RANKING
    ]
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def score_explanations(data_path, tables: Iterable, output_csv, failures: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Rule entry point: every method's explanation table of one dataset, scored, in method
    order (GENEX's, then :data:`EXPLAIN_RIVALS`); ``failures``: {method: reason} of those that could
    not run. On a ``counts: false`` dataset the methods that model raw counts (their tables
    are empty, named by the file: ``<method>.csv.gz``) are ``skipped: needs raw counts``."""
    data = ad.read_h5ad(data_path)
    truth = Truth(data)
    failures = dict(failures or {})
    scores = []
    for path in tables:
        explained = pd.read_csv(path, dtype={k: str for k in EXPLAIN_KEYS})
        method = explained["method"].iloc[0] if not explained.empty else Path(path).name.split(".")[0]
        if explain_needs_counts(method) and not has_counts(data):
            failures[method] = NEEDS_COUNTS
        elif method not in failures:
            scores.append(explain_scores(explained, truth))
    table = pd.concat([*scores, failure_rows(data.uns[DATASET_UNS]["name"], failures)], ignore_index=True)
    order = {m: i + 1 for i, m in enumerate(EXPLAIN_RIVALS)}  # GENEX's explanations (0) first
    table = table.sort_values("method", key=lambda s: s.map(order).fillna(0), kind="stable")
    Path(output_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output_csv, index=False)
    return read_score_table(output_csv)


if __name__ == "__main__":
    from workflow_scripts.rule_log import log_to_file
    from workflow_scripts.score.table import read_failures

    smk = snakemake  # noqa: F821 (injected by Snakemake's script: directive)
    with log_to_file(smk.log[0]):
        reason = read_failures(smk.input.failures).get(GENEX)  # GENEX's training failed: all its explanations
        if not reason and not has_counts(ad.read_h5ad(smk.input.data, backed="r")):
            reason = NEEDS_COUNTS  # GENEX was skipped: it models raw counts
        failures = {m: reason for m in smk.params.genex_explains} if reason else {}
        score_explanations(smk.input.data, smk.input.tables, smk.output[0], failures)
