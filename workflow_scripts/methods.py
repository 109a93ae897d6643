"""The competitor integration methods and the unintegrated control, as pure functions.

Each ``run_<method>(adata, batch_key, label_key, *, seed, threads, **params)`` takes a dataset in
the contract layout (raw counts in sparse ``X``) and returns a :class:`MethodResult`; it reads and
writes no files (``integrate.py`` does). All methods share one preprocessing
(:func:`preprocess`: the project's log1p CP10k and batch-aware HVGs; PCA of those HVGs where a
method needs one), so differences between
them come from the methods, not from how their input was prepared.

Genes of the corrected expression: ComBat corrects all genes; scVI and Scanorama model the HVGs,
which are all genes whenever the dataset has no more genes than ``n_hvg`` (the default benchmark
has 1,000). Genes a method did not model are NaN columns of ``corrected``, never copied input.
"""

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass

import anndata as ad
import numpy as np
import scanpy as sc
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from genex_core.preprocessing import TARGET_SUM, log_normalize
from workflow_scripts.controls import run_shuffled, run_truth

N_HVG = 2000  # scIB's and scVI's usual number of highly variable genes
N_COMPS = 30  # PCs of the shared embedding (Harmony's input, the unintegrated control)
SCANORAMA_DIMRED = 100  # scanorama's default embedding size


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


def _version(package: str) -> str:
    return importlib.metadata.version(package)


def _n_comps(n_comps: int, shape: tuple[int, int]) -> int:
    """``n_comps`` capped so that PCA is defined on a matrix of ``shape``."""
    return max(1, min(n_comps, shape[0] - 1, shape[1] - 1))


def pca(matrix, n_comps: int, seed: int) -> np.ndarray:
    """PCA scores (cells x components) of ``matrix``, ``n_comps`` capped by its size."""
    return sc.pp.pca(matrix, n_comps=_n_comps(n_comps, matrix.shape), random_state=seed, svd_solver="arpack").astype(np.float32)


def preprocess(adata: ad.AnnData, batch_key: str, n_hvg: int = N_HVG) -> Preprocessed:
    """Normalise and select HVGs per batch, the same way for every method.

    HVGs: Seurat v3 on the raw counts, batch-aware (``batch_key``), as scVI recommends; when the
    dataset's ``uns["dataset"]["counts"]`` is False its ``X`` is taken as already log-normalised
    and Cell Ranger's dispersion flavour on it is used instead.
    """
    counts = adata.uns.get("dataset", {}).get("counts", True)
    lognorm = log_normalize(adata.X) if counts else sp.csr_matrix(adata.X, dtype=np.float32)
    if adata.n_vars <= n_hvg:
        hvg = np.ones(adata.n_vars, dtype=bool)
    else:
        source = ad.AnnData(X=adata.X if counts else lognorm, obs=adata.obs[[batch_key]], var=adata.var[[]])
        flavor = "seurat_v3" if counts else "cell_ranger"
        table = sc.pp.highly_variable_genes(source, flavor=flavor, n_top_genes=n_hvg, batch_key=batch_key, inplace=False)
        hvg = table["highly_variable"].to_numpy(bool)
    return Preprocessed(lognorm=lognorm, hvg=hvg)


def _all_genes(values: np.ndarray, hvg: np.ndarray) -> np.ndarray:
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
    return MethodResult(embedding=embedding, corrected=prep.lognorm, params=params, version=_version("scanpy"))


