"""The dataset contract (``DATA.md``): its keys, and the one check every entry point uses."""

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from genex_core.preprocessing import matrix_problem

BATCH_KEY = "batch"
LABEL_KEY = "cell_type"
TRUTH_MEANS = "batchfree_means"
TRUTH_COUNTS = "batchfree_counts"
DATASET_UNS = "dataset"  # uns entry recording the dataset's name, keys and provenance


class DatasetError(ValueError):
    """A dataset breaks the contract; the message names the dataset, the field and the fix."""

    def __init__(self, dataset: str, field: str, problem: str, fix: str):
        super().__init__(f"dataset '{dataset}': {field}: {problem}. {fix}")


def check_matrix(dataset: str, field: str, matrix, counts: bool) -> None:
    """Finite numbers; with ``counts``, also non-negative integers."""
    if problem := matrix_problem(matrix, counts):
        fix = "Supply raw counts (e.g. from `adata.raw` or `layers['counts']`), or set `counts: false` for this dataset."
        if "NaN" in problem:
            fix = "Remove or impute them before import."
        raise DatasetError(dataset, field, problem, fix)


def validate_dataset(
    adata: ad.AnnData,
    dataset: str,
    batch_key: str = BATCH_KEY,
    label_key: str = LABEL_KEY,
    covariates: Sequence[str] = (),
    counts: bool = True,
) -> None:
    """Raise :class:`DatasetError` unless ``adata`` follows the dataset contract."""
    for axis, names in (("obs_names", adata.obs_names), ("var_names", adata.var_names)):
        if names.has_duplicates:
            dups = names[names.duplicated()].unique()[:5].tolist()
            raise DatasetError(dataset, axis, f"{names.duplicated().sum()} duplicated names, e.g. {dups}", f"Make them unique (`adata.{axis}_make_unique()`).")
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise DatasetError(dataset, "X", f"is empty ({adata.n_obs} cells x {adata.n_vars} genes)", "Supply a non-empty matrix.")
    check_matrix(dataset, "X", adata.X, counts)
    for role, key in [("batch_key", batch_key), ("label_key", label_key)] + [("covariates", c) for c in covariates]:
        if key not in adata.obs:
            raise DatasetError(dataset, f"obs['{key}']", f"is missing (named by {role}); obs has {list(adata.obs.columns)}", f"Set `{role}` in the config to one of these columns.")
        if adata.obs[key].isna().any():
            raise DatasetError(dataset, f"obs['{key}']", f"has {int(adata.obs[key].isna().sum())} missing values", "Fill or drop those cells before import.")
    n_batches = adata.obs[batch_key].nunique()
    if n_batches < 2:
        raise DatasetError(dataset, f"obs['{batch_key}']", f"has {n_batches} level; integration needs at least 2 batches", "Check `batch_key`, or combine this dataset with another batch.")
    for layer, is_counts in ((TRUTH_MEANS, False), (TRUTH_COUNTS, True)):
        if layer in adata.layers:
            check_matrix(dataset, f"layers['{layer}']", adata.layers[layer], is_counts)


def to_contract(
    adata: ad.AnnData,
    dataset: str,
    batch_key: str = BATCH_KEY,
    label_key: str = LABEL_KEY,
    covariates: Sequence[str] = (),
    counts: bool = True,
    source: str = "",
) -> ad.AnnData:
    """Validate ``adata`` and return it in the contract's storage form.

    X becomes CSR float32, the keyed obs columns categorical (keeping a categorical's order),
    names strings; the keys and provenance are recorded in ``uns["dataset"]`` so later stages
    read them from the file.
    """
    adata = adata.copy() if adata.is_view else adata
    adata.obs_names = adata.obs_names.astype(str)
    adata.var_names = adata.var_names.astype(str)
    validate_dataset(adata, dataset, batch_key, label_key, covariates, counts)
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    if TRUTH_COUNTS in adata.layers:
        adata.layers[TRUTH_COUNTS] = sp.csr_matrix(adata.layers[TRUTH_COUNTS], dtype=np.float32)
    if TRUTH_MEANS in adata.layers:
        adata.layers[TRUTH_MEANS] = np.asarray(adata.layers[TRUTH_MEANS].toarray() if sp.issparse(adata.layers[TRUTH_MEANS]) else adata.layers[TRUTH_MEANS], dtype=np.float32)
    for key in (batch_key, label_key, *covariates):
        column = adata.obs[key]  # a categorical keeps its order: a covariate's first level is its reference
        order = [str(c) for c in column.cat.categories] if isinstance(column.dtype, pd.CategoricalDtype) else None
        adata.obs[key] = pd.Categorical(column.astype(str), categories=order).remove_unused_categories()
    adata.uns[DATASET_UNS] = {
        "name": dataset,
        "batch_key": batch_key,
        "label_key": label_key,
        "covariates": list(covariates),
        "counts": counts,
        "source": source,
    }
    return adata
