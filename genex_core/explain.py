"""GENEX explanations: the genes tied to each level of each covariate, ranked by the trained
model and tested on the data.

For a covariate (the batch or an extra covariate) and a level ``L``, the default method,
``counterfactual``, asks the model what ``L`` does to each gene: every cell of a stratum is
translated by the generator to ``L`` and to each other level (only that code changes), and
``effect`` is the log ratio of the translations' mean CP10k (plus :data:`PSEUDOCOUNT`),
``L`` against the average of the other levels. For the batch the translation is the
correction's (offsets and network residual); for an extra covariate it is the model's
covariate translation (per-group log fold changes, :meth:`genex_core.module.GenexModule.
update_covariate_effects`). Rows are per cell type (label-conditioned models) and overall;
the overall ``score`` of a label-conditioned model is the root mean square of the per-type
effects (cell-weighted), so a gene moved in one type is not diluted by the types it leaves
alone. GENEX does not translate cell types (labels are its groups), so ``counterfactual``
has no rows for the label; the attribution methods below do.

The networks' attributions (measured beside it, ``benchmarks/explain_variants.py``):
``ig_neutral``, integrated gradients of the discriminator's classifier head from the
covariate-free translation to the cell; ``ig_zero``, the same from zero (the published
recipe); ``smoothgrad``. Their ``effect`` is the stratified difference (Cochran-Mantel-
Haenszel weights over strata of batch and cell type) of the per-cell attributions between the
level's cells and the rest.

``pval`` tests ``data_effect``, the stratified difference of mean log1p CP10k of the
*observed* cells, level against rest, within strata of the other codes, against an empirical
null fitted to the bulk of the genes (:func:`empirical_null_pvalues`); ``fdr`` is
Benjamini-Hochberg within each (covariate, level, cell type). The networks' values cannot carry a test: they hold consistent
gene-level artefacts, not sampling noise. Measurements: ``docs/method.md``.
"""

from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
from captum.attr import IntegratedGradients
from scipy.stats import false_discovery_control, norm

from genex_core.data import Registry, minibatch, sequential_chunks
from genex_core.module import LFC_PSEUDOCOUNT


class Networks(NamedTuple):
    """What an explanation reads of a trained model: its networks, its codes' registry and
    the device they are on (explicit inputs, so this module does not depend on the model class)."""

    module: torch.nn.Module
    registry: Registry
    device: torch.device


Method = Literal["counterfactual", "ig_neutral", "ig_zero", "smoothgrad"]
METHODS: tuple[str, ...] = ("counterfactual", "ig_neutral", "ig_zero", "smoothgrad")
DEFAULT_METHOD: Method = "counterfactual"

ALL = "all"  # the cell_type of overall rows
COLUMNS = ["covariate", "level", "cell_type", "gene", "score", "rank", "effect", "data_effect", "pval", "fdr", "significant"]
UNS_KEY = "genex_explain"  # adata.uns[UNS_KEY]: the full table; UNS_KEY + "_params": how it was made
VARM_PREFIX = "genex_"  # adata.varm[VARM_PREFIX + covariate]: genes x levels, overall scores

IQR_TO_SD = 2 * norm.ppf(0.75)  # 1.349: the IQR of a normal distribution in standard deviations
PSEUDOCOUNT = LFC_PSEUDOCOUNT  # CP10k added to each mean before a log
SMOOTHGRAD_SAMPLES = 16
SMOOTHGRAD_SD = 0.15  # noise sd as a share of each cell's largest value (Smilkov et al.: 10-20%)


