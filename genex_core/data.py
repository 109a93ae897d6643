"""From AnnData to minibatches: register keys once, check counts, sample batch-balanced.

The registry freezes what a model was made with (keys, category -> code mappings, genes), so
that any later dataset is encoded the same way or refused with a message saying why. Counts
are read minibatch by minibatch: a CSR matrix is sliced once per minibatch, only that slice
is densified, then normalised with the project's one normalisation, ``log_normalize``. The
counts of a backed AnnData (``read_h5ad(path, backed="r")``) stay on disk and are read the
same way (:class:`BackedCounts`), so memory is bounded by the minibatch, not the data.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from genex_core.preprocessing import log_normalize, matrix_problem


@dataclass(frozen=True)
class Registry:
    """What a model was set up with (saved as JSON next to its weights).

    ``categories`` maps each conditioning key (batch first, then label, then covariates) to
    its levels in code order.
    """

    batch_key: str
    label_key: str | None
    covariate_keys: tuple[str, ...]
    layer: str | None
    var_names: tuple[str, ...]
    categories: dict[str, list[str]]

    @property
    def keys(self) -> list[str]:
        """Conditioning keys in code-column order: batch, label (if any), covariates."""
        return [self.batch_key, *([self.label_key] if self.label_key else []), *self.covariate_keys]

    @property
    def n_levels(self) -> list[int]:
        """Number of levels of each key, in code-column order."""
        return [len(self.categories[k]) for k in self.keys]

    def setup_args(self) -> dict:
        """The keyword arguments the model was made with (JSON-able)."""
        return {
            "batch_key": self.batch_key,
            "label_key": self.label_key,
            "covariate_keys": list(self.covariate_keys),
            "layer": self.layer,
        }

    @classmethod
    def from_saved(cls, setup_args: dict, var_names: list[str], categories: dict[str, list[str]]) -> "Registry":
        """Rebuild a registry from what :meth:`GENEX.save` wrote."""
        keys = setup_args["batch_key"], setup_args["label_key"], tuple(setup_args["covariate_keys"]), setup_args["layer"]
        return cls(*keys, tuple(var_names), categories)


def as_keys(covariate_keys: str | Sequence[str] | None) -> tuple[str, ...]:
    """``covariate_keys`` as a tuple of column names: one name given as a string is one key
    (not its letters)."""
    if covariate_keys is None:
        return ()
    if isinstance(covariate_keys, str):
        return (covariate_keys,)
    return tuple(covariate_keys)


def _field(layer: str | None) -> str:
    return "X" if layer is None else f"layers['{layer}']"


def counts_matrix(adata: ad.AnnData, layer: str | None):
    """The counts (X or ``layers[layer]``) as CSR, a dense array or, for a backed AnnData's
    X, a :class:`BackedCounts` that reads rows from disk, checked to be raw counts.

    Sparse matrices in other formats are converted to CSR once, so minibatches can slice rows.
    In memory every stored value is checked (in chunks, so the check's temporaries stay
    small); on disk, :data:`CHECK_CELLS` sampled cells (see :func:`check_counts`).
    """
    if layer is not None and layer not in adata.layers:
        raise ValueError(
            f"layer '{layer}' not found; adata.layers has {list(adata.layers.keys())}. Pass one of these, or layer=None to use X."
        )
    matrix = adata.X if layer is None else adata.layers[layer]  # a backed AnnData holds its layers in memory
    if matrix is None:
        layers = list(adata.layers.keys())
        raise ValueError(
            f"adata.X is empty (None). Name the layer that holds the raw counts, `layer=...` (layers: {layers}), or store them in X."
        )
    if adata.isbacked and layer is None:
        matrix = BackedCounts(matrix, adata.filename)
    elif sp.issparse(matrix):
        matrix = matrix if sp.isspmatrix_csr(matrix) or isinstance(matrix, sp.csr_array) else sp.csr_matrix(matrix)
    else:
        matrix = np.asarray(matrix)
    check_counts(matrix, layer)
    return matrix


CHECK_CELLS = 2_000  # cells of a backed matrix whose counts are checked (the first and a seeded sample)
CHECK_VALUES = 1 << 22  # stored values checked at a time in memory


def check_counts(matrix, layer: str | None = None) -> None:
    """Raise a ValueError naming the field and the fix if ``matrix`` is not raw counts.

    In memory: every stored value, :data:`CHECK_VALUES` at a time (the message of a failure
    is :func:`~genex_core.preprocessing.matrix_problem`'s on the whole matrix, so it counts
    every offending value). A :class:`BackedCounts`: the first ``CHECK_CELLS / 4`` cells and a
    sample (seed 0) of the others, ``CHECK_CELLS`` in all, read a chunk at a time; the message
    says so. Memory is bounded by a chunk either way.
    """
    fix = "GENEX needs raw counts: supply them, e.g. from adata.raw or with `layer='counts'`."
    if isinstance(matrix, BackedCounts):
        n = matrix.shape[0]
        head = np.arange(min(n, CHECK_CELLS // 4))
        rest = np.arange(len(head), n)
        drawn = np.random.default_rng(0).choice(rest, min(rest.size, CHECK_CELLS - len(head)), replace=False)
        rows = np.union1d(head, drawn)
        for chunk in np.array_split(rows, max(1, len(rows) // 1024)):
            if problem := matrix_problem(matrix[chunk], counts=True):
                raise ValueError(
                    f"{_field(layer)} {problem} (in {len(rows)} of {n} cells checked, read from {matrix.filename}). {fix}"
                )
        return
    values = matrix.data if sp.issparse(matrix) else matrix.reshape(-1)
    for start in range(0, values.size, CHECK_VALUES):
        if matrix_problem(values[start : start + CHECK_VALUES], counts=True):
            raise ValueError(f"{_field(layer)} {matrix_problem(matrix, counts=True)}. {fix}")
    if values.size == 0 and (problem := matrix_problem(matrix, counts=True)):  # the dtype check
        raise ValueError(f"{_field(layer)} {problem}. {fix}")


class BackedCounts:
    """The counts of a backed AnnData (``anndata.read_h5ad(path, backed="r")``), read from disk
    a minibatch at a time: ``counts[idx]`` is the CSR (or dense) rows ``idx`` in that order,
    duplicates included, as an in-memory matrix would give them, so training from disk draws
    and computes exactly what training from memory does.

    Rows are read in increasing order (what HDF5 reads), then put in the order asked. A
    contiguous range is read as one slice.
    """

    def __init__(self, matrix, filename=None):
        fmt = getattr(matrix, "format", None)
        if fmt == "csc":
            raise ValueError(
                f"X of the backed AnnData ({filename}) is stored as CSC (by gene): reading cells from it means reading "
                "the whole matrix. Write it as CSR: `a = anndata.read_h5ad(path); a.X = a.X.tocsr(); a.write_h5ad(path)`."
            )
        self.matrix = matrix
        self.filename = filename
        self.shape = tuple(matrix.shape)
        self.dtype = matrix.dtype

    def __getitem__(self, idx) -> sp.csr_matrix | np.ndarray:
        idx = np.asarray(idx, dtype=np.int64).ravel()
        if idx.size == 0:
            return sp.csr_matrix((0, self.shape[1]), dtype=self.dtype)
        if idx.size > 1 and (np.diff(idx) == 1).all():
            rows = self.matrix[int(idx[0]) : int(idx[-1]) + 1]
        else:
            unique, inverse = np.unique(idx, return_inverse=True)
            rows = self.matrix[unique]
            rows = rows[inverse] if unique.size != idx.size or (unique != idx).any() else rows
        return sp.csr_matrix(rows) if sp.issparse(rows) else np.asarray(rows)

    def __len__(self) -> int:
        return self.shape[0]


def _column(adata: ad.AnnData, key: str, role: str) -> np.ndarray:
    if key not in adata.obs:
        raise ValueError(
            f"{role}='{key}' is not a column of adata.obs; available columns: {list(adata.obs.columns)}. Pass one of them."
        )
    column = adata.obs[key]
    if column.isna().any():
        raise ValueError(
            f"adata.obs['{key}'] ({role}) has {int(column.isna().sum())} missing values. Fill them or drop those cells."
        )
    return column.astype(str).to_numpy(dtype=str)


def register(
    adata: ad.AnnData,
    batch_key: str,
    label_key: str | None,
    covariate_keys: Sequence[str],
    layer: str | None,
) -> Registry:
    """Validate the training data and freeze its keys, category levels and genes.

    ``covariate_keys`` may be one column name (a string) or a sequence of them.

    Raises
    ------
    ValueError
        Duplicated gene names, unknown or duplicated keys, missing values, fewer
        than two batches, a level with a single cell (nothing to learn its code from; the
        batch-balanced sampler would also replay that one cell as a whole batch). The counts
        are checked by :func:`encode`.
    """
    genes = adata.var_names
    if genes.has_duplicates:
        dups = genes[genes.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"adata.var_names has {int(genes.duplicated().sum())} duplicated gene names, e.g. {dups}: a model's genes must be unique. "
            "Make them unique first, `adata.var_names_make_unique()`, and use the same names whenever the model is loaded."
        )
    covariate_keys = as_keys(covariate_keys)
    keys = [batch_key, *([label_key] if label_key else []), *covariate_keys]
    if len(set(keys)) != len(keys):
        raise ValueError(f"batch_key, label_key and covariate_keys must name different columns, got {keys}.")
    roles = ["batch_key", *(["label_key"] if label_key else []), *["covariate_keys"] * len(covariate_keys)]
    categories = {}
    for key, role in zip(keys, roles, strict=False):
        levels, sizes = np.unique(_column(adata, key, role), return_counts=True)
        single = levels[sizes < 2].tolist()
        if single:
            raise ValueError(
                f"adata.obs['{key}'] ({role}) has levels with a single cell: {single[:5]}. Drop those cells or merge the levels."
            )
        categories[key] = levels.tolist()
    if len(categories[batch_key]) < 2:
        raise ValueError(
            f"adata.obs['{batch_key}'] (batch_key) has only one batch ({categories[batch_key]}); "
            "batch correction needs at least 2. Check batch_key."
        )
    return Registry(batch_key, label_key, tuple(covariate_keys), layer, tuple(adata.var_names.astype(str)), categories)


def encode(adata: ad.AnnData, registry: Registry):
    """Counts matrix and code array (cells x covariates, int64) of ``adata`` in the registry's terms.

    Raises
    ------
    ValueError
        Other genes (or another gene order), unknown keys or category levels the model was
        not trained on, or counts that are not raw counts.
    """
    genes = adata.var_names.astype(str)
    if tuple(genes) != registry.var_names:
        missing = sorted(set(registry.var_names) - set(genes))
        if missing or len(genes) != len(registry.var_names):
            extra = sorted(set(genes) - set(registry.var_names))
            raise ValueError(
                f"adata.var_names differ from the model's {len(registry.var_names)} genes "
                f"({len(missing)} missing, e.g. {missing[:5]}; {len(extra)} unknown, e.g. {extra[:5]}). "
                "Subset the data to the model's genes, `adata[:, model.var_names]`, or train a new model."
            )
        raise ValueError("adata.var_names hold the model's genes in another order. Reorder with `adata[:, model.var_names]`.")
    codes = np.empty((adata.n_obs, len(registry.keys)), dtype=np.int64)
    for i, key in enumerate(registry.keys):
        role = "batch_key" if i == 0 else ("label_key" if key == registry.label_key else "covariate_keys")
        values = _column(adata, key, role)
        levels = np.asarray(registry.categories[key])
        unseen = sorted(set(np.unique(values)) - set(levels))
        if unseen:
            raise ValueError(
                f"adata.obs['{key}'] has levels the model was not trained on: {unseen[:5]} (known: {levels.tolist()}). "
                "Drop those cells or train a model that includes them."
            )
        codes[:, i] = np.searchsorted(levels, values)
    return counts_matrix(adata, registry.layer), codes


def minibatch(matrix, codes: np.ndarray, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Slice rows ``idx`` once, densify only them, log-normalise, move to ``device``."""
    rows = matrix[idx]
    dense = rows.toarray() if sp.issparse(rows) else rows
    x = torch.from_numpy(log_normalize(dense))
    return x.to(device), torch.from_numpy(codes[idx]).to(device)


