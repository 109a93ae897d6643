"""Compare the Python Splat simulator with real Splatter output under the same parameters.

Used by ``benchmarks/calibrate_simulator.py`` (prints the table) and by the calibration test.
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp

from workflow_scripts.data.datasets import read_splatter_dir
from workflow_scripts.data.simulate import simulate

# The exact call in shared/reference/splatter_reference/README.md, in this project's names.
REFERENCE_PARAMS = dict(
    nGenes=1000,
    batchCells=[600, 400],
    group_prob=[0.5, 0.3, 0.2],
    de_prob=0.1,
    batch_facLoc=0.2,
    batch_facScale=0.2,
)
LOG10_MEAN_BINS = np.arange(-2.0, 3.01, 0.5)


def splat_statistics(adata) -> dict[str, float]:
    """Library-size quantiles, share of zeros, the mean-variance trend (median log10 of
    variance/mean of genes in bins of log10 mean) and the share of DE genes per group."""
    x = sp.csr_matrix(adata.X)
    lib = np.asarray(x.sum(axis=1)).ravel()
    mean = np.asarray(x.mean(axis=0)).ravel()
    var = np.asarray(x.multiply(x).mean(axis=0)).ravel() - mean**2
    stats = {f"library size q{int(q * 100)}": float(np.quantile(lib, q)) for q in (0.1, 0.5, 0.9)}
    stats["share of zeros"] = 1.0 - x.nnz / (x.shape[0] * x.shape[1])
    expressed = mean > 0
    bins = np.digitize(np.log10(mean[expressed]), LOG10_MEAN_BINS)
    log_dispersion = np.log10(var[expressed] / mean[expressed])  # var/mean: 1 for Poisson
    for b in np.unique(bins):
        if 0 < b < len(LOG10_MEAN_BINS) and (bins == b).sum() >= 10:
            lo = LOG10_MEAN_BINS[b - 1]
            stats[f"log10 var/mean | log10 mean in [{lo:g},{lo + 0.5:g})"] = float(np.median(log_dispersion[bins == b]))
    for col in sorted(c for c in adata.var.columns if c.startswith("de_factor_")):
        stats[f"DE share {col.removeprefix('de_factor_')}"] = float((adata.var[col] != 1).mean())
    return stats


def compare_to_reference(reference_dir, seeds=(0, 1, 2)) -> pd.DataFrame:
    """One row per statistic: real Splatter, our simulator (mean and sd over ``seeds``), and
    the difference (relative for library sizes, absolute otherwise)."""
    ref = splat_statistics(read_splatter_dir(reference_dir))
    sims = pd.DataFrame([splat_statistics(simulate(dict(REFERENCE_PARAMS, seed=s))) for s in seeds])
    table = pd.DataFrame({"splatter": pd.Series(ref), "python_mean": sims.mean(), "python_sd": sims.std()}).dropna()
    relative = table.index.str.startswith("library size")
    table["difference"] = np.where(relative, table.python_mean / table.splatter - 1, table.python_mean - table.splatter)
    table["kind"] = np.where(relative, "relative", "absolute")
    return table