def columns_to_explain(
    registry: Registry, covariate: str | None, per: Literal["cell_type"] | None, method: Method, n_steps: int, batch_size: int
) -> list[int]:
    """The registry columns :func:`explain` explains, after checking its arguments (named errors)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if per not in ("cell_type", None):
        raise ValueError(f"per must be 'cell_type' or None, got {per!r}.")
    if per and registry.label_key is None:
        raise ValueError(
            "per='cell_type' needs a label-conditioned model (made with label_key); pass per=None. (Soft groups can "
            "split by a strong covariate instead of by cell type, leaving nothing to contrast within them.)"
        )
    if n_steps < 1 or batch_size < 1:
        raise ValueError("n_steps and batch_size must be positive.")
    keys = registry.keys
    label = 1 if registry.label_key else None
    if covariate is None:
        return [c for c in range(len(keys)) if not (method == "counterfactual" and c == label)]
    if covariate not in keys:
        raise ValueError(f"covariate={covariate!r} is not one of the model's covariates {keys} (or None for all of them).")
    if method == "counterfactual" and keys.index(covariate) == label:
        raise ValueError(
            f"GENEX does not translate cell types ({covariate!r} defines its groups), so method='counterfactual' "
            "cannot explain them; use method='ig_neutral' (the discriminator's label head)."
        )
    return [keys.index(covariate)]


def explain(
    model: Networks,
    counts,
    codes: np.ndarray,
    columns: list[int],
    per: Literal["cell_type"] | None,
    method: Method,
    store_in,
    n_steps: int,
    batch_size: int,
    alpha: float,
    seed: int,
    store: bool,
) -> pd.DataFrame:
    """The tidy explanation table of :meth:`genex_core.GENEX.explain` (documented there) for the
    registry ``columns`` (:func:`columns_to_explain`), of the cells ``counts`` with their
    ``codes``; ``store_in``: the AnnData that gets the table when ``store``."""
    keys = model.registry.keys
    model.module.eval()
    tables = []
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
        torch.manual_seed(seed)
        types = cell_types(model.registry, codes)
        for column in columns:
            moments = _accumulate(model, counts, codes, types, column, method, n_steps, batch_size)
            tables += _tables(model, types, column, moments, per, alpha)
    if not tables:
        raise ValueError(
            f"no level of {[keys[c] for c in columns]} has 2 cells on each side of a contrast within a stratum "
            "(batch and cell type); explain more cells."
        )
    table = pd.concat(tables, ignore_index=True)[COLUMNS]
    if store:
        params = dict(method=method, per=per or "none", n_steps=n_steps, alpha=alpha, seed=seed)
        _store(store_in, table, params)
    return table


class CellTypes(NamedTuple):
    """Each cell's cell type and the types' names (none in label-free mode), and the registry
    column of the label (None when label-free)."""

    codes: np.ndarray
    names: list[str]
    column: int | None


def cell_types(registry: Registry, codes: np.ndarray) -> CellTypes:
    if registry.label_key:
        return CellTypes(codes[:, 1], list(registry.categories[registry.label_key]), 1)
    return CellTypes(np.zeros(codes.shape[0], dtype=np.int64), [], None)


def _strata(codes: np.ndarray, types: CellTypes, column: int) -> np.ndarray:
    """Stratum index of each cell for contrasts of ``column``: its batch and cell type,
    leaving out ``column`` itself."""
    design = [codes[:, 0]] if column != 0 else []
    if types.column not in (None, column):
        design.append(types.codes)
    if not design:
        return np.zeros(codes.shape[0], dtype=np.int64)
    return np.unique(np.column_stack(design), axis=0, return_inverse=True)[1].ravel()


def translate_to(model: Networks, x: torch.Tensor, codes: torch.Tensor, column: int, level: int, groups) -> torch.Tensor:
    """``x`` translated with only covariate ``column`` set to ``level``."""
    target = codes.clone()
    target[:, column] = level
    return model.module.translate(x, codes, target, groups)


def covariate_free(model: Networks, x: torch.Tensor, codes: torch.Tensor, column: int) -> torch.Tensor:
    """``x`` translated to be free of covariate ``column``: to the neutral batch code for the
    batch (GENEX's corrected expression), else the mean of its translations to every level of
    the covariate (no neutral code exists for it)."""
    module = model.module
    groups = module.groups(x, codes)
    if column == 0:
        return module.neutral(x, codes, groups)
    n_levels = model.registry.n_levels[column]
    return sum(translate_to(model, x, codes, column, level, groups) for level in range(n_levels)) / n_levels


def attributions(
    model: Networks, x: torch.Tensor, codes: torch.Tensor, column: int, level: int, method: Method, n_steps: int
) -> torch.Tensor:
    """Per-cell, per-gene attributions to level ``level`` of covariate ``column`` from the
    discriminator's classifier head (its log-probability of ``level``): integrated gradients
    from ``covariate_free(x)`` (``ig_neutral``) or from zero (``ig_zero``, the published
    recipe) to ``x``; or (``smoothgrad``) its input gradient averaged over noisy copies of
    the cell, times ``x - covariate_free(x)``."""
    D = model.module.discriminator

    def log_prob(z: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(D.classifiers[column](D.trunk(z)), dim=1)

    with torch.no_grad():
        baseline = torch.zeros_like(x) if method == "ig_zero" else covariate_free(model, x, codes, column)
    if method == "smoothgrad":
        sd = SMOOTHGRAD_SD * x.amax(dim=1, keepdim=True)
        grad = torch.zeros_like(x)
        for _ in range(SMOOTHGRAD_SAMPLES):
            noisy = (x + sd * torch.randn_like(x)).requires_grad_(True)
            grad += torch.autograd.grad(log_prob(noisy)[:, level].sum(), noisy)[0]
        return grad / SMOOTHGRAD_SAMPLES * (x - baseline)
    ig = IntegratedGradients(log_prob)
    return ig.attribute(x, baselines=baseline, target=level, n_steps=n_steps).detach()


class _Moments:
    """Count, sum and sum of squares of per-cell values by (target level, stratum, side), side 1
    being the cells of the target level: enough for every stratified contrast, in memory that
    does not grow with the number of cells."""

    def __init__(self, n_levels: int, n_strata: int, n_genes: int, device: torch.device):
        self.n_strata = n_strata
        self.sizes = torch.zeros(n_levels, 2 * n_strata, dtype=torch.float64, device=device)
        self.sums = torch.zeros(n_levels, 2 * n_strata, n_genes, dtype=torch.float64, device=device)
        self.squares = torch.zeros_like(self.sums)

    def add(self, level: int, groups: torch.Tensor, values: torch.Tensor) -> None:
        """Add a chunk's values; ``groups`` = 2 * stratum + (cell is of ``level``)."""
        onehot = torch.nn.functional.one_hot(groups, 2 * self.n_strata).double()
        values = values.double()
        self.sizes[level] += onehot.sum(0)
        self.sums[level] += onehot.T @ values
        self.squares[level] += onehot.T @ values.square()

    def contrast(self, level: int, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
        """Stratified difference (level minus rest) of mean values, its standard error and the
        strata's total weight, over the kept strata with at least 2 cells on each side; None
        if there are none.

        Strata are weighted by ``n_level n_rest / (n_level + n_rest)`` (Cochran-Mantel-Haenszel).
        """
        n = self.sizes[level].cpu().numpy().reshape(-1, 2)  # (strata, [rest, level])
        usable = keep & (n >= 2).all(1)
        if not usable.any():
            return None
        n = n[usable][:, :, None]
        s = self.sums[level].cpu().numpy().reshape(self.n_strata, 2, -1)[usable]
        q = self.squares[level].cpu().numpy().reshape(self.n_strata, 2, -1)[usable]
        mean = s / n
        var = np.maximum(q / n - mean**2, 0.0) * n / (n - 1) / n  # of each side's mean
        weight = n[:, 0] * n[:, 1] / (n[:, 0] + n[:, 1])  # (strata, 1)
        effect = (weight * (mean[:, 1] - mean[:, 0])).sum(0) / weight.sum()
        se = np.sqrt((weight**2 * (var[:, 1] + var[:, 0])).sum(0)) / weight.sum()
        return effect, se, float(weight.sum())


class _Counterfactual:
    """Per (target level, row stratum): the number of cells and the sum of their translations'
    CP10k, for :func:`_tables`' ``contrast``."""

    def __init__(self, n_levels: int, n_strata: int, n_genes: int, device: torch.device):
        self.n_strata = n_strata
        self.sizes = torch.zeros(n_strata, dtype=torch.float64, device=device)
        self.sums = torch.zeros(n_levels, n_strata, n_genes, dtype=torch.float64, device=device)

    def contrast(self, level: int, keep: np.ndarray) -> tuple[np.ndarray, None, float] | None:
        """``log(mean translated to level + PSEUDOCOUNT)`` minus the same of the average over
        the other levels, over the kept strata's cells; None without cells."""
        n = float(self.sizes.cpu().numpy()[keep].sum())
        if n < 2:
            return None
        means = self.sums.cpu().numpy()[:, keep].sum(1) / n  # (levels, genes)
        others = np.delete(means, level, axis=0).mean(0)
        return np.log(means[level] + PSEUDOCOUNT) - np.log(others + PSEUDOCOUNT), None, n


def _accumulate(
    model: Networks, counts, codes: np.ndarray, types: CellTypes, column: int, method: Method, n_steps: int, batch_size: int
):
    """The method's moments (:class:`_Counterfactual` by cell type, or :class:`_Moments` of
    its attributions by stratum) and the observed CP10k's moments (for the test), chunk by
    chunk."""
    registry, module = model.registry, model.module
    strata = _strata(codes, types, column)
    n_strata, n_levels, n_genes = int(strata.max()) + 1, registry.n_levels[column], counts.shape[1]
    observed = _Moments(n_levels, n_strata, n_genes, model.device)
    if method == "counterfactual":
        rows = types.codes
        explained = _Counterfactual(n_levels, max(len(types.names), 1), n_genes, model.device)
    else:
        explained = _Moments(n_levels, n_strata, n_genes, model.device)
    for idx in sequential_chunks(codes.shape[0], batch_size):
        x, c = minibatch(counts, codes, idx, model.device)
        cell_strata = torch.from_numpy(strata[idx]).to(model.device)
        if method == "counterfactual":
            cell_rows = torch.from_numpy(rows[idx]).to(model.device)
            onehot = torch.nn.functional.one_hot(cell_rows, explained.n_strata).double()
            explained.sizes += onehot.sum(0)
            with torch.no_grad():
                groups = module.groups(x, c)
                for level in range(n_levels):
                    explained.sums[level] += onehot.T @ torch.expm1(translate_to(model, x, c, column, level, groups)).double()
        for level in range(n_levels):
            side = 2 * cell_strata + (c[:, column] == level).long()
            if method != "counterfactual":
                explained.add(level, side, attributions(model, x, c, column, level, method, n_steps))
            observed.add(level, side, x)
    return explained, observed, strata


def _tables(model: Networks, types: CellTypes, column: int, moments, per: str | None, alpha: float) -> list[pd.DataFrame]:
    """Rows of one covariate: every level overall and, with ``per``, within each cell type
    (combinations without cells to contrast are left out).

    The overall ``score`` of a covariate other than the label is the root mean square of its
    per-cell-type effects (weighted by the types' cells, or their strata's weights): a gene
    moved in one cell type only is then scored by its effect there, not diluted by the types
    it leaves alone."""
    explained, observed, strata = moments
    registry = model.registry
    key, levels = registry.keys[column], registry.categories[registry.keys[column]]
    counterfactual = isinstance(explained, _Counterfactual)
    # the observed test's strata (and the attributions') in each row
    keeps = {ALL: np.ones(observed.n_strata, dtype=bool)}
    row_keeps = {ALL: np.ones(explained.n_strata, dtype=bool)}
    if types.column not in (None, column):  # the label within one cell type has no contrast
        type_of_stratum = np.zeros(observed.n_strata, dtype=np.int64)
        type_of_stratum[strata] = types.codes
        keeps |= {name: type_of_stratum == i for i, name in enumerate(types.names)}
        by_type = {name: np.arange(len(types.names)) == i for i, name in enumerate(types.names)}
        row_keeps = row_keeps | by_type if counterfactual else keeps
    genes = np.asarray(registry.var_names)
    rows = []
    for level, level_name in enumerate(levels):
        contrasts = {ct: c for ct, keep in row_keeps.items() if (c := explained.contrast(level, keep)) is not None}
        if ALL not in contrasts:
            continue
        per_type = [(effect, weight) for ct, (effect, _, weight) in contrasts.items() if ct != ALL]
        for cell_type, (effect, _, _) in contrasts.items():
            if cell_type != ALL and not per:
                continue
            tested = observed.contrast(level, keeps[cell_type])
            if tested is None:
                continue
            data_effect, se, _ = tested
            pval = empirical_null_pvalues(data_effect, se)
            fdr = false_discovery_control(pval, method="bh")
            score = np.abs(effect)
            if cell_type == ALL and per_type:
                score = np.sqrt(sum(w * e**2 for e, w in per_type) / sum(w for _, w in per_type))
            rank = np.empty(len(genes), dtype=np.int64)
            rank[np.lexsort((np.arange(len(genes)), -score))] = np.arange(1, len(genes) + 1)
            rows.append(pd.DataFrame({
                "covariate": key, "level": level_name, "cell_type": cell_type, "gene": genes, "score": score,
                "rank": rank, "effect": effect, "data_effect": data_effect, "pval": pval, "fdr": fdr,
                "significant": fdr <= alpha,
            }))  # fmt: skip
    return rows


def empirical_null_pvalues(effect: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Two-sided p-values of ``effect / se`` against a normal null fitted to the bulk of the
    genes (Efron 2004: median and IQR / 1.349 of the z-statistics), never narrower than the
    theoretical N(0, 1). With thousands of cells, small shifts shared by many genes (as when
    normalising to 10,000 counts moves every gene because some changed) are significant
    against N(0, 1): on the benchmark simulation that null let half of the genes called for
    ``condition`` be false (FDP 0.50), the fitted one 4%. Genes without variation (not
    expressed here) get p = 1."""
    tested = se > 0
    pval = np.ones_like(effect)
    if tested.any():
        z = effect[tested] / se[tested]
        center = np.median(z)
        scale = max(np.subtract(*np.percentile(z, [75, 25])) / IQR_TO_SD, 1.0)
        pval[tested] = 2 * norm.sf(np.abs(z - center) / scale)
    return pval


def _store(adata, table: pd.DataFrame, params: dict) -> None:
    """Overall scores per covariate into ``varm``, the full table and its parameters into ``uns``."""
    overall = table[table["cell_type"] == ALL]
    for key, rows in overall.groupby("covariate", sort=False):
        wide = rows.pivot(index="gene", columns="level", values="score")
        adata.varm[VARM_PREFIX + key] = wide.reindex(adata.var_names)
    adata.uns[UNS_KEY] = table
    adata.uns[UNS_KEY + "_params"] = params
