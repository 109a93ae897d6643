"""Make ``results/<dataset>/data.h5ad`` from a config entry: simulate, read an .h5ad, or
import a folder in the Splatter export format. Rule ``dataset`` runs this file."""

import re
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.io
import scipy.sparse as sp
import scipy.stats

from workflow_scripts.atomic import write_h5ad_atomic
from workflow_scripts.contract import DatasetError, to_contract
from workflow_scripts.data.simulate import simulate
from workflow_scripts.names import BATCH_KEY, LABEL_KEY, TRUTH_MEANS, UNLABELLED

SPLATTER_FILES = ("counts.mtx.gz", "cells.csv", "genes.csv")
SPLATTER_OPTIONAL = ("genes_extra.csv", "batchfree_means.mtx.gz")
SPLATTER_COLUMNS = {"cells.csv": ("Cell", "Batch", "Group"), "genes.csv": ("Gene",)}
GENE_MEAN_COLUMNS = ("BaseGeneMean", "GeneMean")  # Splatter's rowData: a gene's simulated mean


def _read_csv(folder: Path, name: str, dataset: str) -> pd.DataFrame:
    """One of Splatter's CSV tables, indexed by its first expected column, with the expected
    columns checked (a renamed column is named in the error, with the file)."""
    table = pd.read_csv(folder / name)
    expected = SPLATTER_COLUMNS.get(name, ("Gene",))
    missing = [c for c in expected if c not in table.columns]
    if missing:
        raise DatasetError(
            dataset, str(folder / name), f"has no column {missing} (columns: {list(table.columns)[:10]})",
            f"Splatter's export names them {list(expected)}: rename the column(s) in the file, or re-export with Splatter's names.",
        )  # fmt: skip
    return table.set_index(expected[0])


def _read_mtx(path: Path, dataset: str):
    try:
        return scipy.io.mmread(path)
    except Exception as err:  # scipy's messages name neither the file nor the format
        raise DatasetError(
            dataset, str(path), f"cannot be read as a MatrixMarket matrix ({type(err).__name__}: {err})",
            "Write it with `Matrix::writeMM` (cells x genes) and gzip it, as the Splatter reference's README shows.",
        ) from err  # fmt: skip


def _orient(counts, cells: pd.DataFrame, genes: pd.DataFrame, path: Path, dataset: str):
    """``counts`` as cells x genes, or a :class:`DatasetError` saying it is transposed or of
    the wrong size. A square matrix is checked against the genes' simulated means in
    genes.csv (its per-gene means must follow them better than its per-cell ones)."""
    expected = (len(cells), len(genes))
    transposed = f"is genes x cells ({counts.shape[0]} x {counts.shape[1]}), transposed"
    fix = "Write the transpose, `Matrix::writeMM(t(counts(sim)), ...)`: the rows must be the cells of cells.csv and the columns the genes of genes.csv."
    if counts.shape != expected:
        if counts.shape == expected[::-1]:
            raise DatasetError(dataset, str(path), transposed, fix)
        raise DatasetError(
            dataset, str(path), f"is {counts.shape[0]} x {counts.shape[1]}; cells.csv has {expected[0]} cells and genes.csv {expected[1]} genes",
            "Export the counts, cells.csv and genes.csv of the same simulation (cells x genes).",
        )  # fmt: skip
    column = next((c for c in GENE_MEAN_COLUMNS if c in genes.columns), None)
    if expected[0] == expected[1] and column is not None:
        means = genes[column].to_numpy(float)
        by_gene = scipy.stats.spearmanr(np.asarray(counts.mean(axis=0)).ravel(), means).statistic
        by_cell = scipy.stats.spearmanr(np.asarray(counts.mean(axis=1)).ravel(), means).statistic
        if by_cell > by_gene:
            raise DatasetError(
                dataset,
                str(path),
                f"{transposed}: its row means follow genes.csv's {column} (Spearman {by_cell:.2f}), its column means do not ({by_gene:.2f})",
                fix,
            )
    return counts


