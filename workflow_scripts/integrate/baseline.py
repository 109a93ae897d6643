"""What every method shares: the method result, the one preprocessing, and the unintegrated
control built from it.

Methods and controls both build on this module, so neither imports the other. A runner has the
signature ``run_<name>(adata, batch_key, label_key, *, seed, threads, **params) -> MethodResult``:
a dataset in the contract layout in (raw counts in sparse ``X``, or log values where the dataset
says ``counts: false``), no files read or written (``integrate.py`` does that).
"""

import importlib.metadata
from dataclasses import dataclass

import anndata as ad
import numpy as np
import scanpy as sc
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from workflow_scripts.contract import has_counts, log_expression

N_HVG = 2000  # scIB's and scVI's usual number of highly variable genes
N_COMPS = 30  # PCs of the shared embedding (Harmony's input, the unintegrated control)


@dataclass(frozen=True)
class MethodResult:
    """What one method returns.

    Attributes
    ----------
    embedding
        Cells x dimensions, in the input's cell order.
    corrected
        Cells x all genes of the dataset in log1p(CP10k) space (NaN columns for genes the method
        did not model), or None for a method that returns no expression.
    params
        The parameters the method ran with, defaults resolved (JSON-able, no None).
    version
        Version of the library that did the integration.
    model
        The trained model, for methods whose model later stages use (GENEX's explanations);
        it must have ``save(dir_path, overwrite=...)``.
    """

    embedding: np.ndarray
    corrected: np.ndarray | sp.spmatrix | None
    params: dict
    version: str
    model: object | None = None


@dataclass(frozen=True)
class Preprocessed:
    """The shared input of every method.

    Attributes
    ----------
    lognorm
        log1p(CP10k) of all genes, cells x genes, CSR.
    hvg
        Boolean mask over genes: the batch-aware highly variable genes (all genes when the
        dataset has no more than ``n_hvg``).
    """

    lognorm: sp.csr_matrix
    hvg: np.ndarray

    def hvg_pca(self, n_comps: int, seed: int) -> np.ndarray:
        """PCA of the log-normalised HVGs, unscaled as in scIB: the shared embedding."""
        return pca(self.lognorm[:, self.hvg], n_comps, seed)


def package_version(package: str) -> str:
    return importlib.metadata.version(package)


def capped_comps(n_comps: int, shape: tuple[int, int]) -> int:
    """``n_comps`` capped so that PCA is defined on a matrix of ``shape``."""
    return max(1, min(n_comps, shape[0] - 1, shape[1] - 1))


def pca(matrix, n_comps: int, seed: int) -> np.ndarray:
    """PCA scores (cells x components) of ``matrix``, ``n_comps`` capped by its size."""
    return sc.pp.pca(matrix, n_comps=capped_comps(n_comps, matrix.shape), random_state=seed, svd_solver="arpack").astype(
        np.float32
    )


def preprocess(adata: ad.AnnData, batch_key: str, n_hvg: int = N_HVG) -> Preprocessed:
    """Normalise and select HVGs per batch, the same way for every method.

    HVGs: Seurat v3 on the raw counts, batch-aware (``batch_key``), as scVI recommends; when the
    dataset's ``uns["dataset"]["counts"]`` is False its ``X`` is taken as already log-normalised
    and Cell Ranger's dispersion flavour on it is used instead.
    """
    counts = has_counts(adata)
    lognorm = log_expression(adata, dense=False)
    if adata.n_vars <= n_hvg:
        hvg = np.ones(adata.n_vars, dtype=bool)
    else:
        source = ad.AnnData(X=adata.X if counts else lognorm, obs=adata.obs[[batch_key]], var=adata.var[[]])
        flavor = "seurat_v3" if counts else "cell_ranger"
        table = sc.pp.highly_variable_genes(source, flavor=flavor, n_top_genes=n_hvg, batch_key=batch_key, inplace=False)
        hvg = table["highly_variable"].to_numpy(bool)
    return Preprocessed(lognorm=lognorm, hvg=hvg)


def all_genes(values: np.ndarray, hvg: np.ndarray) -> np.ndarray:
    """Cells x HVG values spread over all genes, NaN where the method did not model a gene."""
    if hvg.all():
        return np.asarray(values, dtype=np.float32)
    out = np.full((values.shape[0], hvg.size), np.nan, dtype=np.float32)
    out[:, hvg] = values
    return out


def run_unintegrated(adata, batch_key, label_key, *, seed, threads, n_hvg=N_HVG, n_comps=N_COMPS) -> MethodResult:
    """The control: PCA of log1p(CP10k) of the HVGs, nothing removed.

    ``corrected`` is the log-normalised data itself (all genes), so expression-level scores have
    the uncorrected data as their baseline in the same format as the methods.
    """
    with threadpool_limits(threads):
        prep = preprocess(adata, batch_key, n_hvg)
        embedding = prep.hvg_pca(n_comps, seed)
    params = dict(n_hvg=int(prep.hvg.sum()), n_comps=embedding.shape[1])
    return MethodResult(embedding=embedding, corrected=prep.lognorm, params=params, version=package_version("scanpy"))
