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
