"""Splat "groups" simulator (Splatter, Zappia et al. 2017) in numpy, with ground truth.

Parameter names are Splatter's with "." written "_" (``batch.facLoc`` -> ``batch_facLoc``)
and the same defaults. Three extensions give the benchmark something to tell methods apart
with, each off by default (plain Splat):

* ``group_prob`` may hold one probability vector per batch: cell-type composition that
  differs between batches (confounding);
* ``batch_interaction_prob``: the share of genes whose batch factor is drawn anew for every
  (batch, cell type) pair (a batch effect that ComBat's per-gene model cannot remove);
* ``covariates``: extra cell-level covariates (``condition``, ``sex``...) with gene effects
  of their own, global or specific to each cell type, so explanations have a truth.

Cells x genes draws run in fixed-size chunks of cells, each with its own child seed, so the
result depends on the seed only (not on the thread count) and no dense counts matrix exists.
"""

import dataclasses
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from workflow_scripts.contract import BATCH_KEY, LABEL_KEY, TRUTH_COUNTS, TRUTH_MEANS

CHUNK_CELLS = 2048  # fixed: part of what the seed determines


@dataclass(frozen=True)
class CovariateParams:
    """An extra covariate: cells get a level; each non-reference level scales some genes.

    The first level is the reference (factor 1 everywhere). Factors are drawn like Splat's
    DE factors: a gene is affected with ``gene_prob``, by a log-normal factor
    (``facLoc``, ``facScale``) that is inverted with ``downProb``. With ``per_cell_type``,
    every cell type gets its own affected genes (a cell-type-specific signature).
    """

    name: str
    levels: tuple[str, ...] = ("control", "case")
    prob: tuple[float, ...] | None = None
    gene_prob: float = 0.05
    downProb: float = 0.5
    facLoc: float = 0.5
    facScale: float = 0.2
    per_cell_type: bool = False


@dataclass(frozen=True)
class SplatParams:
    """Splat parameters (Splatter names, "." -> "_"), plus the three extensions above."""

    nGenes: int = 10000
    batchCells: tuple[int, ...] = (100,)
    seed: int = 0
    # gene means
    mean_rate: float = 0.3
    mean_shape: float = 0.6
    # library sizes
    lib_loc: float = 11.0
    lib_scale: float = 0.2
    lib_norm: bool = False
    # expression outliers
    out_prob: float = 0.05
    out_facLoc: float = 4.0
    out_facScale: float = 0.5
    # batch effects (scalar or one value per batch)
    batch_facLoc: float | tuple[float, ...] = 0.1
    batch_facScale: float | tuple[float, ...] = 0.1
    batch_rmEffect: bool = False
    # groups (one vector, or one vector per batch) and DE (scalar or one value per group)
    group_prob: tuple[float, ...] | tuple[tuple[float, ...], ...] = (1.0,)
    de_prob: float | tuple[float, ...] = 0.1
    de_downProb: float | tuple[float, ...] = 0.5
    de_facLoc: float | tuple[float, ...] = 0.1
    de_facScale: float | tuple[float, ...] = 0.4
    # biological coefficient of variation
    bcv_common: float = 0.1
    bcv_df: float = 60.0
    # dropout (mid/shape: scalar, or one value per batch or group for those types)
    dropout_type: str = "none"
    dropout_mid: float | tuple[float, ...] = 0.0
    dropout_shape: float | tuple[float, ...] = -1.0
    # beyond Splatter
    batch_interaction_prob: float = 0.0
    covariates: tuple[CovariateParams, ...] = field(default_factory=tuple)

    @classmethod
    def from_dict(cls, params: dict) -> "SplatParams":
        """Build from a config mapping (lists become tuples, covariates become objects)."""
        params = dict(params)
        unknown = set(params) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown simulation parameters: {sorted(unknown)}")
        covariates = tuple(
            CovariateParams(**{k: _as_tuple(v) for k, v in c.items()}) for c in params.pop("covariates", ())
        )
        return cls(**{k: _as_tuple(v) for k, v in params.items()}, covariates=covariates)

    def to_dict(self) -> dict:
        """JSON-serialisable form for ``uns["simulation"]``: no None, covariates keyed by name
        (the shapes ``.h5ad`` can store)."""
        out = json.loads(json.dumps(dataclasses.asdict(self)))
        out["covariates"] = {c.pop("name"): {k: v for k, v in c.items() if v is not None} for c in out["covariates"]}
        return out


