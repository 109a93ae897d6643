"""Differential expression on each method's output and on the raw counts, as per-gene tables.

The GENEX paper's claim is that DE on corrected values finds the true DE genes. A published
benchmark of 46 DE workflows found instead that corrected data rarely helps and that modelling
batch as a covariate does, so the corrected values are ranked next to two covariate-aware DE
workflows on the raw counts. Every workflow answers the same :func:`comparisons`:

- each cell type against all other cells, and each pair of cell types;
- each non-reference level of each extra covariate against the reference level, within each
  cell type (the effects a user asks about: disease genes per cell type).

Workflows (``WORKFLOWS``), each returning one row per comparison and gene (:data:`GENE_COLUMNS`):

``wilcoxon``
    scanpy's Wilcoxon rank-sum test on a method's ``layers["corrected"]`` (for the unintegrated
    control, log1p CP10k of the raw counts), Bonferroni-adjusted. ``significant_paper`` is the
    GENEX paper's protocol for cell type vs rest: ``filter_rank_genes_groups(
    min_in_group_fraction=0.25, min_fold_change=0)`` (which keeps up-regulated genes only)
    and Bonferroni p < 0.05.
``ols_batch``
    Per gene, ordinary least squares of log1p CP10k on an intercept, the comparison's group
    indicator and the batch (one-hot): the t-test of the group coefficient, Bonferroni-adjusted.
    On a ``counts: false`` dataset X is taken as the log1p CP10k it already is
    (:func:`workflow_scripts.contract.log_expression`).
``scvi_de``
    scVI trained on the raw counts of all genes with batch as covariate;
    ``differential_expression(mode="change", batch_correction=True)``; significant = scVI's
    own posterior FDR control at 0.05. Needs raw counts: on a ``counts: false`` dataset it
    raises :class:`workflow_scripts.contract.NeedsRawCounts` and its score table says
    ``skipped: needs raw counts``.

``score`` is the ranking strength (higher = more evidence of DE, both directions), ``lfc`` the
direction. Genes a method did not model (NaN columns) get no evidence (score 0, p = 1).
"""

import itertools
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.stats
from threadpoolctl import threadpool_limits

from workflow_scripts.contract import log_expression, require_counts
from workflow_scripts.names import ALL_CELLS, REST

WORKFLOWS = ("wilcoxon", "ols_batch", "scvi_de")
ALPHA = 0.05
MIN_CELLS = 3  # smaller groups are not compared (scanpy's Wilcoxon needs at least 2 per side)
GENE_COLUMNS = [
    "dataset", "method", "workflow", "covariate", "level", "reference", "cell_type", "gene",
    "score", "lfc", "pval_adj", "significant", "significant_paper",
]  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """Cells with ``covariate == level`` against those with ``covariate == reference`` (or all
    others when ``reference == "rest"``), among the cells of ``cell_type`` (or all cells)."""

    covariate: str
    level: str
    reference: str
    cell_type: str = ALL_CELLS

    def masks(self, obs: pd.DataFrame, label_key: str) -> tuple[np.ndarray, np.ndarray]:
        values = obs[self.covariate].astype(str).to_numpy()
        within = (
            np.ones(len(obs), bool) if self.cell_type == ALL_CELLS else obs[label_key].astype(str).to_numpy() == self.cell_type
        )
        first = within & (values == self.level)
        second = within & (values != self.level if self.reference == REST else values == self.reference)
        return first, second


def levels(obs: pd.DataFrame, key: str) -> list[str]:
    """The levels of an obs column that have cells, in category order (the first is a
    covariate's reference)."""
    column = obs[key]
    levels = column.cat.categories if isinstance(column.dtype, pd.CategoricalDtype) else sorted(column.unique())
    return [str(x) for x in levels if (column.astype(str) == str(x)).any()]


def comparisons(obs: pd.DataFrame, label_key: str, covariates=()) -> list[Comparison]:
    """Every comparison with at least ``MIN_CELLS`` cells on each side, in a fixed order.

    A covariate's first level (category order, as in the simulator) is its reference.
    """
    types = levels(obs, label_key)
    candidates = [Comparison(label_key, t, REST) for t in types]
    candidates += [Comparison(label_key, a, b) for a, b in itertools.combinations(types, 2)]
    for cov in covariates:
        reference, *others = levels(obs, cov)
        candidates += [Comparison(cov, level, reference, t) for t in types for level in others]
    enough = []
    for comp in candidates:
        first, second = comp.masks(obs, label_key)
        if first.sum() >= MIN_CELLS and second.sum() >= MIN_CELLS:
            enough.append(comp)
    return enough