def run_harmony(adata, batch_key, label_key, *, seed, threads, n_hvg=N_HVG, n_comps=N_COMPS) -> MethodResult:
    """Harmony (harmonypy) on the shared PCA; an embedding only, no expression.

    harmonypy 2.x takes and returns cells x PCs; the orientation of ``Z_corr`` is checked rather
    than assumed, because a transposed embedding would silently score as garbage.
    """
    import harmonypy

    with threadpool_limits(threads):
        prep = preprocess(adata, batch_key, n_hvg)
        embedding = prep.hvg_pca(n_comps, seed)
        result = harmonypy.run_harmony(
            embedding, adata.obs[[batch_key]], [batch_key], random_state=seed, ncores=threads, verbose=False
        )
    z = np.asarray(result.Z_corr)
    if z.shape != embedding.shape:
        z = z.T
    if z.shape != embedding.shape:
        raise ValueError(f"harmonypy returned Z_corr of shape {z.shape} for a PCA of shape {embedding.shape}")
    params = dict(n_hvg=int(prep.hvg.sum()), n_comps=embedding.shape[1])
    return MethodResult(embedding=z.astype(np.float32), corrected=None, params=params, version=_version("harmonypy"))


def run_combat(adata, batch_key, label_key, *, seed, threads, n_hvg=N_HVG, n_comps=N_COMPS) -> MethodResult:
    """ComBat (``scanpy.pp.combat``) on log1p(CP10k) of all genes; embedding = PCA of the
    corrected HVGs (the same genes and number of PCs as the unintegrated control)."""
    with threadpool_limits(threads):
        prep = preprocess(adata, batch_key, n_hvg)
        data = ad.AnnData(X=prep.lognorm.toarray(), obs=adata.obs[[batch_key]].copy())
        corrected = np.asarray(sc.pp.combat(data, key=batch_key, inplace=False), dtype=np.float32)
        if not np.isfinite(corrected).all():
            raise ValueError(f"ComBat returned {int((~np.isfinite(corrected)).sum())} non-finite values")
        embedding = pca(corrected[:, prep.hvg], n_comps, seed)
    params = dict(n_hvg=int(prep.hvg.sum()), n_comps=embedding.shape[1])
    return MethodResult(embedding=embedding, corrected=corrected, params=params, version=_version("scanpy"))


def run_scanorama(adata, batch_key, label_key, *, seed, threads, n_hvg=N_HVG) -> MethodResult:
    """Scanorama (``scanorama.correct``) on log1p(CP10k) of the HVGs.

    Scanorama needs each batch as one block, so cells are grouped by batch and mapped back to
    the input order afterwards; it also sorts the genes, which are mapped back by name.
    Scanorama corrects cells scaled to unit L2 norm; each corrected cell is multiplied by the
    norm its log-normalised profile had, which returns it to log1p(CP10k) scale (exactly the
    input where the correction is zero). Embedding: ``X_scanorama`` (its default 100 dimensions,
    capped by the data).
    """
    import scanorama

    batches = adata.obs[batch_key].astype(str).to_numpy()
    blocks = [np.flatnonzero(batches == b) for b in np.unique(batches)]
    order = np.concatenate(blocks)
    with threadpool_limits(threads):
        prep = preprocess(adata, batch_key, n_hvg)
        genes = adata.var_names[prep.hvg].to_numpy()
        data = prep.lognorm[:, prep.hvg]
        dimred = _n_comps(SCANORAMA_DIMRED, data.shape)
        embedded, corrected, out_genes = scanorama.correct(
            [data[idx] for idx in blocks],
            [genes] * len(blocks),
            return_dimred=True,
            return_dense=True,
            dimred=dimred,
            seed=seed,
            verbose=False,
        )
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    column = {g: i for i, g in enumerate(out_genes)}
    corrected = np.vstack(corrected)[inverse][:, [column[g] for g in genes]]
    norms = np.sqrt(np.asarray(data.multiply(data).sum(axis=1)))
    corrected = corrected * norms
    params = dict(n_hvg=int(prep.hvg.sum()), dimred=dimred)
    embedding = np.vstack(embedded)[inverse].astype(np.float32)
    corrected = _all_genes(corrected, prep.hvg)
    return MethodResult(embedding=embedding, corrected=corrected, params=params, version=_version("scanorama"))


