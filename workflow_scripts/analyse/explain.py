"""Which genes tie each level of each covariate: GENEX's explanations and their rivals, as one
tidy table per method (:data:`TABLE_COLUMNS`).

GENEX explains a trained model (:meth:`genex_core.GENEX.explain`). Its rivals rank genes from
the raw counts, answering these comparisons (:func:`explain_comparisons`, each a
:class:`workflow_scripts.analyse.de.Comparison`):

- each batch against the other batches, over all cells and within each cell type;
- each cell type against all other cells;
- each non-reference level of each extra covariate against the reference level (its first),
  over all cells and within each cell type.

Rivals (:data:`EXPLAIN_RIVALS`):

``stratified_lfc``
    The log ratio of mean CP10k (plus 0.05) of the level's cells against the rest/reference,
    within strata of the other codes among batch and cell type, combined with
    Cochran-Mantel-Haenszel weights; the overall score of a covariate other than the cell
    type is the root mean square of its per-cell-type effects. The strongest statistical
    rival on the benchmark (it was GENEX's default explanation before GENEX explained from
    its networks).
``mean_difference``
    ``|mean log1p CP10k of the level - of the rest/reference|``: the simplest answer.
``wilcoxon_raw``
    scanpy's Wilcoxon on log1p CP10k of the raw counts (:func:`workflow_scripts.analyse.de.wilcoxon`):
    ``|z|``, significant at Bonferroni 0.05.
``ols_batch``
    Per-gene linear model with batch as covariate, or the cell type for comparisons of
    batches (:func:`workflow_scripts.analyse.de.ols_batch`): ``|t|``, significant at Bonferroni 0.05.
``scvi_de``
    scVI's ``differential_expression(batch_correction=True)``
    (:func:`workflow_scripts.analyse.de.scvi_de`); not for the batch itself, which it corrects away.
``mrvi``
    MrVI (scvi-tools' ``TorchMRVI``), the published model for covariate genes per cell type:
    extra covariates only, batch as nuisance. MrVI needs samples (donors) nested in batches;
    simulated cells have none, so a sample is a combination of batch and covariate levels.
    Score: ``|mean per-cell log fold change|`` over the comparison's cells.
``random``
    A seeded random ranking: the floor every method must clear.

``score`` is higher for genes more tied to the level, ``rank`` 1 the most tied (ties broken
by gene order). ``significant`` only where the method makes calls.

On a dataset that declares ``counts: false`` (X already log1p CP10k) the rivals on log
expression use X as given (:func:`workflow_scripts.contract.log_expression`); those that model
raw counts (:func:`workflow_scripts.registry.explain_needs_counts`: GENEX's, ``scvi_de``, ``mrvi``) write an
empty table, which :mod:`workflow_scripts.score.explain` reports as ``skipped: needs raw counts``.
"""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from workflow_scripts.analyse.de import MIN_CELLS, Comparison, levels, ols_batch, scvi_de, wilcoxon
from workflow_scripts.contract import has_counts, log_expression, require_counts
from workflow_scripts.names import ALL_CELLS, DATASET_UNS, EXPLAIN_KEYS, NEEDS_COUNTS, REST
from workflow_scripts.registry import EXPLAIN_RIVALS, GENEX, explain_needs_counts

PSEUDOCOUNT = 0.05  # CP10k added to a mean before its log (stratified_lfc)
TABLE_COLUMNS = ["dataset", "method", *EXPLAIN_KEYS, "gene", "score", "rank", "significant"]


def explain_comparisons(obs: pd.DataFrame, batch_key: str, label_key: str, covariates=()) -> list[Comparison]:
    """The comparisons of the module docstring with at least ``MIN_CELLS`` cells per side."""
    types = levels(obs, label_key)
    candidates = [Comparison(batch_key, b, REST, t) for b in levels(obs, batch_key) for t in [ALL_CELLS, *types]]
    candidates += [Comparison(label_key, t, REST) for t in types]
    for cov in covariates:
        reference, *others = levels(obs, cov)
        candidates += [Comparison(cov, level, reference, t) for level in others for t in [ALL_CELLS, *types]]
    return [c for c in candidates if all(side.sum() >= MIN_CELLS for side in c.masks(obs, label_key))]


