"""The dataset contract (``DATA.md``): its keys, the one check every entry point uses, and what
a step gets from a dataset (:func:`has_counts`, :func:`log_expression`)."""

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from genex_core.preprocessing import log_normalize, matrix_problem
from workflow_scripts.names import BATCH_KEY, DATASET_UNS, LABEL_KEY, NEEDS_COUNTS, TRUTH_COUNTS, TRUTH_MEANS


class DatasetError(ValueError):
    """A dataset breaks the contract; the message names the dataset, the field and the fix."""

    def __init__(self, dataset: str, field: str, problem: str, fix: str):
        super().__init__(f"dataset '{dataset}': {field}: {problem}. {fix}")


class NeedsRawCounts(ValueError):
    """A step that models raw counts was asked to run on a dataset that declares ``counts: false``;
    the step's table gets a :data:`NEEDS_COUNTS` row instead."""


def has_counts(adata: ad.AnnData) -> bool:
    """Whether a contract dataset's X holds raw counts (``uns["dataset"]["counts"]``, default
    True); False for ``counts: false``, whose X is already log1p(CP10k)."""
    return bool(adata.uns.get(DATASET_UNS, {}).get("counts", True))


def log_expression(adata: ad.AnnData, dense: bool = True):
    """The dataset's log1p(CP10k) expression, cells x genes: X normalised when it holds raw
    counts, X as given when the dataset declares ``counts: false`` (its values are already
    log-normalised; normalising them again shrinks every fold change). The one place that
    decides; every step that wants log expression asks here. Dense float32, or CSR float32
    with ``dense=False``."""
    values = log_normalize(adata.X) if has_counts(adata) else sp.csr_matrix(adata.X, dtype=np.float32)
    return (values.toarray() if sp.issparse(values) else np.asarray(values, dtype=np.float32)) if dense else sp.csr_matrix(values)


def require_counts(adata: ad.AnnData, step: str) -> None:
    """Raise :class:`NeedsRawCounts` unless the dataset's X holds raw counts."""
    if not has_counts(adata):
        name = adata.uns.get(DATASET_UNS, {}).get("name", "?")
        raise NeedsRawCounts(f"{step} models raw counts; dataset '{name}' declares `counts: false`: {NEEDS_COUNTS}")


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
    """Raise :class:`DatasetError` unless ``adata`` follows the dataset contract.

    Beyond the matrix and the keyed columns, it refuses what would fail later inside one
    method: the label or a covariate naming the batch column (or each other), and a level of
    the batch, label or a covariate held by a single cell.
    """
    if adata.isbacked:
        raise DatasetError(
            dataset, "X", f"is backed (read with `backed='r'` from {adata.filename}); backed data is not supported yet",
            "Load it into memory first: `adata = adata.to_memory()`, or `anndata.read_h5ad(path)` without `backed`.",
        )  # fmt: skip
    if adata.X is None:
        layers = list(adata.layers.keys())
        fix = (
            f"Set `counts_layer:` in this dataset's config to the layer that holds the raw counts (layers: {layers})."
            if layers
            else "Store the raw counts in X."
        )
        raise DatasetError(dataset, "X", "is None (the file holds no X matrix)", fix)
    _check_keys(dataset, batch_key, label_key, covariates)
    for axis, names in (("obs_names", adata.obs_names), ("var_names", adata.var_names)):
        if names.has_duplicates:
            dups = names[names.duplicated()].unique()[:5].tolist()
            raise DatasetError(
                dataset,
                axis,
                f"{names.duplicated().sum()} duplicated names, e.g. {dups}",
                f"Make them unique (`adata.{axis}_make_unique()`).",
            )
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise DatasetError(dataset, "X", f"is empty ({adata.n_obs} cells x {adata.n_vars} genes)", "Supply a non-empty matrix.")
    check_matrix(dataset, "X", adata.X, counts)
    for role, key in [("batch_key", batch_key), ("label_key", label_key)] + [("covariates", c) for c in covariates]:
        if key not in adata.obs:
            raise DatasetError(
                dataset,
                f"obs['{key}']",
                f"is missing (named by {role}); obs has {list(adata.obs.columns)}",
                f"Set `{role}` in the config to one of these columns.",
            )
        if adata.obs[key].isna().any():
            raise DatasetError(
                dataset,
                f"obs['{key}']",
                f"has {int(adata.obs[key].isna().sum())} missing values",
                "Fill or drop those cells before import.",
            )
        sizes = adata.obs[key].astype(str).value_counts()
        single = sorted(sizes.index[sizes < 2])
        if single:
            raise DatasetError(
                dataset, f"obs['{key}']", f"has {len(single)} level(s) with a single cell ({role}): {single[:5]}",
                f"Drop those cells or merge the levels before import, e.g. `adata = adata[adata.obs['{key}'] != '{single[0]}'].copy()`: "
                "a method cannot estimate a level from one cell (ComBat returns non-finite values, GENEX refuses it).",
            )  # fmt: skip
    n_batches = adata.obs[batch_key].nunique()
    if n_batches < 2:
        raise DatasetError(
            dataset,
            f"obs['{batch_key}']",
            f"has {n_batches} level; integration needs at least 2 batches",
            "Check `batch_key`, or combine this dataset with another batch.",
        )
    for layer, is_counts in ((TRUTH_MEANS, False), (TRUTH_COUNTS, True)):
        if layer in adata.layers:
            check_matrix(dataset, f"layers['{layer}']", adata.layers[layer], is_counts)


def _check_keys(dataset: str, batch_key: str, label_key: str, covariates: Sequence[str]) -> None:
    """The batch, the label and each covariate name different columns."""
    if isinstance(covariates, str):
        raise DatasetError(
            dataset,
            "covariates",
            f"is the string '{covariates}', not a list",
            f"Write it as a list: `covariates: [{covariates}]`.",
        )
    if label_key == batch_key:
        raise DatasetError(
            dataset, "label_key", f"names obs['{label_key}'], which is also the batch_key",
            "Set `label_key` to the column of cell types; it must differ from `batch_key` (the technical batch).",
        )  # fmt: skip
    roles = {batch_key: "batch_key", label_key: "label_key"}
    for cov in covariates:
        if cov in roles:
            raise DatasetError(
                dataset, "covariates", f"'{cov}' is also the {roles[cov]}",
                f"Remove '{cov}' from `covariates`: the batch and the label are conditioned on already; covariates are further columns.",
            )  # fmt: skip
        roles[cov] = "covariates"


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
    if adata.isbacked or adata.X is None:
        validate_dataset(adata, dataset, batch_key, label_key, covariates, counts)  # says what to do
    adata = adata.copy() if adata.is_view else adata
    adata.obs_names = adata.obs_names.astype(str)
    adata.var_names = adata.var_names.astype(str)
    validate_dataset(adata, dataset, batch_key, label_key, covariates, counts)
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    if TRUTH_COUNTS in adata.layers:
        adata.layers[TRUTH_COUNTS] = sp.csr_matrix(adata.layers[TRUTH_COUNTS], dtype=np.float32)
    if TRUTH_MEANS in adata.layers:
        adata.layers[TRUTH_MEANS] = np.asarray(
            adata.layers[TRUTH_MEANS].toarray() if sp.issparse(adata.layers[TRUTH_MEANS]) else adata.layers[TRUTH_MEANS],
            dtype=np.float32,
        )
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
