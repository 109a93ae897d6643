"""The integration methods compared in the benchmark, as pure functions (runners).

Each ``run_<method>`` has the signature in :mod:`workflow_scripts.integrate.baseline` and is registered
in :mod:`workflow_scripts.registry`. All share one preprocessing (:func:`preprocess`: log1p
CP10k and batch-aware HVGs; PCA of those HVGs where a method needs one), so differences between
them come from the methods, not from how their input was prepared.

Genes of the corrected expression: ComBat and ``label_shift`` correct all genes; scVI, scANVI and
Scanorama model the HVGs, which are all genes whenever the dataset has no more genes than
``n_hvg`` (the default benchmark has 1,000). Genes a method did not model are NaN columns of
``corrected``, never copied input.
"""

import anndata as ad
import numpy as np
import scanpy as sc
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from genex_core.preprocessing import TARGET_SUM
from workflow_scripts.integrate.baseline import (
    N_COMPS,
    N_HVG,
    MethodResult,
    all_genes,
    capped_comps,
    package_version,
    pca,
    preprocess,
)

SCANORAMA_DIMRED = 100  # scanorama's default embedding size


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
    return MethodResult(embedding=z.astype(np.float32), corrected=None, params=params, version=package_version("harmonypy"))


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
    return MethodResult(embedding=embedding, corrected=corrected, params=params, version=package_version("scanpy"))


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
        dimred = capped_comps(SCANORAMA_DIMRED, data.shape)
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
    corrected = all_genes(corrected, prep.hvg)
    return MethodResult(embedding=embedding, corrected=corrected, params=params, version=package_version("scanorama"))


def run_label_shift(adata, batch_key, label_key, *, seed, threads, n_hvg=N_HVG, n_comps=N_COMPS) -> MethodResult:
    """The closed-form within-label location shift: the bar a label-using method must clear.

    On log1p(CP10k) of all genes, each cell's nonzero values move by its (batch, label) group's
    shift (:func:`label_shifts`), then ReLU; zeros stay zero, so no gene gains expression it did
    not have. Embedding: PCA of the corrected HVGs, as ComBat's. Milliseconds, no training.
    """
    with threadpool_limits(threads):
        prep = preprocess(adata, batch_key, n_hvg)
        batches = adata.obs[batch_key].astype("category").cat.codes.to_numpy()
        labels = adata.obs[label_key].astype("category").cat.codes.to_numpy()
        shifts = label_shifts(prep.lognorm, batches, labels)
        corrected = prep.lognorm.copy()
        rows = np.repeat(batches * (labels.max() + 1) + labels, np.diff(corrected.indptr))  # group of each stored value
        corrected.data -= shifts[rows, corrected.indices]
        np.maximum(corrected.data, 0, out=corrected.data)
        corrected.eliminate_zeros()
        embedding = pca(corrected[:, prep.hvg], n_comps, seed)
    params = dict(n_hvg=int(prep.hvg.sum()), n_comps=embedding.shape[1])
    return MethodResult(embedding=embedding, corrected=corrected, params=params, version=package_version("genex-benchmark"))


