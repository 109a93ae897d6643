"""The project's one normalisation: log1p of counts scaled to 10,000 per cell."""

import numpy as np
import scipy.sparse as sp

TARGET_SUM = 1e4


def log_normalize(counts, target_sum: float = TARGET_SUM):
    """log1p(counts / library size * ``target_sum``), row by row, keeping sparsity.

    Works on a dense array or any scipy sparse matrix (returned as CSR float32); cells with
    no counts stay all zero instead of becoming NaN.
    """
    if sp.issparse(counts):
        out = sp.csr_matrix(counts, dtype=np.float32, copy=True)
        lib = np.asarray(out.sum(axis=1)).ravel()
        scale = np.divide(target_sum, lib, out=np.zeros_like(lib), where=lib > 0)
        out.data *= np.repeat(scale, np.diff(out.indptr)).astype(np.float32)
        np.log1p(out.data, out=out.data)
        return out
    out = np.asarray(counts, dtype=np.float32)
    lib = out.sum(axis=1, keepdims=True)
    scale = np.divide(target_sum, lib, out=np.zeros_like(lib), where=lib > 0)
    return np.log1p(out * scale)


def matrix_problem(matrix, counts: bool = True) -> str | None:
    """What makes ``matrix`` unfit as input, or None: non-numeric or non-finite values and,
    with ``counts``, negative or non-integer ones. The one such check; callers add the fix.

    Only stored values are checked (the implicit zeros of a sparse matrix are fine).
    """
    values = matrix.data if sp.issparse(matrix) else np.asarray(matrix)
    if not np.issubdtype(values.dtype, np.number):
        return f"holds {values.dtype} values, not numbers"
    if not np.isfinite(values).all():
        return f"holds {int((~np.isfinite(values)).sum())} NaN or infinite values"
    if counts and (values < 0).any():
        return f"holds {int((values < 0).sum())} negative values, so it is not raw counts"
    if counts and not np.array_equal(values, np.round(values)):
        return "holds non-integer values, so it is not raw counts (normalised or log data?)"
    return None