def run_scvi(adata, batch_key, label_key, *, seed, threads, n_hvg=N_HVG, max_epochs=None) -> MethodResult:
    """scVI (scvi-tools defaults) on the raw counts of the HVGs.

    Embedding: the latent posterior mean. Corrected: the decoded expression at 10,000 counts per
    cell, averaged over every batch (``transform_batch`` = all batches), then log1p — the
    project's log1p(CP10k) scale. ``max_epochs=None`` keeps scvi-tools' heuristic (400 epochs
    below 20,000 cells); the benchmark sets it to fit its time budget.
    """
    import scvi
    import torch

    if not adata.uns.get("dataset", {}).get("counts", True):
        raise ValueError("scVI models raw counts, and this dataset declares `counts: false`")
    with threadpool_limits(threads):
        prep = preprocess(adata, batch_key, n_hvg)
        torch.set_num_threads(threads)
        scvi.settings.seed = seed
        counts = sp.csr_matrix(adata.X[:, prep.hvg])
        data = ad.AnnData(X=counts, obs=adata.obs[[batch_key]].copy(), var=adata.var[[]].iloc[prep.hvg])
        scvi.model.SCVI.setup_anndata(data, batch_key=batch_key)
        model = scvi.model.SCVI(data)
        model.train(max_epochs=max_epochs, enable_progress_bar=False)
        embedding = model.get_latent_representation()
        levels = data.obs[batch_key].astype("category").cat.categories.tolist()
        expression = model.get_normalized_expression(transform_batch=levels, library_size=TARGET_SUM, return_numpy=True)
    params = dict(n_hvg=int(prep.hvg.sum()), max_epochs=len(model.history["elbo_train"]), n_latent=embedding.shape[1])
    return MethodResult(
        embedding=embedding.astype(np.float32),
        corrected=_all_genes(np.log1p(expression), prep.hvg),
        params=params,
        version=_version("scvi-tools"),
    )


def run_genex(adata, batch_key, label_key, *, seed, threads, mode="label-conditioned", device="auto", **train_args) -> MethodResult:
    """GENEX (``genex_core``) on the raw counts of all genes, conditioned on the batch, the
    cell type (``mode="label-conditioned"``, the published default; ``"label-free"`` ignores
    labels) and the dataset's covariates (``uns["dataset"]["covariates"]``), so that the
    discriminator has a classifier head to explain for each of them.

    Embedding: the encoder's latent of the corrected cell. Corrected: every cell translated to
    the trained neutral batch code, log1p(CP10k). ``train_args`` go to :meth:`genex_core.GENEX.train`
    (``max_epochs``, ``batch_size``, ``lr``...); ``params`` records the mode, the set-up and the
    training arguments as run.
    """
    import torch

    from genex_core import GENEX

    if not adata.uns.get("dataset", {}).get("counts", True):
        raise ValueError("GENEX normalises raw counts, and this dataset declares `counts: false`")
    if mode not in ("label-conditioned", "label-free"):
        raise ValueError(f"GENEX mode must be 'label-conditioned' or 'label-free', got {mode!r}")
    covariates = list(adata.uns.get("dataset", {}).get("covariates", []))
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        model = GENEX(adata, batch_key=batch_key, label_key=label_key if mode == "label-conditioned" else None, covariate_keys=covariates)
        model.train(seed=seed, device=device, progress=False, **train_args)
        embedding = model.get_latent_representation()
        corrected = model.get_corrected_expression()
    info = _json_safe(model.info)
    return MethodResult(embedding=embedding, corrected=corrected, params=info, version=_version("genex-benchmark"), model=model)


def _json_safe(value):
    """Tuples to lists and None dropped, recursively: what ``uns`` can store."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


METHODS: dict[str, Callable[..., MethodResult]] = {
    "unintegrated": run_unintegrated,
    "harmony": run_harmony,
    "scvi": run_scvi,
    "combat": run_combat,
    "scanorama": run_scanorama,
    "genex": run_genex,
    # controls: run_unintegrated on altered counts (controls.py), run like the methods
    "truth": run_truth,
    "shuffled": run_shuffled,
}
EXPRESSION_METHODS = frozenset({"unintegrated", "scvi", "combat", "scanorama", "genex", "truth", "shuffled"})
CONTROLS = frozenset({"truth", "shuffled", "unintegrated"})