def label_shifts(values: sp.csr_matrix, batches: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-(batch, label) shift of every gene, shape (n_batches * n_labels, genes), row b * L + l.

    The raw shift of group (b, l) is its mean minus the mean over batches of the label's group
    means. It is shrunk toward the batch's own shift (the cell-weighted mean of its raw shifts
    over labels found in two or more batches) by empirical Bayes, per gene, as ComBat shrinks
    its batch parameters: weight tau^2 / (tau^2 + sigma^2 / n), with sigma^2 the pooled
    within-group variance and tau^2 the spread of the raw shifts around the batch shift beyond
    sampling noise. A label found in one batch only has no raw shift (its anchor is itself) and
    takes its batch's shift.
    """
    n_b, n_l = batches.max() + 1, labels.max() + 1
    group = batches * n_l + labels
    onehot = sp.csr_matrix((np.ones(group.size), (group, np.arange(group.size))), shape=(n_b * n_l, group.size))
    n = np.asarray(onehot.sum(axis=1)).ravel()
    present = n > 0
    safe_n = np.maximum(n, 1)[:, None]
    mean = np.asarray((onehot @ values).todense()) / safe_n
    sq = np.asarray((onehot @ values.multiply(values)).todense()) / safe_n
    within = (sq - mean**2) * n[:, None]  # sum of squares within each group
    sigma2 = within.sum(axis=0) / max(group.size - present.sum(), 1)

    mean3, present2 = mean.reshape(n_b, n_l, -1), present.reshape(n_b, n_l)
    target = (mean3 * present2[..., None]).sum(axis=0) / np.maximum(present2.sum(axis=0), 1)[:, None]
    raw = mean3 - target[None]  # (batch, label, gene)
    shared = present2 & (present2.sum(axis=0) >= 2)[None, :]
    weight = n.reshape(n_b, n_l) * shared
    batch_shift = (raw * weight[..., None]).sum(axis=1) / np.maximum(weight.sum(axis=1), 1)[:, None]
    deviation = raw - batch_shift[:, None, :]
    noise = sigma2[None, None, :] / np.maximum(n.reshape(n_b, n_l), 1)[..., None]
    tau2 = np.maximum(((deviation**2 - noise) * shared[..., None]).sum(axis=(0, 1)) / max(shared.sum(), 1), 0.0)
    shrink = np.where(shared[..., None], tau2 / np.maximum(tau2 + noise, 1e-12), 0.0)
    return (batch_shift[:, None, :] + shrink * deviation).reshape(n_b * n_l, -1).astype(np.float32)


def scvi_input(adata, batch_key, label_key, n_hvg=N_HVG) -> ad.AnnData:
    """The raw counts of the HVGs with the batch and label columns: what scVI is trained on,
    and what its saved model carries for scANVI and the DE stage."""
    prep = preprocess(adata, batch_key, n_hvg)
    keys = [batch_key] + ([label_key] if label_key and label_key != batch_key else [])
    return ad.AnnData(X=sp.csr_matrix(adata.X[:, prep.hvg]), obs=adata.obs[keys].copy(), var=adata.var[[]].iloc[prep.hvg])


def _scvi_outputs(model, data, batch_key, hvg_genes, all_names, extra: dict) -> MethodResult:
    """Latent mean as embedding; expression decoded at 10,000 counts per cell averaged over
    every batch (``transform_batch`` = all batches), log1p — the project's log1p(CP10k)."""
    embedding = model.get_latent_representation()
    levels = data.obs[batch_key].cat.categories.tolist()
    expression = model.get_normalized_expression(transform_batch=levels, library_size=TARGET_SUM, return_numpy=True)
    hvg = np.isin(all_names, hvg_genes)
    params = dict(n_hvg=int(hvg.sum()), n_latent=embedding.shape[1], **extra)
    return MethodResult(
        embedding=embedding.astype(np.float32),
        corrected=all_genes(np.log1p(expression), hvg),
        params=params,
        version=package_version("scvi-tools"),
        model=_WithData(model),
    )


class _WithData:
    """A scvi-tools model saved with its training AnnData, so later stages load it as trained."""

    def __init__(self, model):
        self.model = model

    def save(self, dir_path, overwrite: bool = False) -> None:
        self.model.save(str(dir_path), overwrite=overwrite, save_anndata=True)


def run_scvi(adata, batch_key, label_key, *, seed, threads, n_hvg=N_HVG, max_epochs=None) -> MethodResult:
    """scVI at scvi-tools' defaults (``max_epochs=None``: its own heuristic, 400 epochs below
    20,000 cells) on the raw counts of the HVGs. The trained model is saved for scANVI and the
    DE and explanation stages, so scVI is trained once per dataset."""
    import scvi
    import torch

    torch.set_num_threads(threads)
    scvi.settings.seed = seed
    with threadpool_limits(threads):
        data = scvi_input(adata, batch_key, label_key, n_hvg)
        scvi.model.SCVI.setup_anndata(data, batch_key=batch_key)
        model = scvi.model.SCVI(data)
        model.train(max_epochs=max_epochs, enable_progress_bar=False)
        epochs = len(model.history["elbo_train"])
        return _scvi_outputs(model, data, batch_key, data.var_names, adata.var_names, dict(max_epochs=epochs))