class BalancedSampler:
    """Minibatches of cell indices drawn with replacement with weights 1/|batch|.

    Each epoch draws as many cells as the data holds, split into full minibatches (the last,
    partial one is dropped, as published). Drawing a batch uniformly and then a cell
    uniformly within it gives exactly the weights 1/|batch| in O(cells), with no weight
    vector to normalise.

    Parameters
    ----------
    batch_codes
        Batch code of every cell.
    batch_size
        Cells per minibatch (capped at the number of cells).
    generator
        CPU ``torch.Generator``: the only source of randomness, so a seed fixes every draw.
    """

    def __init__(self, batch_codes: np.ndarray, batch_size: int, generator: torch.Generator):
        order = np.argsort(batch_codes, kind="stable")
        sizes = np.bincount(batch_codes)
        self.members = torch.from_numpy(order)
        self.starts = torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)[:-1]]))
        self.sizes = torch.from_numpy(sizes)
        self.n_cells = len(batch_codes)
        self.batch_size = min(batch_size, self.n_cells)
        self.generator = generator

    def __len__(self) -> int:
        return self.n_cells // self.batch_size

    def __iter__(self) -> Iterator[np.ndarray]:
        n = len(self) * self.batch_size
        batch = torch.randint(len(self.sizes), (n,), generator=self.generator)
        within = (torch.rand(n, generator=self.generator, dtype=torch.float64) * self.sizes[batch]).long()
        cells = self.members[self.starts[batch] + within].numpy()
        yield from cells.reshape(len(self), self.batch_size)


def sequential_chunks(n_cells: int, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive index chunks covering all cells once (for the getters)."""
    for start in range(0, n_cells, batch_size):
        yield np.arange(start, min(start + batch_size, n_cells))