def _as_tuple(value):
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value


def _per_level(value, n: int, what: str) -> np.ndarray:
    """Broadcast a Splatter scalar-or-vector parameter to one value per batch/group."""
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.size == 1:
        return np.repeat(arr, n)
    if arr.size != n:
        raise ValueError(f"{what} has {arr.size} values, expected 1 or {n}")
    return arr


def lognormal_factors(rng: np.random.Generator, n: int, sel_prob: float, neg_prob: float, loc: float, scale: float) -> np.ndarray:
    """Splatter's ``getLNormFactors``: a selected share of ``n`` factors drawn log-normal.

    A selected factor is flipped to its inverse with ``neg_prob``; factors drawn below 1 flip
    the other way, exactly as in Splatter.
    """
    selected = rng.random(n) < sel_prob
    n_sel = int(selected.sum())
    direction = np.where(rng.random(n_sel) < neg_prob, -1.0, 1.0)
    facs = rng.lognormal(loc, scale, n_sel)
    direction[facs < 1] *= -1
    out = np.ones(n)
    out[selected] = facs**direction
    return out


def _group_probs(params: SplatParams, n_batches: int) -> np.ndarray:
    """One row of group probabilities per batch."""
    rows = params.group_prob
    if all(np.isscalar(p) for p in rows):
        rows = [rows] * n_batches
    if len(rows) != n_batches or len({len(r) for r in rows}) != 1:
        raise ValueError(f"group_prob must be one probability vector, or one per batch ({n_batches}) of equal length")
    probs = np.asarray(rows, dtype=float)
    if not np.allclose(probs.sum(axis=1), 1.0):
        raise ValueError("every group_prob vector must sum to 1")
    return probs


@dataclass
class _Design:
    """Everything drawn once per dataset (per cell or per gene); chunks draw the rest."""

    batch: np.ndarray  # per cell, index into batch names
    group: np.ndarray
    covariate_levels: list[np.ndarray]
    lib_size: np.ndarray
    gene_mean: np.ndarray
    batch_fac: np.ndarray  # (batches, groups, genes)
    de_fac: np.ndarray  # (groups, genes)
    covariate_fac: list[np.ndarray]  # each (levels, groups, genes)
    bcv_scale: np.ndarray  # per gene sqrt(df / chi2)
    dropout_mid: np.ndarray  # per cell
    dropout_shape: np.ndarray
    extra_var: dict = field(default_factory=dict)