def read_splatter_dir(folder: str | Path, dataset: str | None = None) -> ad.AnnData:
    """Read Splatter's output exported as MatrixMarket + CSV (``shared/reference`` layout).

    ``Batch``/``Group`` become ``obs["batch"]``/``obs["cell_type"]``, ``DEFac<g>`` columns
    ``var["de_factor_<g>"]``, ``BatchFac<b>`` columns ``var["batch_factor_<b>"]`` and the
    batch-free means ``layers["batchfree_means"]``. Splatter exports no batch-free counts, so
    the metrics that need them are not applicable to such a dataset.

    A renamed column, an unreadable or transposed matrix is a :class:`DatasetError` naming the
    file and what was expected (``dataset``: the name in the message, default the folder's).
    """
    folder = Path(folder)
    dataset = dataset or folder.name
    missing = [f for f in SPLATTER_FILES if not (folder / f).exists()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a Splatter export: missing {missing} (needs {SPLATTER_FILES})")
    cells = _read_csv(folder, "cells.csv", dataset)
    genes = _read_csv(folder, "genes.csv", dataset)
    if (folder / "genes_extra.csv").exists():
        genes = genes.join(_read_csv(folder, "genes_extra.csv", dataset), rsuffix="_extra")
    counts = _orient(_read_mtx(folder / "counts.mtx.gz", dataset), cells, genes, folder / "counts.mtx.gz", dataset)
    counts = sp.csr_matrix(counts, dtype=np.float32)

    obs = pd.DataFrame(
        {BATCH_KEY: cells["Batch"].astype(str), LABEL_KEY: cells["Group"].astype(str)}, index=cells.index.astype(str)
    )
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
        means = _read_mtx(folder / "batchfree_means.mtx.gz", dataset)
        means = means.toarray() if sp.issparse(means) else means
        if means.shape != adata.shape:
            raise DatasetError(
                dataset, str(folder / "batchfree_means.mtx.gz"), f"is {means.shape[0]} x {means.shape[1]}, counts.mtx.gz {adata.shape[0]} x {adata.shape[1]}",
                "Export the batch-free means of the same simulation, cells x genes like the counts.",
            )  # fmt: skip
        adata.layers[TRUTH_MEANS] = np.asarray(means, dtype=np.float32)
    return adata


def read_h5ad(path: str | Path, dataset: str) -> ad.AnnData:
    """An .h5ad file, or a :class:`DatasetError` naming it when it cannot be read."""
    try:
        return ad.read_h5ad(path)
    except Exception as err:  # h5py's "Unable to synchronously open file (...)" names no file
        raise DatasetError(
            dataset, f"h5ad {path}", f"cannot be read as an .h5ad ({type(err).__name__}: {err})",
            "Point `h5ad:` at a complete AnnData file written by `adata.write_h5ad(path)`: a copy cut short "
            "(compare its size with the original) or a file of another format (loom, 10x .h5, csv) is refused.",
        ) from err  # fmt: skip


def use_counts_layer(adata: ad.AnnData, layer: str, dataset: str) -> ad.AnnData:
    """Move ``layers[layer]`` (the raw counts) into X, where the contract keeps them; X's
    former values (e.g. log-normalised) are dropped."""
    if layer not in adata.layers:
        raise DatasetError(
            dataset, "counts_layer", f"names layers['{layer}'], which the data do not have (layers: {list(adata.layers.keys())})",
            "Set `counts_layer` to the layer that holds the raw counts, or remove it when X holds them.",
        )  # fmt: skip
    adata.X = adata.layers.pop(layer)
    return adata


def load_dataset(name: str, spec: dict, threads: int = 1) -> ad.AnnData:
    """The contract-form AnnData of one ``datasets:`` entry of the config."""
    keys = {
        "batch_key": spec.get("batch_key", BATCH_KEY),
        "label_key": spec.get("label_key", LABEL_KEY),
        "covariates": spec.get("covariates", []),
        "counts": spec.get("counts", True),
    }
    layer = spec.get("counts_layer")
    if layer and not keys["counts"]:
        raise DatasetError(
            name, "counts_layer", f"names layers['{layer}'] as raw counts, but the dataset also says `counts: false`",
            "Remove `counts: false`: with `counts_layer` the counts are moved into X and every method runs.",
        )  # fmt: skip
    if "simulate" in spec:
        params = spec["simulate"]
        adata = simulate(params, n_threads=threads, progress=True)
        keys["covariates"] = keys["covariates"] or [c["name"] for c in params.get("covariates", [])]
        source = "simulate"
    elif "h5ad" in spec:
        adata = read_h5ad(spec["h5ad"], name)
        source = str(spec["h5ad"])
    elif "splatter_dir" in spec:
        adata = read_splatter_dir(spec["splatter_dir"], name)
        source = str(spec["splatter_dir"])
    else:
        raise DatasetError(name, "config", "names no source", "Give one of `simulate`, `h5ad` or `splatter_dir`.")
    if layer:
        adata = use_counts_layer(adata, layer, name)
        source += f" (counts from layers['{layer}'])"
    if "filter" in spec:
        adata = filter_cells_and_genes(adata, **spec["filter"], dataset=name)
    if keys["label_key"] is None:  # no labels: one label for every cell; label-using methods are skipped
        adata = adata.copy() if adata.is_view else adata
        keys["label_key"] = UNLABELLED
        adata.obs[UNLABELLED] = pd.Categorical(["all cells"] * adata.n_obs)
    return to_contract(adata, name, source=source, **keys)


def filter_cells_and_genes(adata: ad.AnnData, min_genes: int = 0, min_cells: int = 0, dataset: str = "") -> ad.AnnData:
    """scanpy's usual QC filter, as the GENEX paper ran it (``min_genes=200, min_cells=3``):
    cells with fewer than ``min_genes`` detected genes go first, then genes detected in fewer
    than ``min_cells`` of the remaining cells. Truth layers and gene factors follow.

    A filter that would leave no cell or no gene is a :class:`DatasetError` naming the
    threshold and the largest value it could have.
    """
    if adata.X is None or adata.isbacked:
        return adata  # the contract check says what to do
    cells, detected = sc.pp.filter_cells(adata, min_genes=min_genes, inplace=False)
    if adata.n_obs and not cells.any():
        raise DatasetError(
            dataset, "filter.min_genes", f"= {min_genes} removes every cell: the most genes detected in one cell is {int(detected.max())}",
            f"Lower `filter: min_genes` to at most {int(detected.max())} (the GENEX paper used 200 on full transcriptomes), or remove it.",
        )  # fmt: skip
    adata = adata[cells]
    genes, detected = sc.pp.filter_genes(adata, min_cells=min_cells, inplace=False)
    if adata.n_vars and not genes.any():
        raise DatasetError(
            dataset, "filter.min_cells", f"= {min_cells} removes every gene: after the cell filter the most cells any gene is detected in is {int(detected.max())}",
            f"Lower `filter: min_cells` to at most {int(detected.max())} (the GENEX paper used 3), or remove it.",
        )  # fmt: skip
    return adata[:, genes].copy()


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
