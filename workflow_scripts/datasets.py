"""Make ``results/<dataset>/data.h5ad`` from a config entry: simulate, read an .h5ad, or
import a folder in the Splatter export format. Rule ``dataset`` runs this file."""

import os
import re
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.io
import scipy.sparse as sp

from workflow_scripts.contract import BATCH_KEY, LABEL_KEY, TRUTH_MEANS, DatasetError, to_contract
from workflow_scripts.simulate import simulate

SPLATTER_FILES = ("counts.mtx.gz", "cells.csv", "genes.csv")
SPLATTER_OPTIONAL = ("genes_extra.csv", "batchfree_means.mtx.gz")


def read_splatter_dir(folder: str | Path) -> ad.AnnData:
    """Read Splatter's output exported as MatrixMarket + CSV (``shared/reference`` layout).

    ``Batch``/``Group`` become ``obs["batch"]``/``obs["cell_type"]``, ``DEFac<g>`` columns
    ``var["de_factor_<g>"]``, ``BatchFac<b>`` columns ``var["batch_factor_<b>"]`` and the
    batch-free means ``layers["batchfree_means"]``. Splatter exports no batch-free counts, so
    the metrics that need them are not applicable to such a dataset.
    """
    folder = Path(folder)
    missing = [f for f in SPLATTER_FILES if not (folder / f).exists()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a Splatter export: missing {missing} (needs {SPLATTER_FILES})")
    cells = pd.read_csv(folder / "cells.csv", index_col="Cell")
    genes = pd.read_csv(folder / "genes.csv", index_col="Gene")
    if (folder / "genes_extra.csv").exists():
        genes = genes.join(pd.read_csv(folder / "genes_extra.csv", index_col="Gene"), rsuffix="_extra")
    counts = sp.csr_matrix(scipy.io.mmread(folder / "counts.mtx.gz"), dtype=np.float32)

    obs = pd.DataFrame({BATCH_KEY: cells["Batch"].astype(str), LABEL_KEY: cells["Group"].astype(str)}, index=cells.index.astype(str))
    var = pd.DataFrame(index=genes.index.astype(str))
    for column in genes.columns:
        if m := re.fullmatch(r"DEFac(.+)", column):
            var[f"de_factor_{m[1]}"] = genes[column].to_numpy(float)
        elif m := re.fullmatch(r"BatchFac(.+)", column):
            var[f"batch_factor_{m[1]}"] = genes[column].to_numpy(float)
        else:
            var[column] = genes[column].to_numpy()
    adata = ad.AnnData(X=counts, obs=obs, var=var)
    if (folder / "batchfree_means.mtx.gz").exists():
        adata.layers[TRUTH_MEANS] = np.asarray(scipy.io.mmread(folder / "batchfree_means.mtx.gz"), dtype=np.float32)
    return adata


def load_dataset(name: str, spec: dict, threads: int = 1) -> ad.AnnData:
    """The contract-form AnnData of one ``datasets:`` entry of the config."""
    keys = {
        "batch_key": spec.get("batch_key", BATCH_KEY),
        "label_key": spec.get("label_key", LABEL_KEY),
        "covariates": spec.get("covariates", []),
        "counts": spec.get("counts", True),
    }
    if "simulate" in spec:
        params = spec["simulate"]
        adata = simulate(params, n_threads=threads, progress=True)
        keys["covariates"] = keys["covariates"] or [c["name"] for c in params.get("covariates", [])]
        source = "simulate"
    elif "h5ad" in spec:
        adata = ad.read_h5ad(spec["h5ad"])
        source = str(spec["h5ad"])
    elif "splatter_dir" in spec:
        adata = read_splatter_dir(spec["splatter_dir"])
        source = str(spec["splatter_dir"])
    else:
        raise DatasetError(name, "config", "names no source", "Give one of `simulate`, `h5ad` or `splatter_dir`.")
    if "filter" in spec:
        adata = filter_cells_and_genes(adata, **spec["filter"])
    return to_contract(adata, name, source=source, **keys)


def filter_cells_and_genes(adata: ad.AnnData, min_genes: int = 0, min_cells: int = 0) -> ad.AnnData:
    """scanpy's usual QC filter, as the GENEX paper ran it (``min_genes=200, min_cells=3``):
    cells with fewer than ``min_genes`` detected genes go first, then genes detected in fewer
    than ``min_cells`` of the remaining cells. Truth layers and gene factors follow."""
    cells, _ = sc.pp.filter_cells(adata, min_genes=min_genes, inplace=False)
    adata = adata[cells]
    genes, _ = sc.pp.filter_genes(adata, min_cells=min_cells, inplace=False)
    return adata[:, genes].copy()


def write_h5ad_atomic(adata: ad.AnnData, path: str | Path) -> None:
    """Write next to ``path`` and rename into place, so no half-written file survives."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        adata.write_h5ad(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def prepare_dataset(name: str, spec: dict, output: str | Path, threads: int = 1) -> ad.AnnData:
    """Load, validate and write one dataset; prints a one-line summary."""
    start = time.perf_counter()
    adata = load_dataset(name, spec, threads)
    write_h5ad_atomic(adata, output)
    info = adata.uns["dataset"]
    print(
        f"dataset '{name}': {adata.n_obs} cells x {adata.n_vars} genes, "
        f"{adata.obs[info['batch_key']].nunique()} batches, {adata.obs[info['label_key']].nunique()} cell types, "
        f"truth layers {sorted(adata.layers)}; {time.perf_counter() - start:.1f} s -> {output}",
        flush=True,
    )
    return adata


if __name__ == "__main__":
    from workflow_scripts.rule_log import log_to_file

    smk = snakemake  # noqa: F821 (injected by Snakemake's script: directive)
    with log_to_file(smk.log[0]):
        prepare_dataset(smk.wildcards.dataset, smk.params.spec, smk.output[0], smk.threads)