def _draw_design(params: SplatParams, rng: np.random.Generator) -> _Design:
    n_genes = params.nGenes
    n_batches = len(params.batchCells)
    batch = np.repeat(np.arange(n_batches), params.batchCells)
    n_cells = batch.size
    probs = _group_probs(params, n_batches)
    n_groups = probs.shape[1]
    group = np.empty(n_cells, dtype=int)
    for b in range(n_batches):
        idx = np.flatnonzero(batch == b)
        group[idx] = rng.choice(n_groups, size=idx.size, p=probs[b])

    if params.lib_norm:
        lib_size = rng.normal(params.lib_loc, params.lib_scale, n_cells)
        lib_size[lib_size <= 0] = lib_size[lib_size > 0].min()
    else:
        lib_size = rng.lognormal(params.lib_loc, params.lib_scale, n_cells)

    base_mean = rng.gamma(params.mean_shape, 1.0 / params.mean_rate, n_genes)
    outlier = lognormal_factors(rng, n_genes, params.out_prob, 0.0, params.out_facLoc, params.out_facScale)
    gene_mean = np.where(outlier != 1, np.median(base_mean) * outlier, base_mean)

    loc = _per_level(params.batch_facLoc, n_batches, "batch_facLoc")
    scale = _per_level(params.batch_facScale, n_batches, "batch_facScale")
    global_batch = np.stack([lognormal_factors(rng, n_genes, 1.0, 0.5, loc[b], scale[b]) for b in range(n_batches)])
    batch_fac = np.repeat(global_batch[:, None, :], n_groups, axis=1)
    interacting = rng.random(n_genes) < params.batch_interaction_prob
    for b in range(n_batches):
        for g in range(n_groups):
            redraw = lognormal_factors(rng, n_genes, 1.0, 0.5, loc[b], scale[b])
            batch_fac[b, g, interacting] = redraw[interacting]
    if params.batch_rmEffect:
        global_batch[:] = 1.0
        batch_fac[:] = 1.0

    de = [_per_level(getattr(params, k), n_groups, k) for k in ("de_prob", "de_downProb", "de_facLoc", "de_facScale")]
    de_fac = np.stack([lognormal_factors(rng, n_genes, *(d[g] for d in de)) for g in range(n_groups)])

    covariate_levels, covariate_fac = [], []
    for cov in params.covariates:
        n_levels = len(cov.levels)
        p = np.full(n_levels, 1.0 / n_levels) if cov.prob is None else np.asarray(cov.prob, dtype=float)
        covariate_levels.append(rng.choice(n_levels, size=n_cells, p=p))
        fac = np.ones((n_levels, n_groups, n_genes))
        for lvl in range(1, n_levels):
            draws = n_groups if cov.per_cell_type else 1
            fac[lvl] = [lognormal_factors(rng, n_genes, cov.gene_prob, cov.downProb, cov.facLoc, cov.facScale) for _ in range(draws)]
        covariate_fac.append(fac)

    bcv_scale = np.sqrt(params.bcv_df / rng.chisquare(params.bcv_df, n_genes)) if math.isfinite(params.bcv_df) else np.ones(n_genes)

    n_drop = {"none": 1, "experiment": 1, "batch": n_batches, "group": n_groups}
    if params.dropout_type not in n_drop:
        raise ValueError(f"dropout_type must be one of {sorted(n_drop)}, got {params.dropout_type!r}")
    mid = _per_level(params.dropout_mid, n_drop[params.dropout_type], "dropout_mid")
    shape = _per_level(params.dropout_shape, n_drop[params.dropout_type], "dropout_shape")
    by = {"batch": batch, "group": group}.get(params.dropout_type, np.zeros(n_cells, dtype=int))

    return _Design(
        batch=batch, group=group, covariate_levels=covariate_levels, lib_size=lib_size,
        gene_mean=gene_mean, batch_fac=batch_fac, de_fac=de_fac, covariate_fac=covariate_fac,
        bcv_scale=bcv_scale, dropout_mid=mid[by], dropout_shape=shape[by],
        extra_var={"base_gene_mean": base_mean, "outlier_factor": outlier, "global_batch": global_batch,
                   "batch_interaction": interacting},
    )


def _noisy_counts(rng: np.random.Generator, base: np.ndarray, design: _Design, cells: np.ndarray, params: SplatParams) -> sp.csr_matrix:
    """BCV gamma noise, Poisson counts and optional dropout around expected means ``base``."""
    with np.errstate(divide="ignore"):
        bcv = (params.bcv_common + 1.0 / np.sqrt(base)) * design.bcv_scale
    shape = 1.0 / bcv**2
    means = rng.standard_gamma(shape.astype(np.float32), dtype=np.float32) * (base / shape)  # float32: 2x faster
    counts = rng.poisson(means).astype(np.float32)
    if params.dropout_type != "none":
        with np.errstate(divide="ignore", over="ignore"):
            eta = np.log(means)
            k = design.dropout_shape[cells, None]
            drop_prob = 1.0 / (1.0 + np.exp(-k * (eta - design.dropout_mid[cells, None])))
        counts[rng.random(counts.shape) < drop_prob] = 0
    return sp.csr_matrix(counts)


def _simulate_chunk(design: _Design, params: SplatParams, cells: np.ndarray, seed: np.random.SeedSequence):
    rng = np.random.default_rng(seed)
    g = design.group[cells]
    bio = design.gene_mean[None, :] * design.de_fac[g]
    for levels, fac in zip(design.covariate_levels, design.covariate_fac):
        bio *= fac[levels[cells], g]
    lib = design.lib_size[cells, None]
    batched = bio * design.batch_fac[design.batch[cells], g]
    base_batched = lib * batched / batched.sum(axis=1, keepdims=True)
    base_free = lib * bio / bio.sum(axis=1, keepdims=True)
    counts = _noisy_counts(rng, base_batched, design, cells, params)
    free_counts = _noisy_counts(rng, base_free, design, cells, params)
    return counts, free_counts, base_free.astype(np.float32)


