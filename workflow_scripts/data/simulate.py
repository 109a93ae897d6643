"""Splat simulator (Splatter, Zappia et al. 2017) in numpy, with ground truth: Splat's
"groups" (discrete cell types, the default) and "paths" (continuous states) methods.

Parameter names are Splatter's with "." written "_" (``batch.facLoc`` -> ``batch_facLoc``,
``path.nSteps`` -> ``path_nSteps``) and the same defaults. Four extensions give the benchmark
something to tell methods apart with, each off by default (plain Splat):

* ``group_prob`` may hold one probability vector per batch: cell-type composition that
  differs between batches (confounding);
* ``batch_interaction_prob``: the share of genes whose batch factor is drawn anew for every
  (batch, cell type) pair (a batch effect that ComBat's per-gene model cannot remove);
* ``covariates``: extra cell-level covariates (``condition``, ``sex``...) with gene effects
  of their own, global or specific to each cell type, so explanations have a truth;
* ``lib_loc``/``lib_scale`` may hold one value per batch: batches that differ like two
  sequencing platforms in depth (with ``dropout_type: batch``, also in dropout).

The ground truth (``layers["batchfree_*"]``) is free of every batch effect: no batch factors,
and the batch-specific technical parameters (library-size location/scale, batch dropout)
replaced by batch-free ones (see ``_batch_free``). Where a cell's batched and batch-free
expectations are identical (no batch effect), its truth counts are its measured counts.

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

from workflow_scripts.names import BATCH_KEY, LABEL_KEY, TRUTH_COUNTS, TRUTH_MEANS

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
    # library sizes (scalar or one value per batch)
    lib_loc: float | tuple[float, ...] = 11.0
    lib_scale: float | tuple[float, ...] = 0.2
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
    # "groups" (discrete cell types) or "paths" (continuous states: each group is a path)
    method: str = "groups"
    # paths (scalar, or one value per path for path_from, path_nSteps, path_skew)
    path_from: int | tuple[int, ...] = 0
    path_nSteps: int | tuple[int, ...] = 100
    path_skew: float | tuple[float, ...] = 0.5
    path_nonlinearProb: float = 0.1
    path_sigmaFac: float = 0.8
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
        covariates = tuple(CovariateParams(**{k: _as_tuple(v) for k, v in c.items()}) for c in params.pop("covariates", ()))
        return cls(**{k: _as_tuple(v) for k, v in params.items()}, covariates=covariates)

    def to_dict(self) -> dict:
        """JSON-serialisable form for ``uns["simulation"]``: no None, covariates keyed by name
        (the shapes ``.h5ad`` can store). With ``method: groups`` (the default), the method and
        the path parameters, which then play no part, are left out."""
        out = json.loads(json.dumps(dataclasses.asdict(self)))
        if self.method == "groups":
            for name in PATH_PARAMS:
                out.pop(name)
        out["covariates"] = {c.pop("name"): {k: v for k, v in c.items() if v is not None} for c in out["covariates"]}
        return out


PATH_PARAMS = ("method", "path_from", "path_nSteps", "path_skew", "path_nonlinearProb", "path_sigmaFac")


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
    de_fac: np.ndarray  # (groups, genes); for paths: the factor at each path's end
    covariate_fac: list[np.ndarray]  # each (levels, groups, genes)
    bcv_scale: np.ndarray  # per gene sqrt(df / chi2)
    dropout_mid: np.ndarray  # per cell
    dropout_shape: np.ndarray
    # batch-free technical parameters of the truth, per cell (the arrays above where no batch differs)
    free_lib_size: np.ndarray
    free_dropout_mid: np.ndarray
    free_dropout_shape: np.ndarray
    step: np.ndarray | None = None  # paths: per cell, 0-based step along its path
    path_fac: np.ndarray | None = None  # paths: (paths, steps, genes) DE factor at each step
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

    lib_size, free_lib_size = _library_sizes(params, rng, batch)

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
    if params.method == "paths":
        path_from = _path_from(params, n_groups)
        de_fac = np.ones((n_groups, n_genes))
        for p in _path_order(path_from):  # Splatter's splatSimPathDE: factors accumulate along paths
            local = lognormal_factors(rng, n_genes, *(d[p] for d in de))
            de_fac[p] = local * (de_fac[path_from[p] - 1] if path_from[p] else 1.0)
    else:
        de_fac = np.stack([lognormal_factors(rng, n_genes, *(d[g] for d in de)) for g in range(n_groups)])

    covariate_levels, covariate_fac = [], []
    for cov in params.covariates:
        n_levels = len(cov.levels)
        p = np.full(n_levels, 1.0 / n_levels) if cov.prob is None else np.asarray(cov.prob, dtype=float)
        covariate_levels.append(rng.choice(n_levels, size=n_cells, p=p))
        fac = np.ones((n_levels, n_groups, n_genes))
        for lvl in range(1, n_levels):
            draws = n_groups if cov.per_cell_type else 1
            fac[lvl] = [
                lognormal_factors(rng, n_genes, cov.gene_prob, cov.downProb, cov.facLoc, cov.facScale) for _ in range(draws)
            ]
        covariate_fac.append(fac)

    bcv_scale = (
        np.sqrt(params.bcv_df / rng.chisquare(params.bcv_df, n_genes)) if math.isfinite(params.bcv_df) else np.ones(n_genes)
    )

    n_drop = {"none": 1, "experiment": 1, "batch": n_batches, "group": n_groups}
    if params.dropout_type not in n_drop:
        raise ValueError(f"dropout_type must be one of {sorted(n_drop)}, got {params.dropout_type!r}")
    mid = _per_level(params.dropout_mid, n_drop[params.dropout_type], "dropout_mid")
    shape = _per_level(params.dropout_shape, n_drop[params.dropout_type], "dropout_shape")
    by = {"batch": batch, "group": group}.get(params.dropout_type, np.zeros(n_cells, dtype=int))
    free_mid, free_shape = mid[by], shape[by]
    if params.dropout_type == "batch":
        free_mid, free_shape = (np.full(n_cells, _batch_free(v)) for v in (mid, shape))

    extra_var = {
        "base_gene_mean": base_mean,
        "outlier_factor": outlier,
        "global_batch": global_batch,
        "batch_interaction": interacting,
    }
    step = path_fac = None
    if params.method == "paths":
        step, path_fac, extra_var["sigma_factor"] = _draw_paths(params, rng, group, path_from, de_fac)

    return _Design(
        batch=batch,
        group=group,
        covariate_levels=covariate_levels,
        lib_size=lib_size,
        gene_mean=gene_mean,
        batch_fac=batch_fac,
        de_fac=de_fac,
        covariate_fac=covariate_fac,
        bcv_scale=bcv_scale,
        dropout_mid=mid[by],
        dropout_shape=shape[by],
        free_lib_size=free_lib_size,
        free_dropout_mid=free_mid,
        free_dropout_shape=free_shape,
        step=step,
        path_fac=path_fac,
        extra_var=extra_var,
    )


def _batch_free(per_batch: np.ndarray) -> float:
    """The batch-free value of a technical parameter that differs between batches: the
    unweighted mean over batches.

    The truth must carry no batch effect, yet a library size and a dropout curve it must have:
    the mean describes a platform halfway between the batches (for ``lib_loc``, the geometric
    mean of the batches' median depths), does not depend on how many cells each batch has, and
    is the common value itself when the batches agree.
    """
    if (per_batch == per_batch[0]).all():
        return float(per_batch[0])  # exactly, not up to the rounding of a mean
    return float(np.mean(per_batch))


def _library_sizes(params: SplatParams, rng: np.random.Generator, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected library sizes (Splatter's ``splatSimLibSizes``), measured and batch-free.

    With one ``lib_loc``/``lib_scale`` for all batches both are the same array. With values per
    batch, a cell keeps its standard-normal deviate ``z`` (its depth relative to its batch) and
    its batch-free library size is drawn at the batch-free location and scale
    (``_batch_free``): ``exp(loc + scale * z)``, or ``loc + scale * z`` with ``lib_norm``.
    """
    n_batches = int(batch.max()) + 1
    loc = _per_level(params.lib_loc, n_batches, "lib_loc")
    scale = _per_level(params.lib_scale, n_batches, "lib_scale")
    if (loc == loc[0]).all() and (scale == scale[0]).all():
        if params.lib_norm:
            lib_size = rng.normal(loc[0], scale[0], batch.size)
            lib_size[lib_size <= 0] = lib_size[lib_size > 0].min()
        else:
            lib_size = rng.lognormal(loc[0], scale[0], batch.size)
        return lib_size, lib_size

    z = rng.standard_normal(batch.size)

    def draw(location, spread):
        size = location + spread * z
        if not params.lib_norm:
            return np.exp(size)
        size[size <= 0] = size[size > 0].min()
        return size

    return draw(loc[batch], scale[batch]), draw(_batch_free(loc), _batch_free(scale))


def _path_from(params: SplatParams, n_paths: int) -> np.ndarray:
    """Splatter's ``path.from`` (0 = origin, k = the end of path k), checked like Splatter."""
    path_from = _per_level(params.path_from, n_paths, "path_from")
    if (path_from != np.round(path_from)).any() or path_from.min() < 0 or path_from.max() > n_paths:
        raise ValueError(f"path_from must hold integers from 0 (the origin) to {n_paths} (the number of paths)")
    path_from = path_from.astype(int)
    if (path_from == np.arange(1, n_paths + 1)).any():
        raise ValueError("path_from: a path cannot begin at itself")
    if 0 not in path_from:
        raise ValueError("path_from: the origin (0) must start at least one path")
    return path_from


def _path_order(path_from: np.ndarray) -> list[int]:
    """0-based paths in an order where each starts from the origin or an earlier path
    (Splatter's ``getPathOrder``)."""
    done, order = {0}, []
    while len(order) < path_from.size:
        ready = [p for p in range(path_from.size) if p + 1 not in done and path_from[p] in done]
        if not ready:
            raise ValueError("path_from cannot contain cycles")
        for p in ready:
            done.add(p + 1)
            order.append(p)
    return order


def _bridges(
    rng: np.random.Generator, start: np.ndarray, end: np.ndarray, sigma_fac: np.ndarray, n: int, knots: int = 5
) -> np.ndarray:
    """Splatter's ``buildBridges``: one smoothed Brownian bridge per gene, (genes, n).

    A random walk of ``knots - 1`` normal steps, its standard deviation drawn uniform on
    ``[0, sigma_fac * mean(start, end)]``, pinned to ``start`` and ``end``, interpolated by a
    natural cubic spline at ``n`` equally spaced points; values below 0 become 1e-6. A gene with
    ``sigma_fac`` 0 moves linearly from ``start`` to ``end``.
    """
    from scipy.interpolate import CubicSpline

    t = np.linspace(0.0, 1.0, knots)
    sd = rng.uniform(0.0, sigma_fac * (start + end) / 2)
    walk = np.zeros((start.size, knots))
    walk[:, 1:] = np.cumsum(rng.standard_normal((start.size, knots - 1)) * sd[:, None] * np.sqrt(1.0 / (knots - 1)), axis=1)
    bridge = start[:, None] + walk - t * (walk[:, -1:] - end[:, None] + start[:, None])
    smooth = CubicSpline(t, bridge, axis=1, bc_type="natural")(np.linspace(0.0, 1.0, n))
    smooth[smooth < 0] = 1e-6
    return smooth


def _draw_paths(params: SplatParams, rng: np.random.Generator, group: np.ndarray, path_from: np.ndarray, de_fac: np.ndarray):
    """Splatter's ``splatSimPathCellMeans``: non-linear genes, the bridges of every path and each
    cell's step (0-based; Splatter's ``Step`` is this + 1)."""
    n_paths, n_genes = de_fac.shape
    n_steps = _per_level(params.path_nSteps, n_paths, "path_nSteps")
    skew = _per_level(params.path_skew, n_paths, "path_skew")
    if (n_steps != np.round(n_steps)).any() or n_steps.min() < 1:
        raise ValueError("path_nSteps must hold positive integers")
    if skew.min() < 0 or skew.max() > 1:
        raise ValueError("path_skew must lie in [0, 1]")
    n_steps = n_steps.astype(int)
    nonlinear = [rng.random(n_genes) < params.path_nonlinearProb for _ in range(n_paths)]
    sigma = np.where(nonlinear, params.path_sigmaFac, 0.0)
    path_fac = np.ones((n_paths, n_steps.max(), n_genes))
    for p in range(n_paths):
        start = de_fac[path_from[p] - 1] if path_from[p] else np.ones(n_genes)
        path_fac[p, : n_steps[p]] = _bridges(rng, start, de_fac[p], sigma[p], n_steps[p]).T
    step = np.zeros(group.size, dtype=int)
    for p in range(n_paths):
        cells = np.flatnonzero(group == p)
        probs = np.linspace(skew[p], 1 - skew[p], n_steps[p])
        if probs.sum() <= 0:  # one step and skew 0: the only step
            probs = np.ones(n_steps[p])
        step[cells] = rng.choice(n_steps[p], size=cells.size, p=probs / probs.sum())
    return step, path_fac, sigma


def _noisy_counts(
    rng: np.random.Generator, base: np.ndarray, design: _Design, params: SplatParams, mid: np.ndarray, shape_k: np.ndarray
) -> np.ndarray:
    """BCV gamma noise, Poisson counts and optional dropout (logistic midpoint ``mid`` and
    shape ``shape_k`` per cell) around expected means ``base``."""
    with np.errstate(divide="ignore"):
        bcv = (params.bcv_common + 1.0 / np.sqrt(base)) * design.bcv_scale
    shape = 1.0 / bcv**2
    means = rng.standard_gamma(shape.astype(np.float32), dtype=np.float32) * (base / shape)  # float32: 2x faster
    counts = rng.poisson(means).astype(np.float32)
    if params.dropout_type != "none":
        with np.errstate(divide="ignore", over="ignore"):
            eta = np.log(means)
            drop_prob = 1.0 / (1.0 + np.exp(-shape_k[:, None] * (eta - mid[:, None])))
        counts[rng.random(counts.shape) < drop_prob] = 0
    return counts


def _simulate_chunk(design: _Design, params: SplatParams, cells: np.ndarray, seed: np.random.SeedSequence):
    rng = np.random.default_rng(seed)
    g = design.group[cells]
    de = design.de_fac[g] if design.path_fac is None else design.path_fac[g, design.step[cells]]
    bio = design.gene_mean[None, :] * de
    for levels, fac in zip(design.covariate_levels, design.covariate_fac, strict=False):
        bio *= fac[levels[cells], g]
    batched = bio * design.batch_fac[design.batch[cells], g]
    base_batched = design.lib_size[cells, None] * batched / batched.sum(axis=1, keepdims=True)
    base_free = design.free_lib_size[cells, None] * bio / bio.sum(axis=1, keepdims=True)
    drop = design.dropout_mid[cells], design.dropout_shape[cells]
    free_drop = design.free_dropout_mid[cells], design.free_dropout_shape[cells]
    counts = _noisy_counts(rng, base_batched, design, params, *drop)
    # a cell without any batch effect measured its batch-free counts: reuse them
    same = (base_batched == base_free).all(axis=1)
    if params.dropout_type != "none":
        same &= (drop[0] == free_drop[0]) & (drop[1] == free_drop[1])
    if same.all():
        free_counts = counts
    else:
        free_counts = _noisy_counts(rng, base_free, design, params, *free_drop)
        free_counts[same] = counts[same]
    return sp.csr_matrix(counts), sp.csr_matrix(free_counts), base_free.astype(np.float32)


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
    if params.method not in ("groups", "paths"):
        raise ValueError(f"method must be 'groups' or 'paths', got {params.method!r}")
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
        for i, res in enumerate(pool.map(lambda a: _simulate_chunk(design, params, *a), zip(chunks, seeds, strict=False)), 1):
            results.append(res)
            if progress and (i == len(chunks) or i % max(1, len(chunks) // 4) == 0):
                print(f"simulate: {i}/{len(chunks)} chunks of cells, {time.perf_counter() - start:.1f} s", flush=True)
    counts, free_counts, free_means = zip(*results, strict=False)
    return _to_anndata(
        params, design, sp.vstack(counts, format="csr"), sp.vstack(free_counts, format="csr"), np.vstack(free_means)
    )


def _to_anndata(params: SplatParams, design: _Design, counts, free_counts, free_means) -> ad.AnnData:
    n_batches, n_groups = design.batch_fac.shape[:2]
    batches = [f"Batch{b + 1}" for b in range(n_batches)]
    groups = [f"{'Path' if params.method == 'paths' else 'Group'}{g + 1}" for g in range(n_groups)]
    obs = pd.DataFrame(index=[f"Cell{i + 1}" for i in range(counts.shape[0])])
    obs[BATCH_KEY] = pd.Categorical.from_codes(design.batch, batches)
    obs[LABEL_KEY] = pd.Categorical.from_codes(design.group, groups)
    for cov, levels in zip(params.covariates, design.covariate_levels, strict=False):
        obs[cov.name] = pd.Categorical.from_codes(levels, list(cov.levels))
    if design.step is not None:
        obs["step"] = design.step + 1  # Splatter's Step: 1 to path_nSteps
    obs["exp_lib_size"] = design.lib_size
    if design.free_lib_size is not design.lib_size:
        obs["batchfree_lib_size"] = design.free_lib_size  # what each batch-free means row sums to

    var = pd.DataFrame(index=[f"Gene{j + 1}" for j in range(params.nGenes)])
    var["base_gene_mean"] = design.extra_var["base_gene_mean"]
    var["outlier_factor"] = design.extra_var["outlier_factor"]
    var["gene_mean"] = design.gene_mean
    for g, name in enumerate(groups):
        var[f"de_factor_{name}"] = design.de_fac[g]  # paths: the factor at the path's end
    if "sigma_factor" in design.extra_var:
        for g, name in enumerate(groups):
            var[f"sigma_factor_{name}"] = design.extra_var["sigma_factor"][g]  # Splatter's SigmaFacPath
    for b, name in enumerate(batches):
        var[f"batch_factor_{name}"] = design.extra_var["global_batch"][b]
    if params.batch_interaction_prob > 0:
        var["batch_interaction"] = design.extra_var["batch_interaction"]
        for b, bname in enumerate(batches):
            for g, gname in enumerate(groups):
                var[f"batch_factor_{bname}__{gname}"] = design.batch_fac[b, g]
    for cov, fac in zip(params.covariates, design.covariate_fac, strict=False):
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