def mean_difference(lognorm: np.ndarray, obs: pd.DataFrame, genes, label_key: str, comps: list[Comparison]) -> list[pd.DataFrame]:
    tables = []
    for comp in comps:
        first, second = comp.masks(obs, label_key)
        score = np.abs(lognorm[first].mean(axis=0) - lognorm[second].mean(axis=0))
        tables.append(pd.DataFrame({**_keys(comp), "gene": genes, "score": score}))
    return tables


def stratified_lfc(cp10k: np.ndarray, obs: pd.DataFrame, genes, batch_key: str, label_key: str, comps: list[Comparison]):
    """The ``stratified_lfc`` rival of the module docstring."""
    effects, weights = {}, {}
    for comp in comps:
        first, second = comp.masks(obs, label_key)
        strata_keys = [k for k in (batch_key, label_key) if k != comp.covariate]
        strata = obs[strata_keys].astype(str).agg("|".join, axis=1).to_numpy()
        total, weight = np.zeros(cp10k.shape[1]), 0.0
        for stratum in np.unique(strata[first | second]):
            a, b = first & (strata == stratum), second & (strata == stratum)
            n_a, n_b = a.sum(), b.sum()
            if n_a >= 2 and n_b >= 2:
                w = n_a * n_b / (n_a + n_b)
                total += w * (np.log(cp10k[a].mean(0) + PSEUDOCOUNT) - np.log(cp10k[b].mean(0) + PSEUDOCOUNT))
                weight += w
        if weight:
            effects[comp], weights[comp] = total / weight, weight
    tables = []
    for comp, effect in effects.items():
        score = np.abs(effect)
        per_type = [
            c
            for c in effects
            if c.cell_type != ALL_CELLS and (c.covariate, c.level, c.reference) == (comp.covariate, comp.level, comp.reference)
        ]
        if comp.cell_type == ALL_CELLS and per_type:  # scored by its effects within cell types
            score = np.sqrt(sum(weights[c] * effects[c] ** 2 for c in per_type) / sum(weights[c] for c in per_type))
        tables.append(pd.DataFrame({**_keys(comp), "gene": genes, "score": score}))
    return tables


def random_scores(genes, comps: list[Comparison], seed: int) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    return [pd.DataFrame({**_keys(comp), "gene": genes, "score": rng.random(len(genes))}) for comp in comps]


def mrvi(
    data: ad.AnnData,
    batch_key: str,
    label_key: str,
    covariates,
    comps: list[Comparison],
    *,
    seed: int,
    threads: int,
    max_epochs=None,
) -> list[pd.DataFrame]:
    """MrVI on all genes' raw counts, sample = batch x covariate levels; per-gene scores from
    its per-cell log fold changes of each covariate level (see the module docstring)."""
    require_counts(data, "mrvi")
    import scvi
    import torch

    torch.set_num_threads(threads)
    scvi.settings.seed = seed
    obs = data.obs[[batch_key, *covariates]].copy()
    obs["sample"] = pd.Categorical(obs.astype(str).agg("|".join, axis=1))
    adata = ad.AnnData(X=data.X.copy(), obs=obs, var=pd.DataFrame(index=data.var_names))
    scvi.external.TorchMRVI.setup_anndata(adata, sample_key="sample", batch_key=batch_key)
    model = scvi.external.TorchMRVI(adata)
    model.train(max_epochs=max_epochs, enable_progress_bar=False)
    lfc = model.differential_expression(sample_cov_keys=list(covariates), store_lfc=True)["lfc"]
    tables = []
    for comp in comps:
        first, second = comp.masks(data.obs, label_key)
        cell_lfc = lfc.sel(covariate=f"{comp.covariate}_{comp.level}").to_numpy()  # drop_first dummies
        score = np.abs(cell_lfc[first | second].mean(axis=0))
        tables.append(pd.DataFrame({**_keys(comp), "gene": data.var_names, "score": score}))
    return tables


def _keys(comp: Comparison) -> dict:
    return {"covariate": comp.covariate, "level": comp.level, "cell_type": comp.cell_type}


