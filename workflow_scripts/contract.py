"""The dataset contract (``DATA.md``): its keys, and the one check every entry point uses."""

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

BATCH_KEY = "batch"
LABEL_KEY = "cell_type"
TRUTH_MEANS = "batchfree_means"
TRUTH_COUNTS = "batchfree_counts"
DATASET_UNS = "dataset"  # uns entry recording the dataset's name, keys and provenance


class DatasetError(ValueError):
    """A dataset breaks the contract; the message names the dataset, the field and the fix."""

    def __init__(self, dataset: str, field: str, problem: str, fix: str):
        super().__init__(f"dataset '{dataset}': {field}: {problem}. {fix}")


def _values(matrix) -> np.ndarray:
    """The stored values of a dense or sparse matrix (zeros of sparse storage need no check)."""
    return matrix.data if sp.issparse(matrix) else np.asarray(matrix)


def check_matrix(dataset: str, field: str, matrix, counts: bool) -> None:
    """Finite values; with ``counts``, also non-negative integers."""
    values = _values(matrix)
    if not np.issubdtype(values.dtype, np.number):
        raise DatasetError(dataset, field, f"holds {values.dtype} values, not numbers", "Store a numeric matrix.")
    if not np.isfinite(values).all():
        raise DatasetError(dataset, field, f"holds {int((~np.isfinite(values)).sum())} NaN or infinite values", "Remove or impute them before import.")
    if counts and (values < 0).any():
        raise DatasetError(dataset, field, f"holds {int((values < 0).sum())} negative values, so it is not raw counts", "Supply raw counts, or set `counts: false` for this dataset.")
    if counts and not np.array_equal(values, np.round(values)):
        raise DatasetError(dataset, field, "holds non-integer values, so it is not raw counts (normalised or log data?)", "Supply raw counts (e.g. from `adata.raw` or `layers['counts']`), or set `counts: false` for this dataset.")


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

    X becomes CSR float32, the keyed obs columns categorical, names strings; the keys and
    provenance are recorded in ``uns["dataset"]`` so later stages read them from the file.
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
        adata.obs[key] = pd.Categorical(adata.obs[key].astype(str))
    adata.uns[DATASET_UNS] = {
        "name": dataset,
        "batch_key": batch_key,
        "label_key": label_key,
        "covariates": list(covariates),
        "counts": counts,
        "source": source,
    }
    return adata