def _table(comp: Comparison, genes, score, lfc, pval_adj, significant, significant_paper=None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "covariate": comp.covariate,
            "level": comp.level,
            "reference": comp.reference,
            "cell_type": comp.cell_type,
            "gene": np.asarray(genes),
            "score": np.asarray(score, dtype=float),
            "lfc": np.asarray(lfc, dtype=float),
            "pval_adj": np.asarray(pval_adj, dtype=float),
            "significant": np.asarray(significant, dtype=bool),
            "significant_paper": np.nan if significant_paper is None else np.asarray(significant_paper, dtype=float),
        }
    )


def _finish(tables: list[pd.DataFrame], dataset: str, method: str, workflow: str) -> pd.DataFrame:
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=GENE_COLUMNS[3:])
    table.insert(0, "workflow", workflow)
    table.insert(0, "method", method)
    table.insert(0, "dataset", dataset)
    return table[GENE_COLUMNS]


def wilcoxon(values: np.ndarray, obs: pd.DataFrame, genes, label_key: str, comps: list[Comparison]) -> list[pd.DataFrame]:
    """scanpy Wilcoxon per comparison on ``values`` (cells x genes, log scale; NaN columns are
    genes without values and get score 0, p = 1)."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0)
    genes = pd.Index(genes).astype(str)
    tables = []
    for comp in comps:
        first, second = comp.masks(obs, label_key)
        cells = first | second
        group = pd.Categorical(np.where(first[cells], "first", "second"), categories=["first", "second"])
        sub = ad.AnnData(
            X=values[cells], obs=pd.DataFrame({"group": group}, index=obs.index[cells]), var=pd.DataFrame(index=genes)
        )
        with np.errstate(invalid="ignore"):  # fold changes of negative values (ComBat's) are NaN
            sc.tl.rank_genes_groups(
                sub, "group", groups=["first"], reference="second", method="wilcoxon", corr_method="bonferroni", pts=True
            )
            sc.tl.filter_rank_genes_groups(sub, min_in_group_fraction=0.25, min_fold_change=0)
        result = sc.get.rank_genes_groups_df(sub, "first").set_index("names").reindex(genes)
        kept = pd.DataFrame(sub.uns["rank_genes_groups_filtered"]["names"])["first"].dropna()
        scores = result["scores"].to_numpy()
        pval_adj = result["pvals_adj"].to_numpy()
        paper = genes.isin(kept) & (pval_adj < ALPHA) if comp.reference == REST else None
        tables.append(_table(comp, genes, np.abs(scores), result["logfoldchanges"], pval_adj, pval_adj < ALPHA, paper))
    return tables


def ols_t_tests(y: np.ndarray, design: np.ndarray, column: int) -> tuple[np.ndarray, np.ndarray]:
    """t statistics and two-sided p-values of coefficient ``column`` of the OLS fit of every
    column of ``y`` (cells x genes) on ``design`` (cells x covariates), all genes at once.

    Textbook OLS, one solve for every gene (statsmodels fits one response per call). A
    coefficient the design cannot separate (e.g. a group confounded with a batch) gets t = 0,
    p = 1.
    """
    rank = np.linalg.matrix_rank(design)
    df = design.shape[0] - rank
    if df <= 0 or np.linalg.matrix_rank(np.delete(design, column, axis=1)) == rank:  # not identifiable
        return np.zeros(y.shape[1]), np.ones(y.shape[1])
    pinv = np.linalg.pinv(design)
    beta = pinv @ y
    sigma2 = ((y - design @ beta) ** 2).sum(axis=0) / df
    unscaled = (pinv @ pinv.T)[column, column]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(sigma2 > 0, beta[column] / np.sqrt(sigma2 * unscaled), 0.0)
    return t, 2 * scipy.stats.t.sf(np.abs(t), df)


def ols_batch(
    lognorm: np.ndarray, obs: pd.DataFrame, genes, batch_key: str, label_key: str, comps: list[Comparison]
) -> list[pd.DataFrame]:
    """Per-gene linear model with batch as a covariate (see the module docstring); a
    comparison of batches is adjusted for the cell type instead."""
    tables = []
    for comp in comps:
        first, second = comp.masks(obs, label_key)
        cells = first | second
        nuisance = label_key if comp.covariate == batch_key else batch_key
        batches = pd.get_dummies(obs[nuisance].astype(str)[cells]).to_numpy(dtype=float)
        design = np.column_stack([np.ones(cells.sum()), first[cells].astype(float), batches[:, 1:]])
        y = lognorm[cells]
        t, p = ols_t_tests(y, design, column=1)
        lfc = y[first[cells]].mean(axis=0) - y[~first[cells]].mean(axis=0)
        pval_adj = np.minimum(p * y.shape[1], 1.0)
        tables.append(_table(comp, genes, np.abs(t), lfc, pval_adj, pval_adj < ALPHA))
    return tables


def scvi_de(
    data: ad.AnnData, label_key: str, comps: list[Comparison], *, seed: int, threads: int, model_dir=None
) -> list[pd.DataFrame]:
    """Batch-corrected DE per comparison from the dataset's scVI model (trained once, by
    ``integrate_scvi``, on the HVGs' raw counts; genes it did not model get no score).

    ``score`` orders genes by scVI's posterior probability of a change, ties (probabilities
    saturate at 1) broken by the absolute posterior mean log fold change.
    """
    require_counts(data, "scvi_de")
    if model_dir is None:
        raise ValueError(
            "scvi_de reads the dataset's trained scVI model (rule integrate_scvi): add `scvi` to the config's methods, or see why it failed"
        )
    import scvi
    import torch

    torch.set_num_threads(threads)
    scvi.settings.seed = seed
    model = scvi.model.SCVI.load(str(model_dir))
    if not model.adata.obs_names.equals(data.obs_names):
        raise ValueError(f"the scVI model in {model_dir} was trained on other cells; re-run integrate_scvi")
    tables = []
    for comp in comps:
        first, second = comp.masks(data.obs, label_key)
        result = model.differential_expression(
            idx1=first, idx2=second, mode="change", batch_correction=True, fdr_target=ALPHA, all_stats=False, silent=True
        ).reindex(model.adata.var_names)
        order = np.lexsort((result["lfc_mean"].abs().to_numpy(), result["proba_de"].to_numpy()))
        score = np.full(data.n_vars, np.nan)
        modelled = data.var_names.get_indexer(model.adata.var_names)
        score[modelled[order]] = np.arange(1, len(order) + 1) / len(order)
        lfc = pd.Series(result["lfc_mean"].to_numpy(), index=model.adata.var_names).reindex(data.var_names)
        significant = pd.Series(result[f"is_de_fdr_{ALPHA}"].to_numpy(dtype=bool), index=model.adata.var_names)
        significant = significant.reindex(data.var_names, fill_value=False).to_numpy(dtype=bool)
        tables.append(_table(comp, data.var_names, score, lfc, np.nan, significant))
    return tables


def run_workflow(
    workflow: str, data: ad.AnnData, integrated: ad.AnnData | None = None, *, seed: int = 0, threads: int = 1, **params
) -> pd.DataFrame:
    """One workflow on one dataset: the per-gene table of every comparison.

    ``wilcoxon`` tests ``integrated.layers["corrected"]`` (an output without corrected values
    gives an empty table); the other workflows test ``data`` (its log1p CP10k, or its raw
    counts for ``scvi_de``) and name their rows ``unintegrated``.

    Raises
    ------
    NeedsRawCounts
        ``scvi_de`` on a dataset that declares ``counts: false``.
    """
    from workflow_scripts.names import CORRECTED, METHOD_UNS

    info = data.uns["dataset"]
    batch_key, label_key = info["batch_key"], info["label_key"]
    comps = comparisons(data.obs, label_key, list(info.get("covariates", [])))
    with threadpool_limits(threads):
        if workflow == "wilcoxon":
            method = integrated.uns[METHOD_UNS]["name"]
            tables = (
                wilcoxon(integrated.layers[CORRECTED], data.obs, data.var_names, label_key, comps)
                if CORRECTED in integrated.layers
                else []
            )
        elif workflow == "ols_batch":
            method = "unintegrated"
            tables = ols_batch(log_expression(data), data.obs, data.var_names, batch_key, label_key, comps)
        elif workflow == "scvi_de":
            method = "unintegrated"
            require_counts(data, "scvi_de")  # before anything scVI needs (a model, its arguments)
            tables = scvi_de(data, label_key, comps, seed=seed, threads=threads, **params)
        else:
            raise ValueError(f"unknown DE workflow '{workflow}'; known: {WORKFLOWS}")
    return _finish(tables, info["name"], method, workflow)