def _from_de(tables: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """:mod:`workflow_scripts.analyse.de` tables in this module's columns."""
    return [t[[*EXPLAIN_KEYS, "gene", "score", "significant"]] for t in tables]


def run_rival(rival: str, data: ad.AnnData, *, seed: int = 0, threads: int = 1, **params) -> pd.DataFrame:
    """One rival's explanation table of a dataset in the contract layout (raw counts)."""
    info = data.uns[DATASET_UNS]
    batch_key, label_key = info["batch_key"], info["label_key"]
    covariates = list(info.get("covariates", []))
    comps = explain_comparisons(data.obs, batch_key, label_key, covariates)
    genes = data.var_names.astype(str)
    with threadpool_limits(threads):
        if rival == "stratified_lfc":
            cp10k = np.expm1(log_expression(data))
            tables = stratified_lfc(cp10k, data.obs, genes, batch_key, label_key, comps)
        elif rival == "mean_difference":
            tables = mean_difference(log_expression(data), data.obs, genes, label_key, comps)
        elif rival == "wilcoxon_raw":
            tables = _from_de(wilcoxon(log_expression(data), data.obs, genes, label_key, comps))
        elif rival == "ols_batch":
            tables = _from_de(ols_batch(log_expression(data), data.obs, genes, batch_key, label_key, comps))
        elif rival == "scvi_de":
            require_counts(data, "scvi_de")
            not_batch = [c for c in comps if c.covariate != batch_key]
            tables = _from_de(scvi_de(data, label_key, not_batch, seed=seed, threads=threads, **params))
        elif rival == "mrvi":
            of_covariates = [c for c in comps if c.covariate in covariates]
            tables = []
            if of_covariates:
                tables = mrvi(data, batch_key, label_key, covariates, of_covariates, seed=seed, threads=threads, **params)
        elif rival == "random":
            tables = random_scores(genes, comps, seed)
        else:
            raise ValueError(f"unknown explanation rival '{rival}'; known: {EXPLAIN_RIVALS}")
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=[*EXPLAIN_KEYS, "gene", "score"])
    return tidy(table, info["name"], rival)


def run_genex(data: ad.AnnData, model_dir, *, name: str = GENEX, seed: int = 0, threads: int = 1, **params) -> pd.DataFrame:
    """GENEX's explanation table, as method ``name``: every covariate the model was conditioned
    on, overall and (label-conditioned models) within each cell type. ``params`` go to
    ``GENEX.explain``."""
    import torch

    from genex_core import GENEX as Model

    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        model = Model.load(model_dir, data)
        table = model.explain(per="cell_type" if model.registry.label_key else None, seed=seed, **params)
    return tidy(table, data.uns[DATASET_UNS]["name"], name)


def tidy(table: pd.DataFrame, dataset: str, method: str) -> pd.DataFrame:
    """``table`` in :data:`TABLE_COLUMNS` (``significant`` only if it has one), ranked within each
    (covariate, level, cell_type) by one rule for every method."""
    table = table.assign(dataset=dataset, method=method, score=table["score"].astype(float).fillna(0.0))
    for key in EXPLAIN_KEYS:
        table[key] = table[key].astype(str)
    table["rank"] = table.groupby(EXPLAIN_KEYS, sort=False)["score"].rank(method="first", ascending=False).astype(int)
    return table[[c for c in TABLE_COLUMNS if c in table.columns]]


def explain_to_csv(
    method: str, data_path, output, model_dir=None, *, seed: int = 0, threads: int = 1, params: dict | None = None
) -> pd.DataFrame:
    """Rule entry point: one method's explanation table of one dataset (``genex`` and
    ``genex_<name>``: GENEX's, with ``params``). A method that needs raw counts on a
    ``counts: false`` dataset writes an empty table (scored as ``skipped: needs raw counts``)
    without reading the model."""
    data = ad.read_h5ad(data_path)
    if explain_needs_counts(method) and not has_counts(data):
        print(
            f"{method} models raw counts; dataset '{data.uns[DATASET_UNS]['name']}' declares `counts: false`: {NEEDS_COUNTS}",
            flush=True,
        )
        table = pd.DataFrame(columns=TABLE_COLUMNS)
    elif method.split("_")[0] == GENEX:
        table = run_genex(data, model_dir, name=method, seed=seed, threads=threads, **(params or {}))
    else:
        table = run_rival(method, data, seed=seed, threads=threads, **(params or {}))
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output, index=False)
    return table


if __name__ == "__main__":
    from workflow_scripts.rule_log import log_to_file

    smk = snakemake  # noqa: F821 (injected by Snakemake's script: directive)
    with log_to_file(smk.log[0]):  # one dataset's methods, each to its own table
        for method, output, params in zip(smk.params.methods, smk.output, smk.params.params, strict=True):
            explain_to_csv(
                method, smk.input.data, output, smk.input.get("model"), seed=smk.params.seed, threads=smk.threads, params=params
            )
