"""Positive and negative controls of the benchmark, with the signature of the methods.

``truth`` is what a perfect batch-effect removal would return: the simulation's batch-free counts,
normalised like every method's input. ``shuffled`` keeps the batch effect and destroys the
biology: each cell gets another cell's profile from its own batch. Every score should place the
methods between the two; one that does not is a broken score, not a good method.

Both are :func:`workflow_scripts.integrate.baseline.run_unintegrated` on altered counts, so they share its
preprocessing, HVGs, PCA and parameters exactly.
"""

import dataclasses

import anndata as ad
import numpy as np

from workflow_scripts.integrate.baseline import run_unintegrated
from workflow_scripts.names import TRUTH_COUNTS


def _with_counts(adata: ad.AnnData, counts) -> ad.AnnData:
    """``adata``'s cells, genes and dataset record with ``counts`` as ``X``."""
    return ad.AnnData(X=counts, obs=adata.obs, var=adata.var[[]], uns=dict(adata.uns))


def run_truth(adata, batch_key, label_key, *, seed, threads, **params):
    """Positive control: the batch-free counts of a simulation as the corrected data.

    Corrected: log1p(CP10k) of ``layers["batchfree_counts"]``, all genes, dense float32 (the
    counts, not the noise-free means, so that it carries the sampling noise every method's input
    has). Embedding: their PCA, as the unintegrated control makes it. ``params`` are
    :func:`~workflow_scripts.integrate.baseline.run_unintegrated`'s (``n_hvg``, ``n_comps``).

    Raises
    ------
    ValueError
        When the dataset has no batch-free counts (it is not a simulation).
    """
    if TRUTH_COUNTS not in adata.layers:
        raise ValueError(f"truth control needs layers['{TRUTH_COUNTS}'] (simulated data)")
    result = run_unintegrated(
        _with_counts(adata, adata.layers[TRUTH_COUNTS]), batch_key, label_key, seed=seed, threads=threads, **params
    )
    return dataclasses.replace(result, corrected=result.corrected.toarray())


def within_batch_permutation(batches: np.ndarray, seed: int) -> np.ndarray:
    """Cell order that moves each cell's profile to a random cell of the same batch.

    Row ``i`` of ``X[order]`` is cell ``order[i]``'s profile, and ``order[i]`` is in ``i``'s batch,
    so every batch keeps its multiset of profiles (its batch effect) while labels lose their cells.
    """
    rng = np.random.default_rng(seed)
    order = np.arange(batches.size)
    for batch in np.unique(batches):
        cells = np.flatnonzero(batches == batch)
        order[cells] = rng.permutation(cells)
    return order


def run_shuffled(adata, batch_key, label_key, *, seed, threads, **params):
    """Negative control: the unintegrated data with the cell types' structure destroyed.

    The counts' rows are permuted within each batch (:func:`within_batch_permutation`, seeded by
    ``seed``) while ``obs`` stays, then processed as the unintegrated control: corrected = the
    permuted log1p(CP10k), embedding = its PCA. Per-batch gene statistics, hence the HVGs, are
    those of the unintegrated data. ``params`` are those of
    :func:`~workflow_scripts.integrate.baseline.run_unintegrated`.
    """
    order = within_batch_permutation(adata.obs[batch_key].astype(str).to_numpy(), seed)
    return run_unintegrated(_with_counts(adata, adata.X[order]), batch_key, label_key, seed=seed, threads=threads, **params)