def run_scanvi(adata, batch_key, label_key, *, seed, threads, pretrained, max_epochs=None) -> MethodResult:
    """scANVI (``SCANVI.from_scvi_model``) on the dataset's trained scVI (``pretrained``, its
    saved model), every label given; scvi-tools' own epoch choice for a pretrained model
    (``max_epochs=None``). Outputs as scVI's."""
    import scvi
    import torch

    torch.set_num_threads(threads)
    scvi.settings.seed = seed
    with threadpool_limits(threads):
        base = scvi.model.SCVI.load(str(pretrained))
        if not base.adata.obs_names.equals(adata.obs_names) or label_key not in base.adata.obs:
            raise ValueError(
                f"the scVI model in {pretrained} was trained on other cells or without '{label_key}'; re-run integrate_scvi"
            )
        model = scvi.model.SCANVI.from_scvi_model(base, unlabeled_category="unlabeled", labels_key=label_key)
        model.train(max_epochs=max_epochs, enable_progress_bar=False)
        epochs = len(model.history["elbo_train"])
        return _scvi_outputs(model, model.adata, batch_key, model.adata.var_names, adata.var_names, dict(max_epochs=epochs))


def run_genex(adata, batch_key, label_key, *, seed, threads, device="auto", **train_args) -> MethodResult:
    """GENEX (``genex_core``) on the raw counts of all genes, conditioned on the batch, the cell
    type (``label_key``; None is its label-free mode) and the dataset's covariates
    (``uns["dataset"]["covariates"]``), so that the discriminator has a classifier head to explain
    for each of them.

    Embedding: PCA of the corrected HVGs, as ComBat's and ``label_shift``'s (the encoder's latent
    of the corrected cell kept cell types apart poorly: 15-NN cell-type accuracy 0.66 against 1.0
    for the corrected values, ``benchmarks/genex_vs_scvi.py``). Corrected: every cell translated to
    the neutral batch code, log1p(CP10k); the covariates are explained, not corrected, unless
    ``correct_covariates: true``. ``correct_covariates``, ``n_groups`` (label-free), ``hidden`` and ``equalise_zeros``
    go to :class:`genex_core.GENEX`, the other ``train_args`` to :meth:`genex_core.GENEX.train`
    (``max_epochs``, ``batch_size``, ``lr``, ``adversarial``, ``recipe``...); ``params`` records
    the set-up and the training arguments as run.
    """
    import torch

    from genex_core import GENEX

    covariates = list(adata.uns.get("dataset", {}).get("covariates", []))
    model_args = {k: train_args.pop(k) for k in ("correct_covariates", "n_groups", "hidden", "equalise_zeros") if k in train_args}
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        model = GENEX(adata, batch_key=batch_key, label_key=label_key, covariate_keys=covariates, **model_args)
        model.train(seed=seed, device=device, progress=False, **train_args)
        corrected = model.get_corrected_expression()
        embedding = pca(corrected[:, preprocess(adata, batch_key).hvg], N_COMPS, seed)
    info = _json_safe(model.info)
    return MethodResult(
        embedding=embedding, corrected=corrected, params=info, version=package_version("genex-benchmark"), model=model
    )


def run_genex_label_free(adata, batch_key, label_key, *, seed, threads, **params) -> MethodResult:
    """GENEX without the labels (its ``label-free`` mode): ranked with the label-free methods."""
    return run_genex(adata, batch_key, None, seed=seed, threads=threads, **params)


def run_genex_published(adata, batch_key, label_key, *, seed, threads, **params) -> MethodResult:
    """GENEX as the paper trained it (``recipe="published"``: its widths, losses, batch and
    epochs; meant for a GPU), to run beside the default in ``config/paper.yaml``."""
    return run_genex(adata, batch_key, label_key, seed=seed, threads=threads, recipe="published", **params)


def _json_safe(value):
    """Tuples to lists and None dropped, recursively: what ``uns`` can store."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