def simulate(params: SplatParams | dict, n_threads: int = 1, progress: bool = False) -> ad.AnnData:
    """Simulate a batched dataset in the contract layout (``DATA.md``) with its ground truth.

    Parameters
    ----------
    params
        Splat parameters, or a mapping of them (as written in the config).
    n_threads
        Threads drawing chunks of cells; the result does not depend on it.
    progress
        Print one line per quarter of the chunks.
    """
    if isinstance(params, dict):
        params = SplatParams.from_dict(params)
    if len(params.batchCells) < 1 or min(params.batchCells) < 1 or params.nGenes < 1:
        raise ValueError("batchCells must hold positive cell counts and nGenes must be positive")
    root = np.random.SeedSequence(params.seed)
    design_seed, chunk_seed = root.spawn(2)
    design = _draw_design(params, np.random.default_rng(design_seed))
    n_cells = design.batch.size
    chunks = [np.arange(s, min(s + CHUNK_CELLS, n_cells)) for s in range(0, n_cells, CHUNK_CELLS)]
    seeds = chunk_seed.spawn(len(chunks))

    start = time.perf_counter()
    results = []
    with ThreadPoolExecutor(max_workers=max(1, n_threads)) as pool:
        for i, res in enumerate(pool.map(lambda a: _simulate_chunk(design, params, *a), zip(chunks, seeds)), 1):
            results.append(res)
            if progress and (i == len(chunks) or i % max(1, len(chunks) // 4) == 0):
                print(f"simulate: {i}/{len(chunks)} chunks of cells, {time.perf_counter() - start:.1f} s", flush=True)
    counts, free_counts, free_means = zip(*results)
    return _to_anndata(params, design, sp.vstack(counts, format="csr"), sp.vstack(free_counts, format="csr"), np.vstack(free_means))


def _to_anndata(params: SplatParams, design: _Design, counts, free_counts, free_means) -> ad.AnnData:
    n_batches, n_groups = design.batch_fac.shape[:2]
    batches = [f"Batch{b + 1}" for b in range(n_batches)]
    groups = [f"Group{g + 1}" for g in range(n_groups)]
    obs = pd.DataFrame(index=[f"Cell{i + 1}" for i in range(counts.shape[0])])
    obs[BATCH_KEY] = pd.Categorical.from_codes(design.batch, batches)
    obs[LABEL_KEY] = pd.Categorical.from_codes(design.group, groups)
    for cov, levels in zip(params.covariates, design.covariate_levels):
        obs[cov.name] = pd.Categorical.from_codes(levels, list(cov.levels))
    obs["exp_lib_size"] = design.lib_size

    var = pd.DataFrame(index=[f"Gene{j + 1}" for j in range(params.nGenes)])
    var["base_gene_mean"] = design.extra_var["base_gene_mean"]
    var["outlier_factor"] = design.extra_var["outlier_factor"]
    var["gene_mean"] = design.gene_mean
    for g, name in enumerate(groups):
        var[f"de_factor_{name}"] = design.de_fac[g]
    for b, name in enumerate(batches):
        var[f"batch_factor_{name}"] = design.extra_var["global_batch"][b]
    if params.batch_interaction_prob > 0:
        var["batch_interaction"] = design.extra_var["batch_interaction"]
        for b, bname in enumerate(batches):
            for g, gname in enumerate(groups):
                var[f"batch_factor_{bname}__{gname}"] = design.batch_fac[b, g]
    for cov, fac in zip(params.covariates, design.covariate_fac):
        for lvl, level in enumerate(cov.levels):
            if cov.per_cell_type:
                for g, gname in enumerate(groups):
                    var[f"{cov.name}_factor_{level}__{gname}"] = fac[lvl, g]
            else:
                var[f"{cov.name}_factor_{level}"] = fac[lvl, 0]

    adata = ad.AnnData(X=counts, obs=obs, var=var)
    adata.layers[TRUTH_MEANS] = free_means
    adata.layers[TRUTH_COUNTS] = free_counts
    adata.uns["simulation"] = params.to_dict()
    return adata
